package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// slot is one concurrent job runner with its own Resque worker id.
type slot struct {
	idx     int
	id      string
	jobs    chan wire.Fetched // from the fetch loop; closed when it stops
	ackDone chan ackResult    // the acker's "written" signal, reused per job
	done    chan struct{}     // closed when the slot's goroutine returns
	// checkHeld asks the slot's next fetch to look for a record already on
	// it: set at start-up and after a write for the slot whose outcome is
	// unknown (its reply was lost, say).
	checkHeld atomic.Bool

	mu        sync.Mutex
	current   *wire.Fetched // the job ExecuteFunc is running
	abandoned bool          // a fast stop gave up waiting for this slot
	// claims counts this slot's entries with a claim (hold.go) that the
	// acker has not yet written; claimed is signalled when it drops to 0.
	claims  int
	claimed sync.Cond
	settle  func() // s.waitClaims, for Slot.Settle
}

func newSlot(idx int, id string) *slot {
	s := &slot{idx: idx, id: id, jobs: make(chan wire.Fetched, 1), ackDone: make(chan ackResult, 1), done: make(chan struct{})}
	s.checkHeld.Store(true)
	s.claimed.L = &s.mu
	s.settle = s.waitClaims
	return s
}

// waitClaims returns once every claim this slot posted is written (or
// given up): the job it runs is then its record, which a requeue or a
// class cap's bounce acts on.
func (s *slot) waitClaims() {
	s.mu.Lock()
	for s.claims > 0 {
		s.claimed.Wait()
	}
	s.mu.Unlock()
}

func (s *slot) claimPosted() {
	s.mu.Lock()
	s.claims++
	s.mu.Unlock()
}

func (s *slot) claimWritten() {
	s.mu.Lock()
	if s.claims--; s.claims == 0 {
		s.claimed.Broadcast()
	}
	s.mu.Unlock()
}

// runSlot executes the jobs handed to one slot. A finished job's ack may
// bring the slot's next job with it (acker), so a busy slot goes back to the
// fetcher only when the queues ran dry.
func (e *Engine) runSlot(hardCtx context.Context, s *slot, acker *acker, idle chan<- int) {
	// The slot's own child of the hard context: each job's timeout context
	// is derived from it, so the slots do not all register and unregister
	// their jobs' contexts under the one shared parent's lock.
	hardCtx, cancel := context.WithCancel(hardCtx)
	defer cancel()
	for f := range s.jobs {
		for {
			next, res, abandoned := e.runJob(hardCtx, s, acker, f)
			if abandoned {
				return // requeued by the stopping worker
			}
			if !res.more {
				idle <- idleValue(s.idx, res.empty)
				break
			}
			f = next
		}
	}
}

// runJob runs one job on s and writes its outcome; res.more reports that
// the ack brought the slot's next job (next).
func (e *Engine) runJob(hardCtx context.Context, s *slot, acker *acker, f wire.Fetched) (next wire.Fetched, res ackResult, abandoned bool) {
	s.mu.Lock()
	if s.abandoned {
		// The worker stopped waiting before this job started: put it back.
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), e.cleanupTimeout())
		e.requeue(ctx, s, f)
		cancel()
		return next, res, true
	}
	s.current = &f
	s.mu.Unlock()

	r := e.cfg.ExecuteFunc(hardCtx, Slot{Index: s.idx, ID: s.id, Settle: s.settle}, f)

	s.mu.Lock()
	abandoned = s.abandoned
	s.current = nil
	s.mu.Unlock()
	if abandoned {
		return next, res, true
	}
	switch r.Action {
	case ActionRequeue:
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		e.requeue(ctx, s, f)
		cancel()
		return next, res, false
	case ActionNone:
		return next, res, false
	}
	if e.hold != nil && e.holdOpen() {
		if h, ok := e.hold.take(); ok {
			// Start a held job now; this ack claims it (hold.go).
			nf, claim := e.store.Claim(h, time.Now())
			r.Ack.Next = claim
			acker.post(r.Ack, s)
			return nf, ackResult{more: true}, false
		}
	}
	res = acker.submit(r.Ack, s)
	return res.next, res, false
}

// abandonRunning requeues the jobs of the slots still running one after
// StopTimeout and marks every slot abandoned, so that a slot about to start
// a job requeues it instead. It returns the slots that were not running a
// job: they end on their own (an ack being written, or no job).
func (e *Engine) abandonRunning(ctx context.Context, slots []*slot) (rest []*slot) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cleanupTimeout())
	defer cancel()
	for _, s := range slots {
		s.mu.Lock()
		f := s.current
		s.abandoned = true
		s.mu.Unlock()
		if f == nil {
			rest = append(rest, s)
			continue
		}
		e.requeue(rctx, s, *f)
	}
	return rest
}

// requeue puts an interrupted job back at the head of its queue, if the
// slot's in-flight record still holds it.
func (e *Engine) requeue(ctx context.Context, s *slot, f wire.Fetched) {
	if f.Oversize != nil {
		return
	}
	s.waitClaims() // a held job is the slot's record once its claim is written
	ok, err := e.store.Requeue(ctx, s.id, f.Queue, f.Raw)
	switch {
	case err != nil:
		e.logger.Error("requeue of an interrupted job failed; the next worker will recover it",
			"worker", s.id, "queue", f.Queue, "error", err)
	case ok:
		e.logger.Info("interrupted job requeued", "worker", s.id, "queue", f.Queue, "bytes", len(f.Raw))
	}
}

// idleValue is what a slot sends on the idle channel: its index, or when
// its ack's fetch found the queues empty, the index's complement.
func idleValue(idx int, empty bool) int {
	if empty {
		return ^idx
	}
	return idx
}

// idleSlot decodes idleValue.
func idleSlot(v int) (idx int, empty bool) {
	if v < 0 {
		return ^v, true
	}
	return v, false
}
