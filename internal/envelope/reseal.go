package envelope

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
)

// SigningPrimary returns the id of the signing primary ("" when the keyring
// cannot sign).
func (k *Keyring) SigningPrimary() string { return k.signPrime }

// sign signs msg with the signing primary.
func (k *Keyring) sign(msg []byte) *Signature {
	sk := k.signKeys[k.signPrime]
	var v []byte
	if sk.typ == TypeHMAC {
		mac := hmac.New(sha256.New, sk.hmac)
		mac.Write(msg)
		v = mac.Sum(nil)
	} else {
		v = ed25519.Sign(sk.priv, msg)
	}
	return &Signature{KID: k.signPrime, Value: v}
}

// Reseal moves a sealed payload onto the keyring's primary keys, so that
// older keys can be retired: ciphertext under another key is decrypted and
// encrypted again under the encryption primary, and a signature by another
// key (or over ciphertext that changed) is made again with the signing
// primary. args and env are the payload's as stored; m binds them to the
// job as Seal did.
//
// It never adds protection a payload did not have, and never launders one:
// an unsigned payload stays unsigned, and a signed payload is re-signed only
// after its current signature verifies (a forged or moved job fails here
// with a *SignatureError, as it would at a worker). changed is false when
// the payload already uses the primaries; s then holds the inputs.
func (k *Keyring) Reseal(m Meta, args []byte, env Envelope) (s Sealed, changed bool, err error) {
	enc, sig := env.Enc, env.Sig
	s = Sealed{Args: args, Envelope: env}
	needEnc := enc != nil && enc.KID != k.encPrime
	needSig := sig != nil && (needEnc || sig.KID != k.signPrime)
	if !needEnc && !needSig {
		return s, false, nil
	}
	if sig != nil {
		if err := k.Verify(m, args, enc, sig); err != nil {
			return s, false, err
		}
		if !k.CanSign() {
			return s, false, errors.New("the job is signed and this keyring has no signing primary to sign it again (use the producers' keyring, not a verify-only one)")
		}
	}
	if needEnc {
		if !k.CanEncrypt() {
			return s, false, errors.New("the keyring has no encryption primary to encrypt with")
		}
		pt, err := k.Decrypt(m, enc)
		if err != nil {
			return s, false, err
		}
		aead := k.encKeys[k.encPrime]
		nonce := randomBytes(aead.NonceSize())
		s.Enc = &Ciphertext{KID: k.encPrime, Nonce: nonce, Data: aead.Seal(nil, nonce, pt, AssociatedData(m))}
	}
	if sig != nil {
		s.Sig = k.sign(SigningMessage(m, s.Args, s.Enc))
	}
	return s, true, nil
}
