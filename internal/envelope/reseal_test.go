package envelope

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func mustKeyring(t testing.TB, f File) *Keyring {
	t.Helper()
	k, err := ParseKeyring(f.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Reseal moves ciphertext and signatures onto the new primaries, so the old
// keys can be retired; it refuses to re-sign what does not verify and keeps
// unsigned payloads unsigned.
func TestReseal(t *testing.T) {
	for _, typ := range []string{TypeHMAC, TypeEd25519} {
		t.Run(typ, func(t *testing.T) {
			f, err := NewFile(typ)
			if err != nil {
				t.Fatal(err)
			}
			oldSig, oldEnc := f.Signing.Primary, f.Encryption.Primary
			old := mustKeyring(t, f)
			m := Meta{Class: "Charge", Queue: "pay", ID: "0123", EnqueuedAt: "1700000000.123"}
			pt := []byte(`[{"card":"4111"}]`)
			sealed, err := old.Seal(m, pt, true)
			if err != nil {
				t.Fatal(err)
			}
			plain, _ := old.Seal(m, []byte(`[1]`), false)

			if err := f.Rotate(""); err != nil {
				t.Fatal(err)
			}
			cur := mustKeyring(t, f)
			// Marshalled now: File.Retire edits the key slices in place, and
			// VerifyOnly shares them.
			verifyOnly := f.VerifyOnly().Marshal()
			if _, changed, _ := cur.Reseal(m, sealed.Args, Envelope{}); changed {
				t.Fatal("a payload without envelope changed")
			}
			s, changed, err := cur.Reseal(m, sealed.Args, sealed.Envelope)
			if err != nil || !changed {
				t.Fatalf("reseal: changed %v, %v", changed, err)
			}
			if s.Enc.KID != f.Encryption.Primary || s.Sig.KID != f.Signing.Primary || s.Enc.KID == oldEnc || s.Sig.KID == oldSig {
				t.Fatalf("resealed under %s/%s; primaries are %s/%s", s.Enc.KID, s.Sig.KID, f.Encryption.Primary, f.Signing.Primary)
			}
			// The old keys can go now.
			if err := f.Retire(oldSig); err != nil {
				t.Fatal(err)
			}
			if err := f.Retire(oldEnc); err != nil {
				t.Fatal(err)
			}
			retired := mustKeyring(t, f)
			if err := retired.Verify(m, s.Args, s.Enc, s.Sig); err != nil {
				t.Fatalf("resealed payload does not verify: %v", err)
			}
			got, err := retired.Decrypt(m, s.Enc)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("decrypt after retiring: %q, %v", got, err)
			}
			if _, changed, _ := cur.Reseal(m, s.Args, s.Envelope); changed {
				t.Fatal("a payload already under the primaries changed")
			}
			// Signed only: re-signed.
			s2, changed, err := cur.Reseal(m, plain.Args, plain.Envelope)
			if err != nil || !changed || s2.Enc != nil || s2.Sig.KID != f.Signing.Primary || retired.Verify(m, s2.Args, nil, s2.Sig) != nil {
				t.Fatalf("re-sign: %+v changed %v err %v", s2, changed, err)
			}
			// Moved to another queue: not laundered.
			moved := m
			moved.Queue = "other"
			var se *SignatureError
			if _, _, err := cur.Reseal(moved, sealed.Args, sealed.Envelope); !errors.As(err, &se) {
				t.Fatalf("reseal of a moved job: %v", err)
			}
			// Encrypted but unsigned: re-encrypted, still unsigned.
			s3, changed, err := cur.Reseal(m, sealed.Args, Envelope{Enc: sealed.Enc})
			if err != nil || !changed || s3.Sig != nil || s3.Enc.KID != f.Encryption.Primary {
				t.Fatalf("unsigned reseal: %+v %v %v", s3, changed, err)
			}
			// A verify-only keyring cannot re-sign.
			if typ == TypeEd25519 {
				vo, err := ParseKeyring(verifyOnly)
				if err != nil {
					t.Fatal(err)
				}
				if _, _, err := vo.Reseal(m, plain.Args, plain.Envelope); err == nil || !strings.Contains(err.Error(), "verify-only") {
					t.Fatalf("a verify-only keyring re-signing a job: %v", err)
				}
			}
		})
	}
}
