package wire_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

func TestAuditAppendReadAndCap(t *testing.T) {
	t.Parallel()
	s, srv := newStoreNS(t, "auditns")
	at := time.Date(2026, 1, 2, 15, 4, 5, 123e6, time.UTC)
	first := wire.AuditEntry{At: at, User: "alice", Action: "failure.retry", Target: "failed/3",
		Detail: `queue "mail"`, Remote: "10.0.0.7", OK: true}
	if err := s.AppendAudit(bg, first); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, `{"at":"2026-01-02T15:04:05.123Z","user":"alice","action":"failure.retry","target":"failed/3","detail":"queue \"mail\"","remote":"10.0.0.7","ok":true}`,
		"LINDEX", "auditns:resq:audit", "0")

	for i := range wire.AuditCap + 5 {
		if err := s.AppendAudit(bg, wire.AuditEntry{At: at.Add(time.Duration(i) * time.Second), User: "bob",
			Action: "queue.clear", Target: fmt.Sprintf("queue/q%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	expect(t, srv, fmt.Sprint(wire.AuditCap), "LLEN", "auditns:resq:audit")

	raws, n, err := s.AuditLog(bg, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n != wire.AuditCap || len(raws) != 2 {
		t.Fatalf("AuditLog: n=%d, %d entries; want %d, 2", n, len(raws), wire.AuditCap)
	}
	e, err := wire.DecodeAuditEntry(raws[0])
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("queue/q%d", wire.AuditCap+4)
	if e.Target != want || e.User != "bob" || e.OK {
		t.Errorf("newest entry = %+v, want target %s by bob, ok=false", e, want)
	}
	// The first entry was trimmed away (it was the oldest).
	all, _, err := s.AuditLog(bg, 0, wire.AuditCap+10)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if strings.Contains(string(r), "alice") {
			t.Fatal("the oldest entry survived the cap")
		}
	}
	if _, err := wire.DecodeAuditEntry([]byte("not json")); err == nil {
		t.Error("DecodeAuditEntry accepted junk")
	}
}

func TestRedisInfo(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	info, err := s.RedisInfo(bg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(info, "redis_version:") {
		t.Errorf("INFO lacks redis_version: %.200q", info)
	}
}
