package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"encoding/base64"
	"testing"
)

// The test vector of docs/protocol.md ("Signing and encryption envelope");
// interop/node/test/cli.test.js checks the Node implementation against the
// same values.
func seq(from byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = from + byte(i)
	}
	return b
}

var vectorMeta = Meta{Class: "SendWelcome", Queue: "mail", ID: "0123456789abcdef0123456789abcdef", EnqueuedAt: "1705314225.123"}

const vectorArgs = `[{"user_id":42}]`

func vectorKeyring(t *testing.T, sigType string) *Keyring {
	t.Helper()
	f := File{Version: 1}
	switch sigType {
	case TypeHMAC:
		f.Signing = KeySet{Primary: "s1", Keys: []Key{{ID: "s1", Type: TypeHMAC, Secret: base64.StdEncoding.EncodeToString(seq(0x00, 32))}}}
	case TypeEd25519:
		priv := ed25519.NewKeyFromSeed(seq(0x20, 32))
		f.Signing = KeySet{Primary: "s1", Keys: []Key{{ID: "s1", Type: TypeEd25519, Private: base64.StdEncoding.EncodeToString(priv)}}}
	}
	f.Encryption = KeySet{Primary: "e1", Keys: []Key{{ID: "e1", Type: TypeAESGCM, Secret: base64.StdEncoding.EncodeToString(seq(0x40, 32))}}}
	return mustKeyring(t, f)
}

func TestSigningVector(t *testing.T) {
	// Encrypt with the fixed nonce 0x60…0x6b.
	block, _ := aes.NewCipher(seq(0x40, 32))
	aead, _ := cipher.NewGCM(block)
	enc := &Ciphertext{KID: "e1", Nonce: seq(0x60, 12), Data: aead.Seal(nil, seq(0x60, 12), []byte(vectorArgs), AssociatedData(vectorMeta))}

	want := map[string]string{
		"ad":            "resq-enc-v1\n11:SendWelcome,4:mail,32:0123456789abcdef0123456789abcdef,",
		"message":       "resq-sig-v1\n11:SendWelcome,4:mail,32:0123456789abcdef0123456789abcdef,14:1705314225.123,16:[{\"user_id\":42}],0:,0:,0:,",
		"ct":            "91MrcHTx4vlg5VsMMbQhVo96rROXVSBvaVSpFdTmBVI=",
		"hmac plain":    "qcRg504Z9bUl5cHLspFShJaZQd+AxNQxuc4GP4cL+3Q=",
		"ed25519 plain": "+CH2wQMyNHKLEzI3gdIsn2DhLfT6eHENQt9B+vwBWEx/6QLdm98sB04JluHNzdh/8acF3ZXjbhMiW/7s17F6CQ==",
		"hmac enc":      "2SYCxB7aQtxRFm0xtEzg/VyDGIeBv6o7lkYnZSDfe2s=",
		"ed25519 enc":   "A7bsHgppa5hBi3mj4AhzN2Aagt40wmvfOYgg3KcOrcgeMyETRaIPq3BnggdVnkpv9DEjzTOv6RQYRUh8XTuODw==",
	}
	got := map[string]string{
		"ad":      string(AssociatedData(vectorMeta)),
		"message": string(SigningMessage(vectorMeta, []byte(vectorArgs), nil)),
		"ct":      base64.StdEncoding.EncodeToString(enc.Data),
	}
	for _, typ := range []string{TypeHMAC, TypeEd25519} {
		k := vectorKeyring(t, typ)
		plain := k.sign(SigningMessage(vectorMeta, []byte(vectorArgs), nil))
		sealed := k.sign(SigningMessage(vectorMeta, []byte("[]"), enc))
		name := map[string]string{TypeHMAC: "hmac", TypeEd25519: "ed25519"}[typ]
		got[name+" plain"] = base64.StdEncoding.EncodeToString(plain.Value)
		got[name+" enc"] = base64.StdEncoding.EncodeToString(sealed.Value)
		if err := k.Verify(vectorMeta, []byte(vectorArgs), nil, plain); err != nil {
			t.Fatal(err)
		}
		if err := k.Verify(vectorMeta, []byte("[]"), enc, sealed); err != nil {
			t.Fatal(err)
		}
		if pt, err := k.Decrypt(vectorMeta, enc); err != nil || string(pt) != vectorArgs {
			t.Fatalf("decrypt: %q %v", pt, err)
		}
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s:\n got %q\nwant %q", name, got[name], w)
		}
	}
}
