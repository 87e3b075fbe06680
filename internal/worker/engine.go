package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// Config configures an Engine. The root package fills it from its
// WorkerConfig after applying that struct's defaults, so the fields here
// have none: those marked required are checked by New.
type Config struct {
	// Store is the Redis connection. Required.
	Store *wire.Store
	// IDs are the slots' Resque worker ids, one per slot (the number of
	// jobs run at once). Required.
	IDs []string
	// Owner is host:pid: it names this process's pickup lists and the
	// acker's write marks. Required.
	Owner string
	// Queues are the queues fetched from, in priority order, when
	// ResolveQueuesFunc is nil.
	Queues []string
	// ResolveQueuesFunc, when set, picks the queues (in priority order)
	// from the names of the queues that exist; it is called again at most
	// every second, for globs and exclusions. Nil: Queues is used as is.
	ResolveQueuesFunc func(known []string) []string
	// PollInterval is the longest wait between polls of empty queues; polls
	// back off from 2 ms to it. Required.
	PollInterval time.Duration
	// HeartbeatInterval is how often the upkeep refreshes heartbeats and
	// calls PruneFunc. Required.
	HeartbeatInterval time.Duration
	// StopTimeout is how long running jobs get after Run's ctx is
	// cancelled before they are requeued, and how long a failed write is
	// retried once a stop has been requested. Required.
	StopTimeout time.Duration
	// DisableBlockingPickup turns off the blocking pickups: idle slots then
	// only poll.
	DisableBlockingPickup bool
	// DisableHoldAhead turns off holding jobs ahead (hold.go): every slot
	// then waits for its ack's round trip between two jobs.
	DisableHoldAhead bool
	// MaxBytes is the payload size above which a fetch hands over only a
	// prefix and wire.Fetched.Oversize (wire.FetchRequest.MaxBytes).
	MaxBytes int
	// Logger receives the engine's events. Required.
	Logger *slog.Logger

	// ExecuteFunc runs one fetched job on a slot and says what to write.
	// ctx is cancelled on a fast stop (Run's ctx cancelled); the job is
	// then expected to return soon with ActionRequeue, and is requeued by
	// the engine if it is still running after StopTimeout. It is called on
	// the slot's goroutine, for up to len(IDs) jobs at once. Required.
	ExecuteFunc func(ctx context.Context, slot Slot, f wire.Fetched) Result
	// StartFunc, if set, runs at start-up before the ids are registered,
	// and is retried with back-off until it succeeds (the root checks for
	// dead workers and records its handlers' secret fields).
	StartFunc func(ctx context.Context) error
	// StartedFunc, if set, is called once the ids are registered, before
	// the first fetch.
	StartedFunc func()
	// PruneFunc, if set, is called by the upkeep every HeartbeatInterval
	// (and after a Redis outage) to recover dead workers' jobs.
	PruneFunc func(ctx context.Context) error
}

// Slot identifies the slot a job runs on.
type Slot struct {
	Index int    // 0 … len(Config.IDs)-1
	ID    string // its Resque worker id, Config.IDs[Index]
	// Settle returns once the job is the slot's in-flight record: a job
	// held ahead starts before the write that records it (hold.go). An
	// ExecuteFunc calls it before it acts on the record itself (a class
	// cap moving the job back to its queue). Nil-safe to skip when unset.
	Settle func()
}

// Result is what ExecuteFunc decided for one job.
type Result struct {
	// Action says what the engine does with the job.
	Action Action
	// Ack is written by the acker when Action is ActionAck. It carries the
	// whole outcome (counters, failure record, replay mark), so the acker
	// has no failure branch: a retry policy will set a "retry instead"
	// instruction on it in the root's execute function (see the package
	// doc, Retries).
	Ack wire.Ack
}

// Action is what happens to a job after ExecuteFunc.
type Action int

const (
	// ActionAck writes Result.Ack: the job ran (or failed, or was refused),
	// and its in-flight record is replaced in the same step.
	ActionAck Action = iota
	// ActionRequeue puts the job back at the head of its queue and clears
	// its in-flight record, counting nothing: a fast stop interrupted it.
	ActionRequeue
	// ActionNone writes nothing: the job already left the slot's in-flight
	// record (a class cap moved it back to its queue).
	ActionNone
)

func (a Action) String() string {
	switch a {
	case ActionAck:
		return "ack"
	case ActionRequeue:
		return "requeue"
	case ActionNone:
		return "none"
	}
	return "Action(" + strconv.Itoa(int(a)) + ")"
}

// Engine runs the fetch loop, slots, acker, pickers and upkeep of one
// worker. See the package doc.
type Engine struct {
	cfg    Config
	store  *wire.Store
	logger *slog.Logger

	paused  atomic.Bool
	wake    chan struct{} // pokes the fetcher (resume, shutdown, a pickup)
	recheck chan struct{} // asks the upkeep to run now (after a Redis outage)

	wantPickup atomic.Bool // a slot is idle and the queues were empty
	pickSignal broadcast   // fired when wantPickup becomes true
	picksMu    sync.Mutex
	picks      map[*context.CancelFunc]bool // blocking pickups in progress
	pickQueues atomic.Pointer[[]string]     // the resolved queues, for the pickers and the acker

	quit     chan struct{} // graceful stop requested
	quitOnce sync.Once
	fastStop <-chan struct{} // Run's ctx.Done()

	// hold is the jobs held ahead; nil when they are not (no scripts, or
	// Config.DisableHoldAhead). Set by Run before the slots start.
	hold *hold
	// remotePaused is set while pause-all-workers is: no held job is
	// started then (holdOpen).
	remotePaused atomic.Bool
	// idleSlots is how many slots the fetch loop holds idle (set by it):
	// the acker wakes it when held jobs arrive for them.
	idleSlots atomic.Int32
}

// New checks cfg and returns an Engine.
func New(cfg Config) (*Engine, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("worker.New: Store is nil")
	case len(cfg.IDs) == 0:
		return nil, errors.New("worker.New: no slot ids")
	case cfg.Owner == "":
		return nil, errors.New("worker.New: Owner is empty")
	case cfg.PollInterval <= 0, cfg.HeartbeatInterval <= 0, cfg.StopTimeout <= 0:
		return nil, errors.New("worker.New: PollInterval, HeartbeatInterval and StopTimeout must be positive")
	case cfg.Logger == nil:
		return nil, errors.New("worker.New: Logger is nil")
	case cfg.ExecuteFunc == nil:
		return nil, errors.New("worker.New: ExecuteFunc is nil")
	}
	e := &Engine{
		cfg:     cfg,
		store:   cfg.Store,
		logger:  cfg.Logger,
		wake:    make(chan struct{}, 1),
		recheck: make(chan struct{}, 1),
		quit:    make(chan struct{}),
	}
	if cfg.ResolveQueuesFunc == nil {
		qs := cfg.Queues
		e.pickQueues.Store(&qs)
	}
	return e, nil
}

// Pause stops taking new jobs; running jobs continue. Blocking pickups in
// progress are cancelled.
func (e *Engine) Pause() {
	e.paused.Store(true)
	e.wantPickup.Store(false)
	e.picksMu.Lock()
	for c := range e.picks {
		(*c)()
	}
	e.picksMu.Unlock()
	e.poke()
}

// Resume undoes Pause.
func (e *Engine) Resume() { e.paused.Store(false); e.poke() }

// RequestStop asks Run to stop taking jobs, let the running ones finish and
// return. It does not wait.
func (e *Engine) RequestStop() {
	e.quitOnce.Do(func() { close(e.quit) })
	e.poke()
}

// StopRequested is closed once RequestStop has been called.
func (e *Engine) StopRequested() <-chan struct{} { return e.quit }

func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run registers the ids, runs jobs until ctx is cancelled or RequestStop is
// called, and unregisters. When ctx is cancelled (a fast stop), the ctx of
// running jobs is cancelled and jobs still running after StopTimeout are
// requeued. Redis outages are retried with back-off; Run does not return
// because Redis is away, only because a stop was requested. It returns nil
// (the engine has no error of its own to report).
func (e *Engine) Run(ctx context.Context) error {
	// Start-up: learn whether Redis runs Lua scripts (some operators deny
	// them), find dead workers (ours or Ruby's), then register, retrying
	// while Redis is unreachable.
	if err := e.retry(ctx, "check Redis scripting", func(rctx context.Context) error {
		_, err := e.store.ProbeScripts(rctx)
		return err
	}); err != nil {
		return nil // stopped before Redis answered: nothing was taken
	}
	if e.store.PlainCommands() {
		e.logger.Warn("Redis refuses Lua scripts: the worker runs on plain commands (a fetch takes three or more round trips, acks hold a batch or two of jobs ahead in this process's pickup lists, an oversize payload is transferred before it is refused)")
	}
	if err := e.retry(ctx, "register worker", func(rctx context.Context) error {
		if e.cfg.StartFunc != nil {
			if err := e.cfg.StartFunc(rctx); err != nil {
				return err
			}
		}
		return e.store.Register(rctx, e.cfg.IDs, time.Now())
	}); err != nil {
		return nil // stopped before Redis answered: nothing was taken
	}
	e.fastStop = ctx.Done()
	e.hold = nil
	if !e.store.PlainCommands() && !e.cfg.DisableHoldAhead {
		e.hold = newHold(len(e.cfg.IDs))
		// A predecessor with this pid that died left its hold: give it back
		// before holding anything.
		if err := e.retry(ctx, "return jobs held ahead by an earlier process", func(rctx context.Context) error {
			n, err := e.store.ReturnHeld(rctx, e.cfg.IDs[0], nil)
			if n > 0 {
				e.logger.Info("returned jobs an earlier process with this pid held ahead", "jobs", n)
			}
			if err != nil {
				return err
			}
			// Listed before anything is held: a hold whose worker is
			// unregistered by someone else is found from the list.
			return e.store.AddHoldOwner(rctx, e.cfg.IDs[0])
		}); err != nil {
			return nil
		}
	}
	if e.cfg.StartedFunc != nil {
		e.cfg.StartedFunc()
	}

	// stop is done once a stop is requested either way: it starts the
	// clock of the writes that are still being retried (drainCtx).
	stop, stopCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-e.quit:
		case <-stop.Done():
		}
		stopCancel()
	}()

	hardCtx, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	bg, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	var bgWG sync.WaitGroup
	bgWG.Add(1)
	go func() { defer bgWG.Done(); e.upkeep(bg) }()

	acker := newAcker(e, ctx.Done(), stop)
	ackDone := make(chan struct{})
	{
		var wg sync.WaitGroup
		if e.hold != nil {
			// Each slot posts to one loop only (acker.lanes): its entries
			// (a claim, then the ack of the claimed job) reach Redis in the
			// order it posted them.
			for lane := range acker.lanes {
				wg.Add(1)
				go func() { defer wg.Done(); acker.aheadLoop(lane) }()
			}
		} else {
			for lane := range ackLoops(len(e.cfg.IDs)) {
				wg.Add(1)
				go func() { defer wg.Done(); acker.loop(lane) }()
			}
		}
		go func() { wg.Wait(); close(ackDone) }()
	}

	slots := make([]*slot, len(e.cfg.IDs))
	idle := make(chan int, len(e.cfg.IDs))
	for i, id := range e.cfg.IDs {
		slots[i] = newSlot(i, id)
		idle <- i
		go func(s *slot) {
			defer close(s.done)
			e.runSlot(hardCtx, s, acker, idle)
		}(slots[i])
	}

	pickCtx, pickCancel := context.WithCancel(ctx)
	var pickWG sync.WaitGroup
	if !e.cfg.DisableBlockingPickup {
		pickWG.Add(1)
		go func() { defer pickWG.Done(); e.pickers(pickCtx) }()
	}

	e.fetchLoop(ctx, slots, idle, acker)
	pickCancel()
	pickWG.Wait()
	if e.store.PlainCommands() {
		// The plain acks hold jobs ahead in the pickup lists (no ack fetches
		// once a stop is requested): give them back now, not after the
		// running jobs end.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cleanupTimeout())
		if _, err := e.store.ReturnPickups(rctx, e.cfg.Owner); err != nil {
			e.logger.Warn("returning jobs held ahead failed; retried once the running jobs end", "error", err)
		}
		cancel()
	}
	for _, s := range slots {
		close(s.jobs)
	}

	if ctx.Err() != nil {
		// Fast stop: cancel running jobs, give them StopTimeout, then requeue.
		hardCancel()
		if !waitSlots(slots, time.After(e.cfg.StopTimeout)) {
			// Requeue the jobs still running and stop waiting for their
			// slots; the other slots are writing an ack (bounded by the
			// acker's retry deadline) or about to return.
			for _, s := range e.abandonRunning(ctx, slots) {
				<-s.done
			}
		}
	} else {
		waitSlots(slots, nil) // graceful: every running job finishes
	}
	acker.close()
	<-ackDone
	bgCancel()
	bgWG.Wait()

	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cleanupTimeout())
	defer cancel()
	if n, err := e.store.ReturnPickups(uctx, e.cfg.Owner); err != nil {
		e.logger.Error("returning picked-up jobs failed; the next worker will recover them", "error", err)
	} else if n > 0 {
		e.logger.Info("returned picked-up jobs to their queues", "jobs", n)
	}
	if e.hold != nil {
		// Every claim is written (or given up) now: what is left in the
		// hash is held and untaken.
		if n, err := e.store.ReturnHeld(uctx, e.cfg.IDs[0], nil); err != nil {
			e.logger.Error("returning jobs held ahead failed; the next worker will recover them", "error", err)
		} else if n > 0 {
			e.logger.Info("returned jobs held ahead to their queues", "jobs", n)
		}
	}
	if err := e.store.Unregister(uctx, e.cfg.IDs); err != nil {
		e.logger.Error("unregister failed; the ids stay registered until pruned", "error", err)
	}
	return nil
}

// cleanupTimeout bounds the writes of a stopping worker that are not acks
// (requeueing interrupted jobs, returning pickups, unregistering): one
// StopTimeout, but at least a second, which any Redis that answers needs
// far less than.
func (e *Engine) cleanupTimeout() time.Duration { return max(e.cfg.StopTimeout, time.Second) }

// waitSlots waits until every slot's goroutine has returned, or timeout
// fires (nil: never); it reports whether they all returned.
func waitSlots(slots []*slot, timeout <-chan time.Time) bool {
	for _, s := range slots {
		select {
		case <-s.done:
		case <-timeout:
			return false
		}
	}
	return true
}

// permanentAttempts is how many times in a row a start-up step may fail with
// a permanent error (wire.IsPermanent) before Run returns it.
const permanentAttempts = 3

// retry runs fn until it succeeds or a stop is requested, backing off while
// Redis is unreachable. It returns an error if it stopped first, or if fn
// failed permanentAttempts times in a row with a permanent error.
func (e *Engine) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	permanent := 0
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// A wrong password, a missing permission or an untrusted
		// certificate does not heal by waiting: after a few attempts
		// (a failover can briefly look like one) give up with it.
		if wire.IsPermanent(err) {
			if permanent++; permanent >= permanentAttempts {
				return fmt.Errorf("%s: %w", what, err)
			}
		} else {
			permanent = 0
		}
		e.logger.Warn(what+" failed; retrying", "error", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-e.quit:
			t.Stop()
			return errors.New("shutdown")
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// drainCtx returns a context that ends StopTimeout after stop ends (or
// StopTimeout from now if it has already ended): the deadline of a write
// that is being retried while the worker stops.
func (e *Engine) drainCtx(stop context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var t *time.Timer
	unhook := context.AfterFunc(stop, func() {
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() == nil {
			t = time.AfterFunc(e.cfg.StopTimeout, cancel)
		}
	})
	return ctx, func() {
		unhook()
		mu.Lock()
		cancel()
		if t != nil {
			t.Stop()
		}
		mu.Unlock()
	}
}

// stopping reports whether a stop was requested either way.
func (e *Engine) stopping(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	select {
	case <-e.quit:
		return true
	default:
		return false
	}
}

// holdOpen reports whether a slot may start a held job: the worker is
// neither paused (itself, or all workers by pause-all-workers) nor stopping.
func (e *Engine) holdOpen() bool {
	if e.paused.Load() || e.remotePaused.Load() {
		return false
	}
	select {
	case <-e.quit:
		return false
	case <-e.fastStop:
		return false
	default:
		return true
	}
}

// pickupOwner is the owner of this worker's pickup lists, or "" when
// blocking pickup is off.
func (e *Engine) pickupOwner() string {
	if e.cfg.DisableBlockingPickup && !e.store.PlainCommands() {
		return "" // (without scripts, every fetch goes through the pickup lists)
	}
	return e.cfg.Owner
}
