package envelope

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// Open applies the signing policy, then decrypts: a keyring with signing
// keys verifies every signature and refuses unsigned jobs unless the queue
// allows them; refusals of a signature, and only those, match ErrSignature.
func TestOpen(t *testing.T) {
	t.Parallel()
	f, err := NewFile(TypeHMAC)
	if err != nil {
		t.Fatal(err)
	}
	k := mustKeyring(t, f)
	of, err := NewFile(TypeHMAC)
	if err != nil {
		t.Fatal(err)
	}
	other := mustKeyring(t, of)
	encOnly := mustKeyring(t, File{Version: 1, Encryption: f.Encryption})
	var none *Keyring

	m := Meta{Class: "Charge", Queue: "pay", ID: "0123", EnqueuedAt: "1700000000.123"}
	pt := []byte(`[{"card":"4111"}]`)
	seal := func(k *Keyring, m Meta, encrypt bool) Sealed {
		t.Helper()
		s, err := k.Seal(m, pt, encrypt)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	moved := m
	moved.Queue = "other"
	cases := []struct {
		name          string
		opener        *Keyring
		s             Sealed
		allowUnsigned bool
		signed        bool
		refusal       string // "" opens; else a part of the error
		isSignature   bool
	}{
		{name: "signed", opener: k, s: seal(k, m, false), signed: true},
		{name: "signed and encrypted", opener: k, s: seal(k, m, true), signed: true},
		{name: "unsigned where required", opener: k, s: seal(none, m, false), refusal: "not signed", isSignature: true},
		{name: "unsigned where allowed", opener: k, s: seal(none, m, false), allowUnsigned: true},
		{name: "unknown key", opener: k, s: seal(other, m, false), refusal: "does not hold", isSignature: true},
		{name: "bad signature where unsigned is allowed", opener: k, s: seal(other, m, false), allowUnsigned: true, refusal: "does not hold", isSignature: true},
		{name: "moved to another queue", opener: k, s: seal(k, moved, false), refusal: "moved", isSignature: true},
		{name: "no signing keys: nothing verified", opener: encOnly, s: seal(other, m, false)},
		{name: "no signing keys, encrypted", opener: encOnly, s: seal(k, m, true)},
		{name: "no keyring, clear args", opener: none, s: seal(k, m, false)},
		{name: "no keyring, encrypted", opener: none, s: seal(k, m, true), refusal: "no keyring"},
		{name: "verified, then the key is missing", opener: mustKeyring(t, File{Version: 1, Signing: f.Signing}), s: seal(k, m, true), signed: true, refusal: "does not hold"},
	}
	for _, c := range cases {
		got, signed, err := c.opener.Open(m, c.s.Args, c.s.Envelope, c.allowUnsigned)
		if c.refusal == "" {
			if err != nil || !bytes.Equal(got, pt) || signed != c.signed {
				t.Errorf("%s: Open = %s, signed %v, %v; want the args, signed %v", c.name, got, signed, err, c.signed)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.refusal) || got != nil {
			t.Errorf("%s: Open = %s, %v; want a refusal saying %q", c.name, got, err, c.refusal)
		}
		if errors.Is(err, ErrSignature) != c.isSignature {
			t.Errorf("%s: errors.Is(%v, ErrSignature) = %v, want %v", c.name, err, !c.isSignature, c.isSignature)
		}
		if signed != c.signed {
			t.Errorf("%s: signed = %v, want %v", c.name, signed, c.signed)
		}
	}
}

// A nil keyring seals nothing and refuses to encrypt.
func TestSealWithoutKeyring(t *testing.T) {
	t.Parallel()
	var none *Keyring
	s, err := none.Seal(Meta{Class: "C"}, []byte(`[1]`), false)
	if err != nil || string(s.Args) != `[1]` || s.Enc != nil || s.Sig != nil {
		t.Errorf("Seal without keyring = %+v, %v; want the args as they are", s, err)
	}
	if _, err := none.Seal(Meta{Class: "C"}, []byte(`[1]`), true); err == nil || !strings.Contains(err.Error(), "no encryption key") {
		t.Errorf("encrypting without keyring: %v", err)
	}
}
