package worker

import (
	"context"
	"errors"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// minPoll is the first wait of a poll of empty queues; it doubles up to
// Config.PollInterval.
const minPoll = 2 * time.Millisecond

// fetchLoop hands jobs to idle slots until a stop is requested.
func (e *Engine) fetchLoop(ctx context.Context, slots []*slot, idle chan int, acker *acker) {
	var batch []int
	var queues []string
	var resolvedAt time.Time
	backoff := minPoll
	errBackoff := 100 * time.Millisecond
	// fresh is false while every idle slot in batch is known to have found
	// the queues empty since the last fetch or sleep (a partial fetch, or an
	// ack whose fetch came back empty): fetching for them again at once
	// would only find the same, so the blocking pickup is armed instead.
	fresh := true
	take := func(v int) {
		i, empty := idleSlot(v)
		batch = append(batch, i)
		if !empty {
			fresh = true
		}
	}
	sleep := func(d time.Duration) bool {
		fresh = true
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-e.quit:
			return false
		case <-e.wake:
			return !e.stopping(ctx)
		case <-t.C:
			return true
		}
	}
	for {
		if e.stopping(ctx) {
			return
		}
		if len(batch) == 0 {
			select {
			case v := <-idle:
				take(v)
			case <-ctx.Done():
				return
			case <-e.quit:
				return
			case <-e.wake:
				continue
			}
		}
	drain:
		for {
			select {
			case v := <-idle:
				take(v)
			default:
				break drain
			}
		}
		e.idleSlots.Store(int32(len(batch)))
		if e.paused.Load() {
			e.wantPickup.Store(false)
			if e.pickupOwner() != "" {
				// A pickup that won a job just before the pause gives it back,
				// so a paused worker holds nothing but its running jobs.
				if _, err := e.store.ReturnPickups(ctx, e.cfg.Owner); err != nil && ctx.Err() == nil {
					e.logger.Warn("returning picked-up jobs failed", "error", err)
				}
			}
			if !sleep(e.cfg.PollInterval) {
				return
			}
			continue
		}
		if e.hold != nil && e.holdOpen() {
			// Idle slots start held jobs first, each claimed by an entry of
			// its own (not a slot whose record may hold a job: its fetch
			// hands that back).
			rest := batch[:0]
			for _, si := range batch {
				sl := slots[si]
				if !sl.checkHeld.Load() {
					if h, ok := e.hold.take(); ok {
						f, claim := e.store.Claim(h, time.Now())
						acker.post(wire.Ack{WorkerID: sl.id, Next: claim, ClaimOnly: true}, sl)
						sl.jobs <- f
						continue
					}
				}
				rest = append(rest, si)
			}
			batch = rest
			if len(batch) == 0 {
				continue
			}
		}
		e.idleSlots.Store(int32(len(batch)))
		if e.cfg.ResolveQueuesFunc != nil && (queues == nil || time.Since(resolvedAt) > time.Second) {
			known, err := e.store.QueueNames(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				e.logger.Warn("reading queues failed; retrying", "error", err, "retry_in", errBackoff)
				if !sleep(errBackoff) {
					return
				}
				errBackoff = min(errBackoff*2, 5*time.Second)
				continue
			}
			queues, resolvedAt = e.cfg.ResolveQueuesFunc(known), time.Now()
			resolved := queues // a fresh variable: the pickers keep its address
			e.pickQueues.Store(&resolved)
		} else if e.cfg.ResolveQueuesFunc == nil {
			queues = e.cfg.Queues
		}
		if !fresh && !e.cfg.DisableBlockingPickup && len(queues) <= maxPickers {
			// The queues were empty for every slot here a moment ago: let
			// the blocking pickup wake this loop when a job arrives.
			e.wantPickup.Store(true)
			e.pickSignal.fire()
			if !sleep(e.cfg.PollInterval) {
				return
			}
			continue
		}
		ids := make([]string, len(batch))
		checkHeld := false
		for i, si := range batch {
			ids[i] = slots[si].id
			if slots[si].checkHeld.Swap(false) {
				checkHeld = true
			}
		}
		got, err := e.store.FetchWith(ctx, wire.FetchRequest{Queues: queues, PickupOwner: e.pickupOwner(), WorkerIDs: ids,
			MaxBytes: e.cfg.MaxBytes, CheckHeld: checkHeld}, time.Now())
		if err != nil && !errors.Is(err, wire.ErrPaused) {
			for _, si := range batch {
				slots[si].checkHeld.Store(true) // the fetch may have happened with its reply lost
			}
		}
		e.remotePaused.Store(errors.Is(err, wire.ErrPaused))
		switch {
		case errors.Is(err, wire.ErrPaused):
			e.wantPickup.Store(false)
			if !sleep(e.cfg.PollInterval) {
				return
			}
			continue
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			e.logger.Warn("fetch failed; retrying", "error", err, "retry_in", errBackoff)
			if !sleep(errBackoff) {
				return
			}
			errBackoff = min(errBackoff*2, 5*time.Second)
			continue
		}
		if errBackoff > 100*time.Millisecond {
			// Redis is back after an outage: re-check registration now (a
			// restarted Redis may have lost it).
			errBackoff = 100 * time.Millisecond
			select {
			case e.recheck <- struct{}{}:
			default:
			}
		}
		// Blocking pickers wait on the queues only while a slot is idle and
		// the queues are empty.
		if len(got) < len(batch) {
			e.wantPickup.Store(true)
			e.pickSignal.fire()
		} else {
			e.wantPickup.Store(false)
		}
		if len(got) == 0 {
			d := backoff
			if !e.cfg.DisableBlockingPickup && len(queues) <= maxPickers {
				// Every queue has a blocking pickup that wakes this loop as
				// soon as a job arrives: polling is only a fallback.
				d = e.cfg.PollInterval
			}
			if !sleep(d) {
				return
			}
			backoff = min(backoff*2, e.cfg.PollInterval)
			continue
		}
		backoff = minPoll
		fresh = len(got) == len(batch) // else the queues ran dry
		taken := make(map[int]bool, len(got))
		for _, f := range got {
			si := batch[f.Slot]
			taken[f.Slot] = true
			slots[si].jobs <- f
		}
		rest := batch[:0]
		for i, si := range batch {
			if !taken[i] {
				rest = append(rest, si)
			}
		}
		batch = rest
	}
}
