package envelope

import (
	"crypto/sha1"
	"encoding/hex"
)

// SHA1Hex is the hex SHA-1 of b: the fingerprint a failure record gives an
// oversize payload it does not keep (the same digest Redis's sha1hex gives
// the fetch script). It identifies bytes; it protects nothing.
func SHA1Hex(b []byte) string {
	sum := sha1.Sum(b)
	return hex.EncodeToString(sum[:])
}
