package wire

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
)

// IsPermanent reports whether err is one that waiting will not fix: Redis
// refused the credentials (WRONGPASS, NOAUTH, AUTH without a password
// configured), the ACL user lacks a command or key (NOPERM), the database
// index does not exist, the namespace crosses cluster slots (CROSSSLOT,
// ErrNoHashTag), a cluster client talks to a server without cluster mode, or
// TLS failed on certificates (an untrusted or misnamed server, a client
// certificate the server wants and did not get or does not trust).
//
// Connection loss, timeouts, LOADING, READONLY and MASTERDOWN during a
// failover, CLUSTERDOWN and TRYAGAIN are not permanent: callers retry them
// with backoff. A process that gets a permanent error at start-up should
// stop with that one message rather than retry forever.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrNoHashTag) {
		return true
	}
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalid) || errors.As(err, &verify) {
		return true
	}
	msg := err.Error()
	for _, p := range permanentMarks {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// permanentMarks are substrings of Redis error replies (and of Go's TLS
// alerts, which arrive as plain errors) that IsPermanent treats as final.
var permanentMarks = []string{
	"WRONGPASS",
	"NOAUTH",
	"NOPERM",
	"CROSSSLOT",
	"without any password configured", // AUTH sent to a server with no password
	"invalid password",                // Redis before 6
	"DB index is out of range",
	"cluster support disabled", // cluster client, non-cluster server
	"tls: certificate required",
	"tls: bad certificate",
	"tls: unknown certificate authority",
	"tls: certificate unknown",
	"tls: protocol version not supported",
	"certificate signed by unknown authority",
	"x509: ",
}
