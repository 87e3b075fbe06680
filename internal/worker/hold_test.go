package worker

import (
	"testing"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

func held(seq string, source int) wire.Held {
	return wire.Held{Seq: seq, Source: source, Job: wire.Fetched{Queue: "q"}}
}

// The hold hands out the highest-priority source first, then the oldest;
// it never holds a job twice (a read-back after a lost reply may list what
// a batch already added, or what a slot took and has not yet claimed).
func TestHoldTakeOrderAndDedupe(t *testing.T) {
	h := newHold(2)
	now := time.Now()
	h.add([]wire.Held{held("1:1", 1), held("1:2", 0), held("1:3", 1)}, now, false)
	h.add([]wire.Held{held("2:1", 0), held("1:2", 0)}, now, false) // 1:2 again
	var got []string
	for {
		x, ok := h.take()
		if !ok {
			break
		}
		got = append(got, x.Seq)
		if x.Seq == "2:1" {
			h.add([]wire.Held{held("2:1", 0)}, now, false) // taken, claim not written: not again
		}
	}
	if want := "1:2 2:1 1:1 1:3"; join(got) != want {
		t.Fatalf("took %s, want %s", join(got), want)
	}
	h.written([]string{"2:1"})
	h.add([]wire.Held{held("2:1", 0)}, now, false) // (a stale read-back after the claim would: the adopt excludes writes)
	if x, ok := h.take(); !ok || x.Seq != "2:1" {
		t.Fatalf("after the claim was written the field is new again: %v %v", x, ok)
	}
}

// want grows when a slot finds the hold empty (up to four per slot) and
// halves when held jobs go stale; off hands out nothing and makes every
// untaken job stale.
func TestHoldAdapts(t *testing.T) {
	h := newHold(4)
	if n := h.refill(); n != 4 {
		t.Fatalf("refill = %d, want 4 (one per slot)", n)
	}
	h.add(nil, time.Now(), true) // that batch came back with nothing
	h.take()                     // empty: want doubles
	h.take()
	h.take()
	if n := h.refill(); n != 16 {
		t.Fatalf("refill = %d, want 16 (the cap, four per slot)", n)
	}
	h.add(nil, time.Now(), true)
	old := time.Now().Add(-time.Second)
	h.add([]wire.Held{held("2:1", 0)}, time.Now(), false)
	if s := h.stale(time.Now().Add(-holdMaxAge)); len(s) != 0 {
		t.Fatalf("stale = %v with nothing old", s)
	}
	h.take()
	h.add([]wire.Held{held("1:1", 0), held("1:2", 0)}, old, false)
	h.add([]wire.Held{held("3:1", 0)}, time.Now(), false)
	// Not while a batch that refills is in flight (it brings newer jobs).
	h.refill()
	if s := h.stale(time.Now().Add(-holdMaxAge)); len(s) != 0 {
		t.Fatalf("stale = %v while a refill is in flight", s)
	}
	h.add(nil, time.Now(), true)
	// The oldest is stale: every untaken job goes back, the newer one too,
	// so that the queue keeps its order.
	if s := h.stale(time.Now().Add(-holdMaxAge)); join(s) != "1:1 1:2 3:1" {
		t.Fatalf("stale = %v", s)
	}
	if n := h.refill(); n != 8 {
		t.Fatalf("refill = %d after stale jobs, want want/2 = 8", n)
	}
	h.add(nil, time.Now(), true)
	h.add([]wire.Held{held("4:1", 0)}, time.Now(), false)
	h.setOff(true)
	if _, ok := h.take(); ok || h.refill() != 0 {
		t.Fatal("an off hold handed out a job or asked for more")
	}
	if s := h.stale(time.Now().Add(-time.Hour)); join(s) != "4:1" || h.untaken() != 0 {
		t.Fatalf("off: stale = %v, untaken %d", s, h.untaken())
	}
}

func join(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += " "
		}
		out += s
	}
	return out
}
