package resq

import (
	"github.com/resq-go/resq/internal/envelope"
)

// Limits bound a job payload before anything decodes it. Zero fields take
// the defaults. Both Clients (refusing to enqueue) and Workers (failing the
// job with a record that names the limit) apply them.
type Limits struct {
	// MaxPayloadBytes is the largest payload in bytes. Default 512 KiB.
	MaxPayloadBytes int
	// MaxDepth is the deepest JSON nesting, counting the payload object as
	// one level. Default 32.
	MaxDepth int
	// MaxArgs is the most elements the args array may have. Default 256.
	MaxArgs int
}

func (l Limits) envelope() envelope.Limits {
	return envelope.Limits{MaxBytes: l.MaxPayloadBytes, MaxDepth: l.MaxDepth, MaxArgs: l.MaxArgs}.WithDefaults()
}

// Keyring holds signing and encryption keys (a keyring file made by
// `resq keys new`). A Client signs every job with the signing primary and
// encrypts when asked; a Worker with signing keys refuses unsigned, forged,
// altered or moved jobs and decrypts encrypted ones.
type Keyring struct {
	k *envelope.Keyring
}

// envelope returns the keyring's keys (nil for a nil Keyring).
func (k *Keyring) envelope() *envelope.Keyring {
	if k == nil {
		return nil
	}
	return k.k
}

// LoadKeyring reads a keyring file. A file with secret keys must have mode
// 0600 (no group or other access).
func LoadKeyring(path string) (*Keyring, error) {
	k, err := envelope.LoadKeyring(path)
	if err != nil {
		return nil, err
	}
	return &Keyring{k: k}, nil
}

// ParseKeyring decodes a keyring from its JSON form.
func ParseKeyring(data []byte) (*Keyring, error) {
	k, err := envelope.ParseKeyring(data)
	if err != nil {
		return nil, err
	}
	return &Keyring{k: k}, nil
}

// CanSign, CanVerify and CanEncrypt report what the keyring can do.
func (k *Keyring) CanSign() bool    { return k != nil && k.k.CanSign() }
func (k *Keyring) CanVerify() bool  { return k != nil && k.k.CanVerify() }
func (k *Keyring) CanEncrypt() bool { return k != nil && k.k.CanEncrypt() }

// Signing key types for NewKeyringFile.
const (
	KeyHMAC    = envelope.TypeHMAC
	KeyEd25519 = envelope.TypeEd25519
)

// NewKeyringFile makes the JSON of a fresh keyring: a signing key of sigType
// (KeyHMAC or KeyEd25519) and an AES-256-GCM encryption key.
func NewKeyringFile(sigType string) ([]byte, error) {
	f, err := envelope.NewFile(sigType)
	if err != nil {
		return nil, err
	}
	return f.Marshal(), nil
}

// RotateKeyringFile adds new primary keys to a keyring's JSON and keeps the
// old ones for verification and decryption.
func RotateKeyringFile(data []byte) ([]byte, error) {
	k, err := envelope.ParseKeyring(data)
	if err != nil {
		return nil, err
	}
	f := k.File()
	if err := f.Rotate(""); err != nil {
		return nil, err
	}
	return f.Marshal(), nil
}

// RetireKey removes a non-primary key from a keyring's JSON.
func RetireKey(data []byte, id string) ([]byte, error) {
	k, err := envelope.ParseKeyring(data)
	if err != nil {
		return nil, err
	}
	f := k.File()
	if err := f.Retire(id); err != nil {
		return nil, err
	}
	return f.Marshal(), nil
}

// VerifyOnlyKeyringFile returns the keyring a worker needs when producers
// sign with Ed25519: public signing keys only (HMAC and encryption keys are
// shared secrets and stay).
func VerifyOnlyKeyringFile(data []byte) ([]byte, error) {
	k, err := envelope.ParseKeyring(data)
	if err != nil {
		return nil, err
	}
	return k.File().VerifyOnly().Marshal(), nil
}

// ErrSignature is matched (errors.Is) by refusals of unsigned or badly
// signed jobs: unsigned where signatures are required, signed with a key the
// keyring does not hold, or forged, altered or moved to another queue.
var ErrSignature = envelope.ErrSignature
