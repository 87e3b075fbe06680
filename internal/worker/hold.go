package worker

import (
	"sync"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// hold is the worker's side of the jobs held ahead (wire/ahead.go): jobs
// the acks moved out of the queues into this process's ahead hash, which a
// slot that finishes a job (or an idle slot) starts at once, its next ack
// entry claiming it. The acker is the only writer of the hash while the
// worker runs (one loop, so the entries of one slot reach Redis in order);
// the hold is its belief about it: untaken jobs, and taken jobs whose claim
// is not yet written (never returned to their queues by this process).
//
// Its size adapts to the jobs: it aims at want jobs, at most four per slot;
// a job untaken for holdMaxAge is returned to its queue and halves want; a
// slot that finished a job and found the hold empty doubles it. So fast
// jobs keep every slot supplied without waiting for Redis, and slow ones
// hold next to nothing that other workers could run.
type hold struct {
	mu    sync.Mutex
	jobs  []heldJob       // untaken, in arrival order
	held  map[string]bool // the Seqs of jobs
	taken map[string]bool // claimed by a slot, claim not yet written
	want  int
	max   int
	off   bool // paused or stopping: nothing is handed out
	// refilling counts batches in flight that move jobs into the hold:
	// nothing goes back while one is, since the jobs it brings are newer
	// than those it would return.
	refilling int
}

type heldJob struct {
	h  wire.Held
	at time.Time
}

// holdMaxAge is how long a held job may wait for a slot before it goes
// back to its queue.
const holdMaxAge = 100 * time.Millisecond

func newHold(slots int) *hold {
	return &hold{held: map[string]bool{}, taken: map[string]bool{}, want: slots, max: 4 * slots}
}

// take hands out the held job of the highest-priority source, oldest
// first; ok is false when none is held (want then grows: a slot had to
// wait) or the hold is off.
func (h *hold) take() (wire.Held, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.off {
		return wire.Held{}, false
	}
	best := -1
	for i, j := range h.jobs {
		if best < 0 || j.h.Source < h.jobs[best].h.Source {
			best = i
			if j.h.Source <= 0 {
				break // none comes before it
			}
		}
	}
	if best < 0 {
		h.want = min(h.max, max(1, h.want*2))
		return wire.Held{}, false
	}
	j := h.jobs[best]
	if best == 0 {
		h.jobs[0] = heldJob{}
		h.jobs = h.jobs[1:]
	} else {
		h.jobs = append(h.jobs[:best], h.jobs[best+1:]...)
	}
	delete(h.held, j.h.Seq)
	h.taken[j.h.Seq] = true
	return j.h, true
}

// refill is how many jobs the next batch should move into the hold; when
// it is more than none, the batch's add must say so (refilled).
func (h *hold) refill() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.off {
		return 0
	}
	n := max(0, h.want-len(h.jobs))
	if n > 0 {
		h.refilling++
	}
	return n
}

// add records jobs a batch moved into the hold, unless they are known
// (adopt reads the whole hash); refilled: the batch asked for them (refill
// returned more than none), whatever it got.
func (h *hold) add(hs []wire.Held, now time.Time, refilled bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if refilled {
		h.refilling--
	}
	for _, x := range hs {
		if h.taken[x.Seq] || h.held[x.Seq] {
			continue
		}
		h.held[x.Seq] = true
		h.jobs = append(h.jobs, heldJob{h: x, at: now})
	}
}

// written records that the claims of seqs were written (or given up).
func (h *hold) written(seqs []string) {
	if len(seqs) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range seqs {
		delete(h.taken, s)
	}
}

// stale removes and returns every untaken job when the oldest one has been
// held since before cutoff, or when the hold is off, halving want in the
// first case. All of them, not only the old ones: they go back to the head
// of their queues in their order, so a newer job is never left held while
// an older one waits in the queue (one slot keeps its queue's order).
func (h *hold) stale(cutoff time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.jobs) == 0 || h.refilling > 0 || (!h.off && !h.jobs[0].at.Before(cutoff)) {
		return nil
	}
	out := make([]string, len(h.jobs))
	for i, j := range h.jobs {
		out[i] = j.h.Seq
		delete(h.held, j.h.Seq)
	}
	clear(h.jobs)
	h.jobs = h.jobs[:0]
	if !h.off {
		h.want = max(1, h.want/2)
	}
	return out
}

// setOff turns handing out off (paused, stopping) or on again.
func (h *hold) setOff(off bool) {
	h.mu.Lock()
	h.off = off
	h.mu.Unlock()
}

// untaken reports how many jobs are held and not taken.
func (h *hold) untaken() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.jobs)
}
