package envelope

import (
	"bytes"
	"testing"
)

// FuzzVerify: Verify and Decrypt never panic on arbitrary signatures,
// ciphertexts, key ids and job metadata, and never accept them; a fresh
// seal always verifies (and decrypts to the args); changing any single
// byte of the args or ciphertext, or moving a byte between two metadata
// fields (the netstring framing), makes verification fail.
func FuzzVerify(f *testing.F) {
	var keyrings []*Keyring
	for _, typ := range []string{TypeHMAC, TypeEd25519} {
		file, err := NewFile(typ)
		if err != nil {
			f.Fatal(err)
		}
		keyrings = append(keyrings, mustKeyring(f, file))
	}
	f.Add("SendWelcome", "mail", "9f0c4c2e0b6a4a8f9d2e6f1a3b5c7d9e", "1705314225.123", []byte(`[{"user_id":42}]`), "s00000000", []byte("sig"), []byte("123456789012"), []byte("ciphertext+tag.."), uint16(7), false)
	f.Add("Charge", "pay", "", "", []byte(`[{"card":"4111"}]`), "e00000000", make([]byte, 64), make([]byte, 12), make([]byte, 16), uint16(0x0102), true)
	f.Add("", "", "", "", []byte{}, "", []byte{}, []byte{}, []byte{}, uint16(0), true)
	f.Add("a:1,", "2:b,", "3:,", "0:,", []byte("0:,0:,0:,"), "\x00", []byte{0xff}, []byte{0}, []byte{1, 2, 3}, uint16(0xffff), false)
	f.Fuzz(func(t *testing.T, class, queue, id, at string, args []byte, kid string, sig, nonce, ct []byte, flip uint16, encrypt bool) {
		m := Meta{Class: class, Queue: queue, ID: id, EnqueuedAt: at}
		for _, k := range keyrings {
			// Arbitrary input: no panic, and no acceptance, even under a
			// key id the keyring holds.
			for _, id := range []string{kid, k.signPrime, k.encPrime} {
				if k.Verify(m, args, &Ciphertext{KID: id, Nonce: nonce, Data: ct}, &Signature{KID: id, Value: sig}) == nil {
					t.Fatalf("an arbitrary signature verified under key %q", id)
				}
				if k.Verify(m, args, nil, &Signature{KID: id, Value: sig}) == nil {
					t.Fatalf("an arbitrary signature verified under key %q", id)
				}
				if _, err := k.Decrypt(m, &Ciphertext{KID: id, Nonce: nonce, Data: ct}); err == nil {
					t.Fatalf("arbitrary ciphertext decrypted under key %q", id)
				}
			}
			if k.Verify(m, args, nil, nil) == nil {
				t.Fatal("an unsigned payload verified")
			}

			// A fresh seal verifies and decrypts.
			s, err := k.Seal(m, args, encrypt)
			if err != nil {
				t.Fatal(err)
			}
			if err := k.Verify(m, s.Args, s.Enc, s.Sig); err != nil {
				t.Fatalf("a fresh seal does not verify: %v", err)
			}
			if encrypt {
				pt, err := k.Decrypt(m, s.Enc)
				if err != nil || !bytes.Equal(pt, args) {
					t.Fatalf("decrypt of a fresh seal: %q, %v", pt, err)
				}
			}

			// Any single-byte change fails.
			change := func(b []byte) []byte {
				c := bytes.Clone(b)
				c[int(flip)%len(c)] ^= byte(flip>>8) | 1
				return c
			}
			if len(s.Args) > 0 && k.Verify(m, change(s.Args), s.Enc, s.Sig) == nil {
				t.Fatal("changed args verified")
			}
			if s.Enc != nil {
				bad := &Ciphertext{KID: s.Enc.KID, Nonce: s.Enc.Nonce, Data: change(s.Enc.Data)}
				if k.Verify(m, s.Args, bad, s.Sig) == nil {
					t.Fatal("changed ciphertext verified")
				}
				if _, err := k.Decrypt(m, bad); err == nil {
					t.Fatal("changed ciphertext decrypted")
				}
			}
			if k.Verify(m, s.Args, s.Enc, &Signature{KID: s.Sig.KID, Value: change(s.Sig.Value)}) == nil {
				t.Fatal("a changed signature verified")
			}

			// Moving a byte from the class to the queue (a job moved to
			// another queue whose name continues the class) fails: the
			// fields are framed, not concatenated.
			if len(class) > 0 {
				moved := m
				moved.Class, moved.Queue = class[:len(class)-1], class[len(class)-1:]+queue
				if k.Verify(moved, s.Args, s.Enc, s.Sig) == nil {
					t.Fatal("a signature verified for shifted class/queue fields")
				}
				if encrypt {
					if _, err := k.Decrypt(moved, s.Enc); err == nil {
						t.Fatal("ciphertext decrypted for shifted class/queue fields")
					}
				}
			}
			other := m
			other.ID += "x"
			if k.Verify(other, s.Args, s.Enc, s.Sig) == nil {
				t.Fatal("a signature verified for another job id")
			}
		}
	})
}
