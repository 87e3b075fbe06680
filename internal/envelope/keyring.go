package envelope

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Key types.
const (
	TypeHMAC    = "hmac-sha256"
	TypeEd25519 = "ed25519"
	TypeAESGCM  = "aes-256-gcm"
)

// Key is one keyring entry. Secrets are base64 (standard, padded).
type Key struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Secret  string `json:"secret,omitempty"`  // hmac-sha256 and aes-256-gcm: 32 bytes
	Private string `json:"private,omitempty"` // ed25519: 64-byte private key (seed+public)
	Public  string `json:"public,omitempty"`  // ed25519: 32-byte public key
	Created string `json:"created,omitempty"`
}

// KeySet is a primary key id and the keys known for one purpose.
type KeySet struct {
	Primary string `json:"primary,omitempty"`
	Keys    []Key  `json:"keys"`
}

// File is the keyring file format (JSON, mode 0600).
type File struct {
	Version    int    `json:"version"`
	Signing    KeySet `json:"signing"`
	Encryption KeySet `json:"encryption"`
}

// Keyring holds decoded keys. Sign with the signing primary; verify with any
// signing key; encrypt with the encryption primary; decrypt with any.
type Keyring struct {
	file      File
	signKeys  map[string]signKey
	encKeys   map[string]cipher.AEAD
	signPrime string
	encPrime  string
}

type signKey struct {
	typ  string
	hmac []byte
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

// ParseKeyring decodes and checks a keyring file's contents.
func ParseKeyring(data []byte) (*Keyring, error) {
	var f File
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("keyring is not valid: %w", err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("keyring version %d is not supported (want 1)", f.Version)
	}
	k := &Keyring{file: f, signKeys: map[string]signKey{}, encKeys: map[string]cipher.AEAD{}}
	for _, key := range f.Signing.Keys {
		if key.ID == "" || strings.ContainsAny(key.ID, "\"\\") {
			return nil, fmt.Errorf("keyring: signing key with a bad id %q", key.ID)
		}
		if _, dup := k.signKeys[key.ID]; dup {
			return nil, fmt.Errorf("keyring: signing key id %q appears twice", key.ID)
		}
		sk, err := decodeSignKey(key)
		if err != nil {
			return nil, fmt.Errorf("keyring: signing key %s: %w", key.ID, err)
		}
		k.signKeys[key.ID] = sk
	}
	for _, key := range f.Encryption.Keys {
		if key.Type != TypeAESGCM {
			return nil, fmt.Errorf("keyring: encryption key %s has type %q; only %s is supported", key.ID, key.Type, TypeAESGCM)
		}
		if _, dup := k.encKeys[key.ID]; dup || key.ID == "" {
			return nil, fmt.Errorf("keyring: encryption key id %q is empty or appears twice", key.ID)
		}
		secret, err := base64.StdEncoding.DecodeString(key.Secret)
		if err != nil || len(secret) != 32 {
			return nil, fmt.Errorf("keyring: encryption key %s: secret must be 32 bytes of base64", key.ID)
		}
		block, _ := aes.NewCipher(secret)
		aead, _ := cipher.NewGCM(block)
		k.encKeys[key.ID] = aead
	}
	if p := f.Signing.Primary; p != "" {
		sk, ok := k.signKeys[p]
		if !ok {
			return nil, fmt.Errorf("keyring: signing primary %q is not among the signing keys", p)
		}
		if sk.typ == TypeEd25519 && sk.priv == nil {
			return nil, fmt.Errorf("keyring: signing primary %q is an ed25519 public key; a producer needs its private key", p)
		}
		k.signPrime = p
	}
	if p := f.Encryption.Primary; p != "" {
		if _, ok := k.encKeys[p]; !ok {
			return nil, fmt.Errorf("keyring: encryption primary %q is not among the encryption keys", p)
		}
		k.encPrime = p
	}
	return k, nil
}

func decodeSignKey(key Key) (signKey, error) {
	switch key.Type {
	case TypeHMAC:
		secret, err := base64.StdEncoding.DecodeString(key.Secret)
		if err != nil || len(secret) < 32 {
			return signKey{}, errors.New("secret must be at least 32 bytes of base64")
		}
		return signKey{typ: TypeHMAC, hmac: secret}, nil
	case TypeEd25519:
		sk := signKey{typ: TypeEd25519}
		if key.Private != "" {
			priv, err := base64.StdEncoding.DecodeString(key.Private)
			if err != nil || len(priv) != ed25519.PrivateKeySize {
				return signKey{}, errors.New("private key must be 64 bytes of base64")
			}
			sk.priv = ed25519.PrivateKey(priv)
			sk.pub = sk.priv.Public().(ed25519.PublicKey)
		}
		if key.Public != "" {
			pub, err := base64.StdEncoding.DecodeString(key.Public)
			if err != nil || len(pub) != ed25519.PublicKeySize {
				return signKey{}, errors.New("public key must be 32 bytes of base64")
			}
			if sk.pub != nil && !bytes.Equal(sk.pub, pub) {
				return signKey{}, errors.New("public key does not match the private key")
			}
			sk.pub = ed25519.PublicKey(pub)
		}
		if sk.pub == nil {
			return signKey{}, errors.New("ed25519 key has neither private nor public part")
		}
		return sk, nil
	default:
		return signKey{}, fmt.Errorf("type %q is not supported (use %s or %s)", key.Type, TypeHMAC, TypeEd25519)
	}
}

// LoadKeyring reads a keyring file. A file that holds secrets (HMAC,
// Ed25519 private or encryption keys) must not be readable by group or
// others.
func LoadKeyring(path string) (*Keyring, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k, err := ParseKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if k.HasSecrets() && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keyring %s holds secret keys but its mode is %04o; run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	return k, nil
}

// HasSecrets reports whether the keyring holds any secret key material.
func (k *Keyring) HasSecrets() bool {
	if len(k.encKeys) > 0 {
		return true
	}
	for _, s := range k.signKeys {
		if s.typ == TypeHMAC || s.priv != nil {
			return true
		}
	}
	return false
}

// CanSign reports whether the keyring has a signing primary.
func (k *Keyring) CanSign() bool { return k != nil && k.signPrime != "" }

// CanVerify reports whether the keyring has any signing key.
func (k *Keyring) CanVerify() bool { return k != nil && len(k.signKeys) > 0 }

// CanEncrypt reports whether the keyring has an encryption primary.
func (k *Keyring) CanEncrypt() bool { return k != nil && k.encPrime != "" }

// EncryptionPrimary returns the id of the encryption primary.
func (k *Keyring) EncryptionPrimary() string { return k.encPrime }

// File returns a copy of the keyring's file form.
func (k *Keyring) File() File { return k.file.clone() }

func (f File) clone() File {
	f.Signing.Keys = append([]Key(nil), f.Signing.Keys...)
	f.Encryption.Keys = append([]Key(nil), f.Encryption.Keys...)
	return f
}

// Marshal encodes a keyring file.
func (f File) Marshal() []byte {
	b, _ := json.MarshalIndent(f, "", "  ")
	return append(b, '\n')
}

// NewFile makes a keyring with one fresh signing key of sigType (hmac-sha256
// or ed25519) and one fresh AES-256-GCM encryption key, both primary.
func NewFile(sigType string) (File, error) {
	f := File{Version: 1}
	if err := f.Rotate(sigType); err != nil {
		return File{}, err
	}
	return f, nil
}

// Rotate adds a new signing key (of sigType, or the current primary's type
// when empty) and a new encryption key, and makes them primary. Old keys
// stay for verification and decryption.
func (f *File) Rotate(sigType string) error {
	if sigType == "" {
		sigType = TypeEd25519
		for _, k := range f.Signing.Keys {
			if k.ID == f.Signing.Primary {
				sigType = k.Type
			}
		}
	}
	now := time.Now().UTC().Format(time.RFC3339)
	sk := Key{ID: "s" + randomHex(4), Type: sigType, Created: now}
	switch sigType {
	case TypeHMAC:
		sk.Secret = base64.StdEncoding.EncodeToString(randomBytes(32))
	case TypeEd25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		sk.Private = base64.StdEncoding.EncodeToString(priv)
		sk.Public = base64.StdEncoding.EncodeToString(pub)
	default:
		return fmt.Errorf("signing key type %q is not supported (use %s or %s)", sigType, TypeHMAC, TypeEd25519)
	}
	ek := Key{ID: "e" + randomHex(4), Type: TypeAESGCM, Secret: base64.StdEncoding.EncodeToString(randomBytes(32)), Created: now}
	f.Signing.Keys = append(f.Signing.Keys, sk)
	f.Signing.Primary = sk.ID
	f.Encryption.Keys = append(f.Encryption.Keys, ek)
	f.Encryption.Primary = ek.ID
	if f.Version == 0 {
		f.Version = 1
	}
	return nil
}

// Retire removes a key (signing or encryption) by id. The primaries cannot
// be retired.
func (f *File) Retire(id string) error {
	if id == f.Signing.Primary || id == f.Encryption.Primary {
		return fmt.Errorf("key %s is a primary key; rotate first", id)
	}
	for _, set := range []*KeySet{&f.Signing, &f.Encryption} {
		for i, k := range set.Keys {
			if k.ID == id {
				keys := make([]Key, 0, len(set.Keys)-1)
				set.Keys = append(append(keys, set.Keys[:i]...), set.Keys[i+1:]...)
				return nil
			}
		}
	}
	return fmt.Errorf("no key %s in the keyring", id)
}

// VerifyOnly returns the keyring a worker needs to verify Ed25519
// signatures: public keys only, plus HMAC and encryption keys (which are
// shared secrets by nature).
func (f File) VerifyOnly() File {
	out := File{Version: 1, Encryption: f.Encryption}
	for _, k := range f.Signing.Keys {
		if k.Type == TypeEd25519 {
			k.Private = ""
		}
		out.Signing.Keys = append(out.Signing.Keys, k)
	}
	for _, k := range f.Signing.Keys {
		if k.ID == f.Signing.Primary && k.Type != TypeEd25519 {
			out.Signing.Primary = k.ID
		}
	}
	return out
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// Meta is what a signature and the encryption's associated data bind a job
// to. EnqueuedAt is the exact text of the payload's enqueued_at value.
type Meta struct {
	Class, Queue, ID, EnqueuedAt string
}

// Ciphertext is encrypted args.
type Ciphertext struct {
	KID   string
	Nonce []byte
	Data  []byte
}

// Signature is a payload signature.
type Signature struct {
	KID   string
	Value []byte
}

// Envelope is the protection a payload carries: its ciphertext (nil when
// the args are in clear) and its signature (nil when unsigned). internal/wire
// reads it from and writes it into a payload.
type Envelope struct {
	Enc *Ciphertext
	Sig *Signature
}

// Sealed is what Seal produces for the payload: the args to store (the
// plaintext, or "[]" when encrypted) and their envelope.
type Sealed struct {
	Args []byte
	Envelope
}

func netstring(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, ',')
}

// SigningMessage is the exact byte string a signature covers (version 1):
//
//	"resq-sig-v1\n" ns(class) ns(queue) ns(id) ns(enqueued_at) ns(args) ns(enc.kid) ns(enc.nonce) ns(enc.ct)
//
// where ns(x) is len(x) in decimal, ":", x, "," (a netstring); args is the
// exact bytes of the payload's args value; the enc fields are empty strings
// when the args are not encrypted, else the key id and the raw (decoded)
// nonce and ciphertext bytes.
func SigningMessage(m Meta, args []byte, enc *Ciphertext) []byte {
	b := make([]byte, 0, 64+len(m.Class)+len(m.Queue)+len(args))
	b = append(b, "resq-sig-v1\n"...)
	b = netstring(b, m.Class)
	b = netstring(b, m.Queue)
	b = netstring(b, m.ID)
	b = netstring(b, m.EnqueuedAt)
	b = netstring(b, string(args))
	if enc != nil {
		b = netstring(b, enc.KID)
		b = netstring(b, string(enc.Nonce))
		b = netstring(b, string(enc.Data))
	} else {
		b = append(b, "0:,0:,0:,"...)
	}
	return b
}

// AssociatedData is the AEAD associated data (version 1):
// "resq-enc-v1\n" ns(class) ns(queue) ns(id).
func AssociatedData(m Meta) []byte {
	b := []byte("resq-enc-v1\n")
	b = netstring(b, m.Class)
	b = netstring(b, m.Queue)
	return netstring(b, m.ID)
}

// Seal is the producer's side of the envelope: it encrypts args (when
// encrypt is set) and signs the result (when the keyring can sign). A nil
// keyring seals nothing, and refuses encrypt.
func (k *Keyring) Seal(m Meta, args []byte, encrypt bool) (Sealed, error) {
	s := Sealed{Args: args}
	if encrypt {
		if !k.CanEncrypt() {
			return s, errors.New("encryption requested but the keyring has no encryption key (make one with: resq keys new --out FILE)")
		}
		aead := k.encKeys[k.encPrime]
		nonce := randomBytes(aead.NonceSize())
		s.Enc = &Ciphertext{KID: k.encPrime, Nonce: nonce, Data: aead.Seal(nil, nonce, args, AssociatedData(m))}
		s.Args = []byte("[]")
	}
	if k.CanSign() {
		s.Sig = k.sign(SigningMessage(m, s.Args, s.Enc))
	}
	return s, nil
}

// ErrSignature is matched (errors.Is) by every *SignatureError: a job
// refused because it is unsigned where signatures are required, signed with
// an unknown key, or forged, altered or moved. The root package exports it
// as resq.ErrSignature.
var ErrSignature = errors.New("resq: signature")

// SignatureError says why a job's signature was refused.
type SignatureError struct{ Reason string }

func (e *SignatureError) Error() string { return "signature: " + e.Reason }

// Is makes errors.Is(err, ErrSignature) true.
func (e *SignatureError) Is(target error) bool { return target == ErrSignature }

// Verify checks the signature of a payload. A nil sig is refused.
func (k *Keyring) Verify(m Meta, args []byte, enc *Ciphertext, sig *Signature) error {
	if sig == nil {
		return &SignatureError{Reason: "the job is not signed and this worker requires signatures on its queue"}
	}
	sk, ok := k.signKeys[sig.KID]
	if !ok {
		return &SignatureError{Reason: fmt.Sprintf("signed with key %q, which this worker's keyring does not hold", sig.KID)}
	}
	msg := SigningMessage(m, args, enc)
	switch sk.typ {
	case TypeHMAC:
		mac := hmac.New(sha256.New, sk.hmac)
		mac.Write(msg)
		if subtle.ConstantTimeCompare(mac.Sum(nil), sig.Value) != 1 {
			return &SignatureError{Reason: "does not match (the job was forged, altered, or moved to another queue)"}
		}
	case TypeEd25519:
		if !ed25519.Verify(sk.pub, msg, sig.Value) {
			return &SignatureError{Reason: "does not match (the job was forged, altered, or moved to another queue)"}
		}
	}
	return nil
}

// Decrypt opens encrypted args.
func (k *Keyring) Decrypt(m Meta, enc *Ciphertext) ([]byte, error) {
	if k == nil {
		return nil, errors.New("decrypt: the job's args are encrypted and this worker has no keyring")
	}
	aead, ok := k.encKeys[enc.KID]
	if !ok {
		return nil, fmt.Errorf("decrypt: encrypted with key %q, which this worker's keyring does not hold", enc.KID)
	}
	if len(enc.Nonce) != aead.NonceSize() {
		return nil, errors.New("decrypt: bad nonce")
	}
	pt, err := aead.Open(nil, enc.Nonce, enc.Data, AssociatedData(m))
	if err != nil {
		return nil, errors.New("decrypt: authentication failed (wrong key, or the job was altered or moved to another queue)")
	}
	return pt, nil
}
