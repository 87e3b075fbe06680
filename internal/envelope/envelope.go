// Package envelope is the only resq package that does cryptography: job ids
// now; payload limits, signing and encryption build on it.
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
