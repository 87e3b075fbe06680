package redistest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"
)

func TestStartTLSRequiresClientCert(t *testing.T) {
	t.Parallel()
	s := StartTLS(t, TLSOptions{})
	if got := s.Do(t, "PING"); got != "PONG" {
		t.Fatalf("plain control port PING = %q", got)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(s.Certs.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("reading CA: %v", err)
	}
	cert, err := tls.LoadX509KeyPair(s.Certs.ClientCertFile, s.Certs.ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ping := func(cfg *tls.Config) error {
		c, err := tls.Dial("tcp", s.TLSAddr(), cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			return err
		}
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(buf[:n]), "+PONG") {
			t.Fatalf("TLS PING answered %q", buf[:n])
		}
		return nil
	}
	if err := ping(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}); err != nil {
		t.Fatalf("with client certificate: %v", err)
	}
	if err := ping(&tls.Config{RootCAs: pool}); err == nil {
		t.Fatal("without a client certificate the server answered; want refusal")
	}
}

func TestStartSentinelFailover(t *testing.T) {
	t.Parallel()
	d := StartSentinel(t, SentinelOptions{})
	if got := d.MasterAddr(t); got != d.Master.Addr() {
		t.Fatalf("master = %s, want %s", got, d.Master.Addr())
	}
	d.Master.Do(t, "SET", "k", "v")
	nm := d.Failover(t)
	if nm != d.Replica {
		t.Fatalf("new master %s, want the replica %s", nm.Addr(), d.Replica.Addr())
	}
	if got := nm.Do(t, "GET", "k"); got != "v" {
		t.Fatalf("GET k on new master = %q", got)
	}
}

func TestStartCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, Options{})
	owner := c.SlotOwner(t, "{resque}:queues")
	if _, err := owner.Try("SADD", "{resque}:queues", "q"); err != nil {
		t.Fatalf("SADD on owner: %v", err)
	}
	for _, n := range c.Nodes {
		if n == owner {
			continue
		}
		_, err := n.Try("SADD", "{resque}:queues", "q")
		if err == nil || !strings.HasPrefix(err.Error(), "MOVED") {
			t.Fatalf("SADD on non-owner %s: %v, want MOVED", n.Addr(), err)
		}
	}
}

func TestStartSentinelWithPasswords(t *testing.T) {
	t.Parallel()
	d := StartSentinel(t, SentinelOptions{Options: Options{Password: "data-pw"}, SentinelPassword: "sent-pw"})
	if _, err := command(d.Sentinels[0].Addr(), "", 0, time.Second, "SENTINEL", "masters"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("sentinel without password: %v, want NOAUTH", err)
	}
	if _, err := command(d.Master.Addr(), "", 0, time.Second, "GET", "k"); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("master without password: %v, want NOAUTH", err)
	}
	d.Master.Do(t, "SET", "k", "v")
	if nm := d.Failover(t); nm.Do(t, "GET", "k") != "v" {
		t.Fatal("data lost in failover")
	}
}
