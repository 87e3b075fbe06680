package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Certs are PEM files made by NewCerts: a private CA, a server certificate
// for 127.0.0.1 and localhost and a client certificate, both signed by the
// CA, and a second, unrelated CA with its own server and client
// certificates for "untrusted" cases.
type Certs struct {
	Dir                           string
	CAFile                        string
	ServerCertFile, ServerKeyFile string
	ClientCertFile, ClientKeyFile string
	// OtherCAFile signs OtherServer* and OtherClient*; nothing trusts it.
	OtherCAFile                             string
	OtherServerCertFile, OtherServerKeyFile string
	OtherClientCertFile, OtherClientKeyFile string
}

// NewCerts writes a fresh set of certificates into a temporary directory
// removed when the test ends.
func NewCerts(tb testing.TB) *Certs {
	tb.Helper()
	dir := tb.TempDir()
	c := &Certs{Dir: dir}
	var err error
	write := func(name string, f func() error) {
		if err == nil {
			if e := f(); e != nil {
				err = fmt.Errorf("%s: %v", name, e)
			}
		}
	}
	mk := func(prefix string) (caFile, srvCert, srvKey, cliCert, cliKey string) {
		caFile = filepath.Join(dir, prefix+"ca.crt")
		srvCert, srvKey = filepath.Join(dir, prefix+"server.crt"), filepath.Join(dir, prefix+"server.key")
		cliCert, cliKey = filepath.Join(dir, prefix+"client.crt"), filepath.Join(dir, prefix+"client.key")
		var ca *x509.Certificate
		var caKey *ecdsa.PrivateKey
		write(prefix+"CA", func() error {
			var e error
			ca, caKey, e = makeCert(caFile, "", nil, nil, true, prefix+"resq test CA")
			return e
		})
		write(prefix+"server", func() error {
			_, _, e := makeCert(srvCert, srvKey, ca, caKey, false, "localhost")
			return e
		})
		write(prefix+"client", func() error {
			_, _, e := makeCert(cliCert, cliKey, ca, caKey, false, "resq test client")
			return e
		})
		return
	}
	c.CAFile, c.ServerCertFile, c.ServerKeyFile, c.ClientCertFile, c.ClientKeyFile = mk("")
	c.OtherCAFile, c.OtherServerCertFile, c.OtherServerKeyFile, c.OtherClientCertFile, c.OtherClientKeyFile = mk("other-")
	if err != nil {
		tb.Fatalf("redistest: making certificates: %v", err)
	}
	return c
}

// makeCert creates a key and a certificate signed by parent (self-signed
// when parent is nil) and writes them as PEM. keyFile "" skips the key file.
func makeCert(certFile, keyFile string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool, cn string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: []string{"resq redistest"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		// Redis uses one certificate for its listener and its outgoing
		// (replication, cluster bus) connections: allow both uses.
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, nil, err
	}
	if keyFile != "" {
		kd, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
			return nil, nil, err
		}
	}
	return cert, key, nil
}

// TLSOptions configures StartTLS.
type TLSOptions struct {
	Options
	// Certs are the certificates to serve; default NewCerts(tb).
	Certs *Certs
	// AuthClients is redis-server's tls-auth-clients: "yes" (Redis's
	// default: a client certificate signed by the CA is required), "no" or
	// "optional". Default "yes".
	AuthClients string
}

// TLSServer is a Server that also listens for TLS on TLSPort with Certs'
// server certificate. Its plain port (Addr, Do, Try) stays open on loopback
// for the test's own set-up and checks; clients under test use TLSAddr.
type TLSServer struct {
	*Server
	Certs   *Certs
	TLSPort int
}

// StartTLS starts a redis-server with a TLS listener. It fails the test
// (never skips) if redis-server lacks TLS support.
func StartTLS(tb testing.TB, o TLSOptions) *TLSServer {
	tb.Helper()
	if o.Certs == nil {
		o.Certs = NewCerts(tb)
	}
	if o.AuthClients == "" {
		o.AuthClients = "yes"
	}
	port, err := freePort()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	o.Args = append(append([]string(nil), o.Args...),
		"--tls-port", strconv.Itoa(port),
		"--tls-cert-file", o.Certs.ServerCertFile,
		"--tls-key-file", o.Certs.ServerKeyFile,
		"--tls-ca-cert-file", o.Certs.CAFile,
		"--tls-auth-clients", o.AuthClients)
	s := StartWith(tb, o.Options)
	return &TLSServer{Server: s, Certs: o.Certs, TLSPort: port}
}

// TLSAddr returns "127.0.0.1:TLSPORT".
func (s *TLSServer) TLSAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.TLSPort)) }

// TLSURL returns "rediss://127.0.0.1:TLSPORT/0".
func (s *TLSServer) TLSURL() string { return "rediss://" + s.TLSAddr() + "/0" }
