package worker

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// acker writes job acks in batches: every ack waiting when a write starts
// goes into one MULTI/EXEC, which also fetches the next jobs for the slots
// whose acks it writes (Store.AckAndFetch) unless the worker is paused or
// stopping. A job and its successor on a slot thus cost one round trip, not
// two, and the in-flight record is replaced in the same atomic step that
// counts the finished job.
//
// Two loops write at once (one with a single slot): while one batch is in
// Redis, the other collects the acks of the slots its predecessor refilled,
// so Redis and the worker's own CPU overlap. Measured at concurrency 10 it
// is 10–20 % more jobs/s than one loop, and the same at 50 (decisions §14).
type acker struct {
	e    *Engine
	reqs chan ackReq
	// lanes, when jobs are held ahead, are the aheadLoops' own channels:
	// slot i posts to lane i%len(lanes) only, so its entries (a claim,
	// then the ack of the claimed job) reach Redis in order.
	lanes []chan ackReq
	// adopting excludes the writes (read-locked) while adopt reads the
	// hash back and merges it into the hold.
	adopting sync.RWMutex
	fastStop <-chan struct{} // Run's ctx is done: no more fetching
	stop     context.Context // done once a stop is requested either way
}

// ackLoops is how many acker loops a worker with n slots runs.
func ackLoops(n int) int { return min(2, n) }

type ackReq struct {
	ack  wire.Ack
	slot *slot
	// async: the slot does not wait for this entry (it claims a held job
	// the slot already runs, hold.go); its write ends with claimWritten.
	async bool
}

// ackResult tells a slot that its ack is written, and hands it its next job
// when the write fetched one; empty says the write fetched and the queues
// had nothing for the slot.
type ackResult struct {
	next  wire.Fetched
	more  bool
	empty bool
}

func newAcker(e *Engine, fastStop <-chan struct{}, stop context.Context) *acker {
	a := &acker{e: e, fastStop: fastStop, stop: stop}
	n := len(e.cfg.IDs)
	if e.hold == nil {
		a.reqs = make(chan ackReq, n)
		return a
	}
	for range ackLoops(n) {
		// Slots that run held jobs post without waiting: room for a few
		// entries per slot.
		a.lanes = append(a.lanes, make(chan ackReq, max(4*n, 64)))
	}
	return a
}

// laneOf is the channel s posts to.
func (a *acker) laneOf(s *slot) chan ackReq {
	if a.lanes == nil {
		return a.reqs
	}
	return a.lanes[s.idx%len(a.lanes)]
}

// post hands the acker an entry with a claim and returns at once.
func (a *acker) post(ack wire.Ack, s *slot) {
	s.claimPosted()
	a.laneOf(s) <- ackReq{ack: ack, slot: s, async: true}
}

// submit hands an ack to the batch writer and waits until it is written
// (on the slot's own ackDone channel, buffered 1, reused for every job).
func (a *acker) submit(ack wire.Ack, s *slot) ackResult {
	a.laneOf(s) <- ackReq{ack: ack, slot: s}
	return <-s.ackDone
}

func (a *acker) close() {
	if a.lanes == nil {
		close(a.reqs)
	}
	for _, l := range a.lanes {
		close(l)
	}
}

// fetchNext is the fetch to send with a batch of acks, or nil when the
// finished slots should not take new jobs (paused, stopping, queues not yet
// resolved) or need not look: idle, when the blocking pickup is armed
// because the queues were empty at the last fetch (a job pushed since is
// moved by the pickup, which wakes the fetcher).
func (a *acker) fetchNext(batch []ackReq) (next *wire.FetchRequest, idle bool) {
	e := a.e
	if e.paused.Load() {
		return nil, false
	}
	if e.wantPickup.Load() && !e.cfg.DisableBlockingPickup {
		return nil, true
	}
	select {
	case <-a.fastStop:
		return nil, false
	case <-e.quit:
		return nil, false
	default:
	}
	qs := e.pickQueues.Load()
	if qs == nil || len(*qs) == 0 {
		return nil, false
	}
	ids := make([]string, len(batch))
	for i, b := range batch {
		ids[i] = b.ack.WorkerID
	}
	return &wire.FetchRequest{Queues: *qs, PickupOwner: e.pickupOwner(), WorkerIDs: ids, MaxBytes: e.cfg.MaxBytes}, false
}

// maxAckAttempts bounds the retries of one batch while the worker runs:
// about eight minutes of Redis outage at the 5 s back-off cap.
const maxAckAttempts = 100

// write writes one batch of acks (with the slots' next fetch when fetchNext
// allows) and returns the jobs fetched; empty reports that slots without a
// job need not fetch again before the blocking pickup wakes them.
//
// It retries while Redis is away; a retry goes through Store.AckRetry,
// which never repeats a write that landed with its reply lost. The retries
// end after maxAckAttempts, or once a stop has been requested and
// StopTimeout has passed (drainCtx): the batch's jobs then stay in their
// slots' in-flight records, which the slot's next fetch (this worker) or
// the dead-worker check (the next worker) recovers.
func (a *acker) write(batch []ackReq, acks []wire.Ack, mark wire.AckMark) (got []wire.Fetched, empty bool) {
	e := a.e
	next, idle := a.fetchNext(batch)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	got, fetched, err := e.store.AckAndFetch(ctx, acks, time.Now(), next, mark)
	cancel()
	if err == nil {
		return got, fetched || idle
	}
	// The outcome is unknown: the records this write replaced or left are
	// handed back by the slots' next fetch, which checks for them.
	a.retry(batch, err, func(ctx context.Context) (bool, error) {
		return e.store.AckRetry(ctx, acks, mark, time.Now())
	})
	return nil, false
}

// retry retries a batch whose write failed with err (its outcome unknown)
// through again, which never repeats a write that landed with its reply
// lost: with back-off, until it succeeds, maxAckAttempts, or StopTimeout
// after a stop was requested (drainCtx). It marks the batch's slots to
// check their records on their next fetch, and reports whether the
// outcome is now known to be this retry's write (false: the first write
// had landed, or the retries gave up).
func (a *acker) retry(batch []ackReq, err error, again func(context.Context) (landed bool, err error)) (rewritten bool) {
	e := a.e
	for _, b := range batch {
		b.slot.checkHeld.Store(true)
	}
	dctx, dcancel := e.drainCtx(a.stop)
	defer dcancel()
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		e.logger.Warn("writing job results failed; retrying", "error", err, "jobs", len(batch), "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-dctx.Done():
			t.Stop()
			e.logger.Error("giving up on job results: the worker is stopping and Redis did not answer within the stop timeout; the next worker recovers their jobs from the in-flight records",
				"jobs", len(batch), "error", err)
			return false
		}
		backoff = min(backoff*2, 5*time.Second)
		ctx, cancel := context.WithTimeout(dctx, 10*time.Second)
		var landed bool
		landed, err = again(ctx)
		cancel()
		switch {
		case err == nil && landed:
			e.logger.Info("job results were written; only the reply was lost", "jobs", len(batch))
			return false
		case err == nil:
			return true
		case attempt >= maxAckAttempts:
			e.logger.Error("giving up on job results; their jobs will be recovered from the in-flight records", "jobs", len(batch))
			return false
		}
	}
}

// loop is acker loop number lane. Its writes carry their own mark
// (<host:pid>:<lane>), numbered from the clock, so a later process with the
// same pid never meets its predecessor's marks.
func (a *acker) loop(lane int) {
	batch := make([]ackReq, 0, cap(a.reqs))
	acks := make([]wire.Ack, 0, cap(a.reqs))
	mark := wire.AckMark{Owner: a.e.cfg.Owner + ":" + strconv.Itoa(lane), Seq: time.Now().UnixNano()}
	for r := range a.reqs {
		batch = append(batch[:0], r)
		if len(a.reqs) < cap(a.reqs)-1 {
			// The slots this loop's last write refilled were woken
			// together and are runnable now: yield once so that those
			// with fast jobs finish and queue their acks before the drain,
			// instead of this write leaving with the first ack alone and
			// the rest waiting a round trip (at concurrency 10 batches grew
			// from 2.9 to 4.5 acks; decisions §25). A slow job delays
			// nothing: one pass of the scheduler, no timer.
			runtime.Gosched()
		}
	drain:
		for len(batch) < cap(a.reqs) {
			select {
			case r2, ok := <-a.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r2)
			default:
				break drain
			}
		}
		acks = acks[:0]
		for _, b := range batch {
			acks = append(acks, b.ack)
		}
		mark.Seq++
		got, empty := a.write(batch, acks, mark)
		res := make([]ackResult, len(batch))
		for i := range res {
			res[i].empty = empty
		}
		for _, f := range got {
			res[f.Slot] = ackResult{next: f, more: true}
		}
		for i, b := range batch {
			b.slot.ackDone <- res[i]
		}
	}
}

// aheadLoop is acker loop number lane when jobs are held ahead (hold.go). Its
// writes (Store.AckAhead) carry the slots' claims, fetch for the slots that
// wait, and move enough jobs into the hold to refill it. Between batches,
// and every holdMaxAge/2 while idle, it returns the held jobs no slot took
// in time (all of them once the worker pauses or stops).
func (a *acker) aheadLoop(lane int) {
	e := a.e
	reqs := a.lanes[lane]
	batch := make([]ackReq, 0, cap(reqs))
	acks := make([]wire.Ack, 0, cap(reqs))
	var seqs []string
	var given []heldGiven // per entry: the held job a waiting slot was given
	mark := wire.AckMark{Owner: e.cfg.Owner + ":" + strconv.Itoa(lane), Seq: time.Now().UnixNano()}
	tick := time.NewTicker(holdMaxAge / 2)
	defer tick.Stop()
	needAdopt := false
	for {
		var r ackReq
		select {
		case req, ok := <-reqs:
			if !ok {
				return
			}
			r = req
		case <-tick.C:
			needAdopt = a.tidyHold() || needAdopt
			continue
		}
		batch = append(batch[:0], r)
		if len(reqs) < cap(reqs)-1 {
			runtime.Gosched() // as in loop
		}
	drain:
		for len(batch) < cap(reqs) {
			select {
			case r2, ok := <-reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r2)
			default:
				break drain
			}
		}
		if needAdopt {
			needAdopt = !a.adopt()
		}
		acks = acks[:0]
		seqs = seqs[:0]
		given = given[:0]
		for i := range batch {
			b := &batch[i]
			var f wire.Fetched
			has := false
			if !b.async && b.ack.Next == nil && !b.ack.ClaimOnly && e.holdOpen() {
				// A slot that waits gets a held job rather than one fetched
				// behind it (jobs held since it found the hold empty are
				// older than the queue's head): its ack claims it.
				if h, ok := e.hold.take(); ok {
					f, b.ack.Next = e.store.Claim(h, time.Now())
					has = true
				}
			}
			given = append(given, heldGiven{f: f, ok: has})
			acks = append(acks, b.ack)
			if b.ack.Next != nil {
				seqs = append(seqs, b.ack.Next.Seq)
			}
		}
		mark.Seq++
		a.adopting.RLock()
		res, refilled, known := a.writeAhead(batch, acks, mark)
		if !known {
			needAdopt = true // a lost reply may have moved jobs into the hold
		}
		e.hold.written(seqs)
		e.hold.add(res.Held, time.Now(), refilled)
		a.adopting.RUnlock()
		if len(res.Held) > 0 && e.idleSlots.Load() > 0 {
			e.poke() // idle slots start held jobs (fetchLoop)
		}
		if res.Missed > 0 {
			e.logger.Warn("jobs held ahead were returned to their queues while this worker ran them (was it taken for dead?); they may run twice",
				"jobs", res.Missed)
		}
		var got map[int]wire.Fetched
		if len(res.Got) > 0 {
			got = make(map[int]wire.Fetched, len(res.Got))
			for _, f := range res.Got {
				got[f.Slot] = f
			}
		}
		for i, b := range batch {
			if b.async {
				b.slot.claimWritten()
				continue
			}
			if given[i].ok {
				b.slot.ackDone <- ackResult{next: given[i].f, more: true}
				continue
			}
			if f, ok := got[i]; ok {
				b.slot.ackDone <- ackResult{next: f, more: true}
			} else {
				b.slot.ackDone <- ackResult{empty: res.Fetched}
			}
		}
		needAdopt = a.tidyHold() || needAdopt
	}
}

// heldGiven is the held job aheadLoop gave a waiting slot, if ok.
type heldGiven struct {
	f  wire.Fetched
	ok bool
}

// writeAhead is write for aheadLoop. known is false when the outcome of
// the first write is unknown (its reply was lost): the retry (AckRetryAhead)
// writes the acks and claims but not what a landed write moved into the
// hold, which the loop then reads back (adopt).
func (a *acker) writeAhead(batch []ackReq, acks []wire.Ack, mark wire.AckMark) (res wire.AheadResult, refilled, known bool) {
	e := a.e
	next, idle := a.fetchNext(nil)
	hold := 0
	if next != nil && !idle {
		hold = e.hold.refill()
	}
	if next != nil {
		next.WorkerIDs = nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	res, err := e.store.AckAhead(ctx, acks, time.Now(), next, e.cfg.IDs[0], hold, mark)
	cancel()
	if err == nil {
		e.remotePaused.Store(res.Paused)
		res.Fetched = res.Fetched || idle
		return res, hold > 0, true
	}
	known = a.retry(batch, err, func(ctx context.Context) (bool, error) {
		return e.store.AckRetryAhead(ctx, acks, mark, e.cfg.IDs[0], time.Now())
	})
	return wire.AheadResult{}, hold > 0, known
}

// tidyHold turns the hold off while the worker is paused or stopping, and
// returns to their queues the held jobs no slot took within holdMaxAge
// (all of them when off). It reports whether a return failed (the jobs are
// still in the hash: the loop adopts them again).
func (a *acker) tidyHold() (failed bool) {
	e := a.e
	e.hold.setOff(!e.holdOpen() || e.store.PlainCommands())
	seqs := e.hold.stale(time.Now().Add(-holdMaxAge))
	if len(seqs) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := e.store.ReturnHeld(ctx, e.cfg.IDs[0], seqs); err != nil {
		e.logger.Warn("returning jobs held ahead failed; retried", "jobs", len(seqs), "error", err)
		return true
	}
	return false
}

// adopt reads the hash back after a write whose outcome was unknown and
// holds what this loop did not know it held. It reports success.
func (a *acker) adopt() bool {
	e := a.e
	a.adopting.Lock()
	defer a.adopting.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hs, err := e.store.HeldAhead(ctx, e.cfg.IDs[0], e.cfg.MaxBytes)
	if err != nil {
		return false
	}
	rank := map[string]int{}
	if qs := e.pickQueues.Load(); qs != nil {
		for i, q := range *qs {
			rank[q] = i
		}
	}
	for i := range hs {
		r, ok := rank[hs[i].Job.Queue]
		if !ok {
			r = len(rank)
		}
		hs[i].Source = r
	}
	e.hold.add(hs, time.Now(), false)
	return true
}
