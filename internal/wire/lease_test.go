package wire_test

import (
	"testing"
	"time"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/wire"
)

// bothModes runs a test with Lua scripts and with plain commands (the
// WATCH/MULTI twins a Redis user without @scripting gets), each on a fresh
// Store and namespace.
func bothModes(t *testing.T, test func(t *testing.T, s *wire.Store, srv *redistest.Server)) {
	for _, plain := range []bool{false, true} {
		name := "scripts"
		if plain {
			name = "plain"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, srv := newStore(t)
			if plain {
				s.UsePlainCommands()
			}
			test(t, s, srv)
		})
	}
}

func TestLeaseCapsHoldersAndBouncesTheJob(t *testing.T) {
	t.Parallel()
	bothModes(t, testLeaseCapsHoldersAndBouncesTheJob)
}

func testLeaseCapsHoldersAndBouncesTheJob(t *testing.T, s *wire.Store, srv *redistest.Server) {
	const job = `{"class":"Heavy","args":[]}`
	// Two holders fit under a cap of 2.
	for _, h := range []string{"a", "b"} {
		if ok, err := s.AcquireLease(bg, "Heavy", h, 2, time.Minute, "q", []byte(job)); err != nil || !ok {
			t.Fatalf("AcquireLease(%s) = %v, %v", h, ok, err)
		}
	}
	// A holder may re-acquire (renew) its own lease.
	if ok, err := s.AcquireLease(bg, "Heavy", "a", 2, time.Minute, "q", []byte(job)); err != nil || !ok {
		t.Fatalf("re-acquire = %v, %v", ok, err)
	}
	// The third is refused: its in-flight job goes back to the queue's tail
	// and its record is cleared; nothing is counted.
	srv.Do(t, "RPUSH", "resque:queue:q", `{"class":"Other","args":[]}`)
	srv.Do(t, "SET", "resque:worker:c", `{"queue":"q","run_at":"x","payload":`+job+`}`)
	if ok, err := s.AcquireLease(bg, "Heavy", "c", 2, time.Minute, "q", []byte(job)); err != nil || ok {
		t.Fatalf("AcquireLease(c) = %v, %v", ok, err)
	}
	expect(t, srv, `{"class":"Other","args":[]}`+"\n"+job, "LRANGE", "resque:queue:q", "0", "-1")
	expect(t, srv, "0", "EXISTS", "resque:worker:c")
	expect(t, srv, "q", "SMEMBERS", "resque:queues")
	expect(t, srv, "0", "EXISTS", "resque:stat:processed")
	// Refused again with no record (a recoverer took the job): nothing is pushed.
	if ok, _ := s.AcquireLease(bg, "Heavy", "c", 2, time.Minute, "q", []byte(job)); ok {
		t.Fatal("third holder got a lease")
	}
	expect(t, srv, "2", "LLEN", "resque:queue:q")

	holders, err := s.LeaseHolders(bg, "Heavy")
	if err != nil || len(holders) != 2 {
		t.Fatalf("holders = %v, %v", holders, err)
	}
	// Release frees a place.
	if err := s.ReleaseLease(bg, "Heavy", "a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.AcquireLease(bg, "Heavy", "c", 2, time.Minute, "q", []byte(job)); !ok {
		t.Fatal("no lease after a release")
	}
	// The key lives under resq's prefix and expires with its leases.
	if ttl := srv.Do(t, "PTTL", "resque:resq:lease:Heavy"); ttl == "-1" || ttl == "-2" {
		t.Fatalf("lease key PTTL = %s", ttl)
	}
}

func TestLeaseExpiresWhenNotRenewed(t *testing.T) {
	t.Parallel()
	bothModes(t, testLeaseExpiresWhenNotRenewed)
}

func testLeaseExpiresWhenNotRenewed(t *testing.T, s *wire.Store, _ *redistest.Server) {
	// A dead holder: its lease is not renewed.
	if ok, _ := s.AcquireLease(bg, "Heavy", "dead", 1, time.Second, "q", nil); !ok {
		t.Fatal("no lease")
	}
	if ok, _ := s.AcquireLease(bg, "Heavy", "live", 1, time.Minute, "q", nil); ok {
		t.Fatal("a second lease under a cap of 1")
	}
	// A live holder renews and keeps its lease past the first TTL.
	if ok, _ := s.AcquireLease(bg, "Other", "live", 1, time.Second, "q", nil); !ok {
		t.Fatal("no lease on Other")
	}
	time.Sleep(600 * time.Millisecond)
	if ok, err := s.RenewLease(bg, "Other", "live", time.Second); err != nil || !ok {
		t.Fatalf("RenewLease = %v, %v", ok, err)
	}
	time.Sleep(600 * time.Millisecond)
	if ok, _ := s.AcquireLease(bg, "Heavy", "live", 1, time.Minute, "q", nil); !ok {
		t.Fatal("the dead holder's lease did not expire")
	}
	if ok, _ := s.AcquireLease(bg, "Other", "third", 1, time.Minute, "q", nil); ok {
		t.Fatal("a renewed lease expired")
	}
	if ok, _ := s.RenewLease(bg, "Heavy", "dead", time.Minute); ok {
		t.Fatal("an expired lease was renewed")
	}
}
