package resq

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/resq-go/resq/internal/wire"
	"github.com/resq-go/resq/internal/worker"
)

// Per-class concurrency caps (WorkerConfig.ClassConcurrency), shared by
// every worker on the namespace through a Redis lease per class: a sorted
// set (wire.Store.AcquireLease) of holders (slot worker ids) scored by
// expiry on Redis's clock.
//
// A slot that fetched a job of a capped class takes a lease before running
// it, in one script that, when all leases are held, instead moves the job
// from the slot's in-flight record back to the tail of its queue and
// deletes the record. The bounced job was not processed: no counter moves,
// no failure is recorded, and Ruby's tools saw it "working" for one round
// trip at most. It goes to the tail, not the head, so that the other jobs
// on its queue keep flowing while the class is at its cap (jobs of the
// class keep their order among themselves); the slot then waits, backing
// off from 10 ms to PollInterval, before it takes another job, so a queue
// full of capped jobs is not spun through.
//
// A lease is renewed every min(HeartbeatInterval, 10 s) while its job runs
// and expires three renewals later, so a worker that dies holding one
// frees it within 30 s by default. It is released as soon as the job ends.

// leaseKeeper holds a running Worker's concurrency-cap state.
type leaseKeeper struct {
	caps   map[string]int
	renew  time.Duration
	ttl    time.Duration
	ctx    context.Context // cancelled when Run ends
	cancel context.CancelFunc

	mu      sync.Mutex
	backoff map[string]time.Duration // by slot id
}

func checkClassConcurrency(caps map[string]int) error {
	for class, n := range caps {
		if n < 0 {
			return fmt.Errorf("ClassConcurrency[%q] = %d is negative", class, n)
		}
	}
	return nil
}

// startLeases sets up the lease keeper when a cap is configured.
func (w *Worker) startLeases() error {
	if err := checkClassConcurrency(w.cfg.ClassConcurrency); err != nil {
		return fmt.Errorf("resq: %w", err)
	}
	caps := map[string]int{}
	for class, n := range w.cfg.ClassConcurrency {
		if n > 0 {
			caps[class] = n
		}
	}
	if len(caps) == 0 {
		return nil
	}
	renew := min(w.cfg.HeartbeatInterval, 10*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	w.leases = &leaseKeeper{caps: caps, renew: renew, ttl: 3 * renew, ctx: ctx, cancel: cancel, backoff: map[string]time.Duration{}}
	for class, n := range caps {
		w.logger.Info("class concurrency cap", "class", class, "max_running", n, "lease_ttl", 3*renew)
	}
	return nil
}

func (w *Worker) stopLeases() {
	if w.leases != nil {
		w.leases.cancel()
	}
}

func noRelease() {}

// admit takes a concurrency lease for f, whose payload execute decoded
// into p, when its class is capped. When the class is at its cap the job
// has been moved back to its queue: bounced is true, and admit has waited
// out the slot's back-off. release must be called when the job ends.
func (w *Worker) admit(ctx context.Context, s worker.Slot, f wire.Fetched, p wire.Payload) (release func(), bounced bool) {
	lk := w.leases
	if lk == nil {
		return noRelease, false
	}
	class := w.capClass(p) // an ActiveJob job's job_class (activejob.go)
	limit := lk.caps[class]
	if limit == 0 {
		return noRelease, false
	}
	slotID := s.ID
	if s.Settle != nil {
		s.Settle() // the lease script may move the job out of the slot's record
	}
	ok, err := w.store.AcquireLease(ctx, class, slotID, limit, lk.ttl, f.Queue, f.Raw)
	if err != nil {
		// Fail open: Redis errors here mean Redis errors everywhere; the job
		// is run rather than left in its in-flight record.
		w.logger.Warn("concurrency lease unavailable; running the job without it", "class", class, "worker", slotID, "error", err)
		return noRelease, false
	}
	if !ok {
		w.logger.Debug("job moved back to its queue: class at its concurrency cap", "job_id", p.ID, "class", class,
			"queue", f.Queue, "worker", slotID, "max_running", limit)
		w.backOff(ctx, lk, slotID)
		return nil, true
	}
	lk.mu.Lock()
	delete(lk.backoff, slotID)
	lk.mu.Unlock()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(lk.renew)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-lk.ctx.Done():
				return
			case <-t.C:
			}
			rctx, cancel := context.WithTimeout(lk.ctx, lk.renew)
			held, err := w.store.RenewLease(rctx, class, slotID, lk.ttl)
			cancel()
			switch {
			case err != nil && lk.ctx.Err() == nil:
				w.logger.Warn("renewing a concurrency lease failed", "class", class, "worker", slotID, "error", err)
			case err == nil && !held:
				w.logger.Warn("a concurrency lease expired while its job ran (Redis unreachable for longer than its TTL?)", "class", class, "worker", slotID)
			}
		}
	}()
	return func() {
		close(stop)
		wg.Wait()
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := w.store.ReleaseLease(rctx, class, slotID); err != nil {
			w.logger.Warn("releasing a concurrency lease failed; it expires on its own", "class", class, "worker", slotID, "error", err)
		}
	}, false
}

// backOff waits before slot id takes another job after a bounce: 10 ms,
// doubling up to PollInterval.
func (w *Worker) backOff(ctx context.Context, lk *leaseKeeper, id string) {
	lk.mu.Lock()
	d := lk.backoff[id]
	d = min(max(2*d, 10*time.Millisecond), w.cfg.PollInterval)
	lk.backoff[id] = d
	lk.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-w.engine.StopRequested():
	}
}
