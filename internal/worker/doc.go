// Package worker is resq's job engine: the fetch loop, the slots, the batch
// acker, the blocking pickers and the upkeep (heartbeats, re-registration,
// dead-worker checks) of one worker process. It knows Redis only through
// internal/wire, and jobs only as fetched bytes: what a job means (decoding,
// class caps, signatures, handlers, the failure record) is decided by the one
// ExecuteFunc the root package supplies.
//
// The path of one job through the engine, in one direction:
//
//	fetchLoop (fetch.go)  --wire.Fetched-->  slot (slot.go)
//	slot  --ExecuteFunc(ctx, Slot, Fetched)-->  Result
//	Result  --acker (acker.go)-->  wire.Store.AckAndFetch  --next job-->  slot
//
// A busy worker holds a few jobs ahead (hold.go; with Lua scripts, unless
// Config.DisableHoldAhead): a slot that finishes a job starts a held one at
// once and posts its ack without waiting, the ack carrying the claim that
// makes the held job the slot's record; the ack batches refill the hold.
// When the hold is empty a finished job's ack brings the slot's next job
// with it, so a busy slot returns to the fetch loop only when the queues
// run dry; an idle slot with empty queues is woken by a blocking pickup
// (pickup.go) rather than by polling. upkeep.go keeps the worker's ids
// alive beside that path.
//
// # Concurrency
//
// An Engine is used by one Run at a time; Pause, Resume and RequestStop may
// be called from any goroutine, before, during or after Run. Run starts, and
// waits for before it returns:
//   - one goroutine per slot (len(Config.IDs)), which calls ExecuteFunc for
//     the slot's jobs one at a time: ExecuteFunc runs on up to len(IDs)
//     goroutines at once and must be safe for that;
//   - two acker loops (one with a single slot), which write the acks of
//     every slot in batches; with the hold, each slot posts to one loop
//     only, so that its entries reach Redis in order;
//   - the pickers' supervisor and one blocking pickup per queue (up to 16),
//     unless Config.DisableBlockingPickup;
//   - the upkeep loop, which calls Config.PruneFunc on its own goroutine.
//
// The fetch loop runs on Run's goroutine. Slots, the fetch loop and the
// acker communicate over channels only; the shared flags (paused, a pickup
// wanted, the resolved queues) are atomics.
//
// # Stopping
//
// RequestStop (Shutdown in the root) stops the fetching and lets running jobs
// finish; cancelling Run's ctx also cancels the ctx given to ExecuteFunc and
// requeues, after Config.StopTimeout, the jobs still running. Every loop that
// retries while Redis is unreachable honours a context: once a stop has been
// requested, a write that fails is retried for at most StopTimeout (counted
// from the stop request, or from the write's first failure if that came
// later), and then given up. What could not be written stays in the slots'
// in-flight records, where the next worker's dead-worker check recovers it.
// So with Redis down, Run returns about StopTimeout after the running jobs
// ended, plus one bounded attempt (at least a second) to return picked-up
// jobs and unregister.
//
// # Retries
//
// The engine writes the wire.Ack the ExecuteFunc built, whatever it holds; it
// has no failure branch of its own. A retry policy is decided where the
// failure is known, in the root's execute function, and travels in the Ack
// (a delayed push written in the same transaction that clears the in-flight
// record, instead of a failure record), so a retried job is never both lost
// and recorded, and the acker stays one path.
package worker
