package resq

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// offlineConn is a Conn for code that does no I/O (Open does none): nothing
// here talks to Redis.
func offlineConn(t *testing.T) *Conn {
	t.Helper()
	conn, err := Open(ConnConfig{URL: "redis://127.0.0.1:1/0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A worker's refusal of an unsigned, forged or moved job matches
// ErrSignature and is recorded as ExceptionSignature; a job it cannot
// decrypt is refused too, without matching ErrSignature. Jobs are sealed by
// Client.encode and opened by Worker.open, the two ends of the envelope.
func TestSignatureRefusalsMatchErrSignature(t *testing.T) {
	t.Parallel()
	conn := offlineConn(t)
	newKeyring := func() *Keyring {
		t.Helper()
		data, err := NewKeyringFile(KeyHMAC)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ParseKeyring(data)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k, other := newKeyring(), newKeyring()
	seal := func(k *Keyring, queue string, encrypt bool) wire.Payload {
		t.Helper()
		job := &Job{ID: "0123456789abcdef0123456789abcdef", Class: "Charge", Queue: queue, Args: json.RawMessage(`[1]`),
			EnqueuedAt: time.UnixMilli(1705314225123), Encrypted: encrypt}
		c, err := NewClient(conn, ClientConfig{Keyring: k})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.encode(job); err != nil {
			t.Fatal(err)
		}
		p, err := wire.DecodePayload(job.payload)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	verifier, err := NewWorker(conn, WorkerConfig{Queues: []string{"q", "legacy"}, Keyring: k, AllowUnsigned: []string{"legacy"}})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := NewWorker(conn, WorkerConfig{Queues: []string{"q"}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		w         *Worker
		p         wire.Payload
		queue     string
		exception string // "" runs
		signed    bool
	}{
		{"signed", verifier, seal(k, "q", false), "q", "", true},
		{"signed and encrypted", verifier, seal(k, "q", true), "q", "", true},
		{"unsigned allowed", verifier, seal(nil, "legacy", false), "legacy", "", false},
		{"unsigned", verifier, seal(nil, "q", false), "q", ExceptionSignature, false},
		{"forged", verifier, seal(other, "q", false), "q", ExceptionSignature, false},
		{"forged, on a queue that allows unsigned jobs", verifier, seal(other, "legacy", false), "legacy", ExceptionSignature, false},
		{"moved", verifier, seal(k, "other", false), "q", ExceptionSignature, false},
		{"encrypted, no keyring", plain, seal(k, "q", true), "q", ExceptionDecrypt, false},
	}
	for _, c := range cases {
		args, elems, signed, exception, err := c.w.open(c.p, c.queue)
		if exception != c.exception || signed != c.signed {
			t.Errorf("%s: exception %q, signed %v (%v); want %q, %v", c.name, exception, signed, err, c.exception, c.signed)
		}
		if c.exception == "" {
			if err != nil || string(args) != "[1]" || len(elems) != 1 {
				t.Errorf("%s: open = %s, %v", c.name, args, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if want := c.exception == ExceptionSignature; errors.Is(err, ErrSignature) != want {
			t.Errorf("%s: errors.Is(%q, ErrSignature) = %v, want %v", c.name, err, !want, want)
		}
	}
}

// A job marked Encrypted (by middleware, say) on a Client without a keyring
// is refused, not pushed with its args in clear.
func TestEncodeRefusesEncryptionWithoutKeyring(t *testing.T) {
	t.Parallel()
	conn := offlineConn(t)
	job := &Job{ID: "x", Class: "C", Queue: "q", Args: json.RawMessage(`["secret"]`), EnqueuedAt: time.Now(), Encrypted: true}
	c, err := NewClient(conn, ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	err = c.encode(job)
	if err == nil || !strings.Contains(err.Error(), "no encryption key") || job.payload != nil {
		t.Errorf("encode = %v, payload %s; want a refusal and no payload", err, job.payload)
	}
}
