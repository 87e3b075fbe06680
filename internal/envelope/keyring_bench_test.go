package envelope

import (
	"strings"
	"testing"
)

// What signing and encryption cost per job, for docs/security.md.
func BenchmarkEnvelope(b *testing.B) {
	m := Meta{Class: "SendWelcome", Queue: "mail", ID: "0123456789abcdef0123456789abcdef", EnqueuedAt: "1705314225.123"}
	args := []byte(`[{"user_id":42,"email":"a@example.com","note":"` + strings.Repeat("x", 200) + `"}]`)
	for _, typ := range []string{TypeHMAC, TypeEd25519} {
		f, err := NewFile(typ)
		if err != nil {
			b.Fatal(err)
		}
		k := mustKeyring(b, f)
		for _, encrypt := range []bool{false, true} {
			name := typ
			if encrypt {
				name += "+aes-256-gcm"
			}
			s, _ := k.Seal(m, args, encrypt)
			b.Run("seal/"+name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := k.Seal(m, args, encrypt); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("open/"+name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := k.Verify(m, s.Args, s.Enc, s.Sig); err != nil {
						b.Fatal(err)
					}
					if encrypt {
						if _, err := k.Decrypt(m, s.Enc); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}

func BenchmarkCheckDepth(b *testing.B) {
	deep := []byte(`{"class":"Run","args":[` + strings.Repeat("[", 200000) + strings.Repeat("]", 200000) + `]}`)
	flat := []byte(`{"class":"Run","args":[` + strings.Repeat(`{"k":"v","n":[1,2,3]},`, 20000) + `1]}`)
	lim := Limits{}.WithDefaults()
	b.Run("200000-deep", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if lim.CheckDepth(deep) == nil {
				b.Fatal("accepted")
			}
		}
	})
	b.Run("flat-"+FormatBytes(len(flat)), func(b *testing.B) {
		b.SetBytes(int64(len(flat)))
		b.ReportAllocs()
		for b.Loop() {
			if lim.CheckDepth(flat) != nil {
				b.Fatal("refused")
			}
		}
	})
}
