// Package envelope is the only resq package that signs and encrypts jobs.
// A producer seals a job's args (Keyring.Seal: encrypt, then sign), a worker
// opens them (Keyring.Open: verify under the signing policy, then decrypt),
// and an administrator moves them to new keys (Keyring.Reseal). It also
// holds the keyring file format, the payload limits checked before anything
// decodes a payload, and job ids. It does not know Redis or the payload's
// field names: internal/wire carries an Envelope in and out of a payload.
package envelope

import (
	"crypto/rand"
	"encoding/hex"
)

// NewID returns a random 128-bit job id as 32 lowercase hex digits.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}
