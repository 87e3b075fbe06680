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
	h.add([]wire.Held{held("1:1", 1), held("1:2", 0), held("1:3", 1)}, now)
	h.add([]wire.Held{held("2:1", 0), held("1:2", 0)}, now) // 1:2 again
	var got []string
	for {
		x, ok := h.take()
		if !ok {
			break
		}
		got = append(got, x.Seq)
		if x.Seq == "2:1" {
			h.add([]wire.Held{held("2:1", 0)}, now) // taken, claim not written: not again
		}
	}
	if want := "1:2 2:1 1:1 1:3"; join(got) != want {
		t.Fatalf("took %s, want %s", join(got), want)
	}
	h.written([]string{"2:1"})
	h.add([]wire.Held{held("2:1", 0)}, now) // (a stale read-back after the claim would: the adopt excludes writes)
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
	h.take() // empty: want doubles
	h.take()
	h.take()
	if n := h.refill(); n != 16 {
		t.Fatalf("refill = %d, want 16 (the cap, four per slot)", n)
	}
	old := time.Now().Add(-time.Second)
	h.add([]wire.Held{held("1:1", 0), held("1:2", 0)}, old)
	h.add([]wire.Held{held("2:1", 0)}, time.Now())
	if s := h.stale(time.Now().Add(-holdMaxAge)); join(s) != "1:1 1:2" {
		t.Fatalf("stale = %v", s)
	}
	if n := h.refill(); n != 8-1 {
		t.Fatalf("refill = %d after stale jobs, want want/2 - held = 7", n)
	}
	h.setOff(true)
	if _, ok := h.take(); ok || h.refill() != 0 {
		t.Fatal("an off hold handed out a job or asked for more")
	}
	if s := h.stale(time.Now().Add(-time.Hour)); join(s) != "2:1" || h.untaken() != 0 {
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
