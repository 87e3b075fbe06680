package resq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/resq-go/resq/internal/envelope"
	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/wire"
)

// Worker fetches jobs from Redis and runs the registered handlers.
type Worker struct {
	conn     *Conn
	store    *wire.Store
	cfg      WorkerConfig
	spec     queueSpec
	logger   *slog.Logger
	ids      []string
	handlers map[string]*handlerEntry
	perform  func(h *handlerEntry) HandlerFunc
	limits   envelope.Limits
	redactor *Redactor    // secret fields of this worker's handlers, for scrubbing errors
	unsigned queueSpec    // queues accepting unsigned jobs
	iso      *isolation   // child processes (worker_child.go); nil when unused
	leases   *leaseKeeper // class concurrency caps (concurrency.go); nil when unused

	mu      sync.Mutex
	running bool
	paused  atomic.Bool
	wake    chan struct{} // pokes the fetcher (resume, shutdown)
	recheck chan struct{} // asks maintain to run now (after a Redis outage)

	owner      string      // host:pid, owner of the pickup lists
	wantPickup atomic.Bool // a slot is idle and the queues were empty
	pickSignal broadcast   // fired when wantPickup becomes true
	picksMu    sync.Mutex
	picks      map[*context.CancelFunc]bool // blocking pickups in progress
	pickQueues atomic.Pointer[[]string]     // the resolved queues, for the pickers
	quit       chan struct{}                // graceful shutdown requested
	quitMu     sync.Once
	stopped    chan struct{} // closed when Run returns
}

// NewWorker validates cfg and returns a Worker. Register handlers with Handle,
// HandleFunc or HandleCommand, then call Run.
func NewWorker(conn *Conn, cfg WorkerConfig) (*Worker, error) {
	if conn == nil {
		return nil, errors.New("resq.NewWorker: conn is nil")
	}
	spec, err := parseQueues(cfg.Queues)
	if err != nil {
		return nil, fmt.Errorf("resq.NewWorker: %w", err)
	}
	if cfg.Concurrency < 0 {
		return nil, fmt.Errorf("resq.NewWorker: concurrency %d is negative", cfg.Concurrency)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if err := checkClassConcurrency(cfg.ClassConcurrency); err != nil {
		return nil, fmt.Errorf("resq.NewWorker: %w", err)
	}
	if cfg.JobTimeout <= 0 {
		cfg.JobTimeout = DefaultJobTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = DefaultPruneInterval
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("resq.NewWorker: host name: %w", err)
		}
		cfg.Hostname = h
	}
	if strings.Contains(cfg.Hostname, ":") {
		return nil, fmt.Errorf("resq.NewWorker: host name %q contains ':', which Resque worker ids cannot hold", cfg.Hostname)
	}
	if cfg.PID == 0 {
		cfg.PID = os.Getpid()
	}
	if cfg.Logger == nil {
		cfg.Logger = conn.logger
	}
	w := &Worker{
		conn:     conn,
		store:    conn.store,
		cfg:      cfg,
		spec:     spec,
		logger:   cfg.Logger,
		handlers: map[string]*handlerEntry{},
		wake:     make(chan struct{}, 1),
		recheck:  make(chan struct{}, 1),
		quit:     make(chan struct{}),
		stopped:  make(chan struct{}),
	}
	w.ids = workerIDs(cfg.Hostname, cfg.PID, spec.idPart(), cfg.Concurrency)
	w.owner = cfg.Hostname + ":" + strconv.Itoa(cfg.PID)
	if !spec.dynamic {
		qs := spec.include
		w.pickQueues.Store(&qs)
	}
	w.limits = cfg.Limits.envelope()
	if len(cfg.AllowUnsigned) > 0 {
		w.unsigned, err = parseQueues(cfg.AllowUnsigned)
		if err != nil {
			return nil, fmt.Errorf("resq.NewWorker: AllowUnsigned: %w", err)
		}
	}
	return w, nil
}

// workerIDs returns one Resque worker id per slot: host:pid:queues for a
// single slot (exactly Ruby's form), host:pid:queues:N otherwise. The pid part
// stays the bare pid and the queue part's first entries stay the configured
// queues, so Ruby's same-host pruning sees a live process (spec §4.15).
func workerIDs(host string, pid int, queues string, n int) []string {
	base := host + ":" + strconv.Itoa(pid) + ":" + queues
	if n == 1 {
		return []string{base}
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = base + ":" + strconv.Itoa(i+1)
	}
	return ids
}

// IDs returns the Resque worker ids of the slots.
func (w *Worker) IDs() []string { return append([]string(nil), w.ids...) }

func (w *Worker) register(h *handlerEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running {
		panic("resq: handlers must be registered before Run")
	}
	w.handlers[h.class] = h
}

// Pause stops taking new jobs (like USR2 for Ruby workers); running jobs
// continue. Blocking pickups in progress are cancelled.
func (w *Worker) Pause() {
	w.paused.Store(true)
	w.wantPickup.Store(false)
	w.picksMu.Lock()
	for c := range w.picks {
		(*c)()
	}
	w.picksMu.Unlock()
	w.poke()
}

// Resume undoes Pause (like CONT).
func (w *Worker) Resume() { w.paused.Store(false); w.poke() }

// Shutdown asks Run to stop taking jobs, finish the running ones and return
// (like QUIT). It waits until Run has returned or ctx ends.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.quitMu.Do(func() { close(w.quit) })
	w.poke()
	w.mu.Lock()
	running := w.running
	w.mu.Unlock()
	if !running {
		return nil
	}
	select {
	case <-w.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// slot is one concurrent job runner with its own Resque worker id.
type slot struct {
	idx     int
	id      string
	jobs    chan wire.Fetched
	ackDone chan ackResult // the acker's "written" signal, reused per job
	// checkHeld asks the slot's next fetch to look for a record already on
	// it: set at start-up and after a write for the slot whose outcome is
	// unknown (its reply was lost, say).
	checkHeld atomic.Bool

	mu        sync.Mutex
	current   *wire.Fetched
	abandoned bool
}

// Run registers the worker, runs jobs until ctx is cancelled or Shutdown is
// called, and unregisters. When ctx is cancelled (a fast stop, like TERM),
// running jobs' contexts are cancelled and jobs still running after
// StopTimeout are requeued at the head of their queue. Redis outages are
// retried with backoff; Run does not return because Redis is away.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.running {
		w.mu.Unlock()
		return errors.New("resq: Worker.Run called twice")
	}
	w.running = true
	if len(w.handlers) == 0 {
		w.mu.Unlock()
		return errors.New("resq: no handlers registered; use resq.Handle, HandleFunc or HandleCommand before Run")
	}
	if InChildProcess() {
		w.mu.Unlock()
		return w.serveChild() // serves the worker's pipe, then exits the process
	}
	if err := w.startLimits(); err != nil {
		w.mu.Unlock()
		return err
	}
	w.perform = w.buildChain()
	w.redactor = &Redactor{classFields: map[string]map[string]bool{}}
	for class, h := range w.handlers {
		set := map[string]bool{}
		for _, f := range h.secrets {
			set[f] = true
		}
		w.redactor.classFields[class] = set
	}
	w.mu.Unlock()
	defer close(w.stopped)
	defer w.stopLimits()

	// Start-up: learn whether Redis runs Lua scripts (some operators deny
	// them), find dead workers (ours or Ruby's), then register, retrying
	// while Redis is unreachable.
	if err := w.retry(ctx, "check Redis scripting", func(rctx context.Context) error {
		_, err := w.store.ProbeScripts(rctx)
		return err
	}); err != nil {
		return nil // ctx ended before Redis answered: nothing was taken
	}
	if w.store.PlainCommands() {
		w.logger.Warn("Redis refuses Lua scripts: the worker runs on plain commands (a fetch takes three or more round trips, an oversize payload is transferred before it is refused)")
	}
	if err := w.retry(ctx, "register worker", func(rctx context.Context) error {
		if _, err := w.conn.pruneDead(rctx, w.pruneOptions()); err != nil {
			return err
		}
		for class, h := range w.handlers {
			if err := w.store.AddSecretFields(rctx, class, h.secrets); len(h.secrets) > 0 && err != nil {
				return err
			}
		}
		return w.store.Register(rctx, w.ids, time.Now())
	}); err != nil {
		return nil // ctx ended before Redis answered: nothing was taken
	}
	w.logger.Info("worker started", "workers", len(w.ids), "queues", w.spec.idPart(),
		"first_id", w.ids[0], "handlers", len(w.handlers))

	hardCtx, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	bg, bgCancel := context.WithCancel(context.WithoutCancel(ctx))
	var bgWG sync.WaitGroup
	bgWG.Add(1)
	go func() { defer bgWG.Done(); w.maintain(bg) }()

	acker := newAcker(w, ctx.Done())
	ackDone := make(chan struct{})
	{
		var wg sync.WaitGroup
		for lane := range ackLoops(len(w.ids)) {
			wg.Add(1)
			go func() { defer wg.Done(); acker.loop(lane) }()
		}
		go func() { wg.Wait(); close(ackDone) }()
	}

	slots := make([]*slot, len(w.ids))
	idle := make(chan int, len(w.ids))
	var slotWG sync.WaitGroup
	for i, id := range w.ids {
		slots[i] = &slot{idx: i, id: id, jobs: make(chan wire.Fetched, 1), ackDone: make(chan ackResult, 1)}
		slots[i].checkHeld.Store(true)
		idle <- i
		slotWG.Add(1)
		go func(s *slot) {
			defer slotWG.Done()
			w.runSlot(hardCtx, s, acker, idle)
		}(slots[i])
	}

	pickCtx, pickCancel := context.WithCancel(ctx)
	var pickWG sync.WaitGroup
	if !w.cfg.DisableBlockingPickup {
		pickWG.Add(1)
		go func() { defer pickWG.Done(); w.pickers(pickCtx) }()
	}

	w.fetchLoop(ctx, slots, idle)
	pickCancel()
	pickWG.Wait()
	for _, s := range slots {
		close(s.jobs)
	}

	slotsDone := make(chan struct{})
	go func() { slotWG.Wait(); close(slotsDone) }()
	if ctx.Err() != nil {
		// Fast stop: cancel running jobs, give them StopTimeout, then requeue.
		hardCancel()
		select {
		case <-slotsDone:
		case <-time.After(w.cfg.StopTimeout):
			w.requeueRunning(slots)
		}
	} else {
		<-slotsDone // graceful: every running job finishes
	}
	acker.close()
	<-ackDone
	bgCancel()
	bgWG.Wait()

	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if n, err := w.store.ReturnPickups(uctx, w.owner); err != nil {
		w.logger.Error("returning picked-up jobs failed; the next worker will recover them", "error", err)
	} else if n > 0 {
		w.logger.Info("returned picked-up jobs to their queues", "jobs", n)
	}
	if err := w.store.Unregister(uctx, w.ids); err != nil {
		w.logger.Error("unregister failed; the ids stay registered until pruned", "error", err)
	}
	w.logger.Info("worker stopped", "first_id", w.ids[0])
	return nil
}

// retry runs fn until it succeeds or ctx ends, backing off while Redis is
// unreachable. It returns ctx's error if ctx ended first.
func (w *Worker) retry(ctx context.Context, what string, fn func(context.Context) error) error {
	backoff := 100 * time.Millisecond
	for {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.logger.Warn(what+" failed; retrying", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.quit:
			return errors.New("shutdown")
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (w *Worker) stopping(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	select {
	case <-w.quit:
		return true
	default:
		return false
	}
}

// fetchLoop hands jobs to idle slots until a stop is requested.
func (w *Worker) fetchLoop(ctx context.Context, slots []*slot, idle chan int) {
	var batch []int
	var queues []string
	var resolvedAt time.Time
	backoff := minPollInterval
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
		case <-w.quit:
			return false
		case <-w.wake:
			return !w.stopping(ctx)
		case <-t.C:
			return true
		}
	}
	for {
		if w.stopping(ctx) {
			return
		}
		if len(batch) == 0 {
			select {
			case v := <-idle:
				take(v)
			case <-ctx.Done():
				return
			case <-w.quit:
				return
			case <-w.wake:
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
		if w.paused.Load() {
			w.wantPickup.Store(false)
			if w.pickupOwner() != "" {
				// A pickup that won a job just before the pause gives it back,
				// so a paused worker holds nothing but its running jobs.
				if _, err := w.store.ReturnPickups(ctx, w.owner); err != nil && ctx.Err() == nil {
					w.logger.Warn("returning picked-up jobs failed", "error", err)
				}
			}
			if !sleep(w.cfg.PollInterval) {
				return
			}
			continue
		}
		if w.spec.dynamic && (queues == nil || time.Since(resolvedAt) > time.Second) {
			known, err := w.store.QueueNames(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				w.logger.Warn("reading queues failed; retrying", "error", err, "retry_in", errBackoff)
				if !sleep(errBackoff) {
					return
				}
				errBackoff = min(errBackoff*2, 5*time.Second)
				continue
			}
			queues, resolvedAt = w.spec.resolve(known), time.Now()
			resolved := queues // a fresh variable: the pickers keep its address
			w.pickQueues.Store(&resolved)
		} else if !w.spec.dynamic {
			queues = w.spec.include
		}
		if !fresh && !w.cfg.DisableBlockingPickup && len(queues) <= maxPickers {
			// The queues were empty for every slot here a moment ago: let
			// the blocking pickup wake this loop when a job arrives.
			w.wantPickup.Store(true)
			w.pickSignal.fire()
			if !sleep(w.cfg.PollInterval) {
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
		got, err := w.store.FetchWith(ctx, wire.FetchRequest{Queues: queues, PickupOwner: w.pickupOwner(), WorkerIDs: ids,
			MaxBytes: w.limits.MaxBytes, CheckHeld: checkHeld}, time.Now())
		if err != nil && !errors.Is(err, wire.ErrPaused) {
			for _, si := range batch {
				slots[si].checkHeld.Store(true) // the fetch may have happened with its reply lost
			}
		}
		switch {
		case errors.Is(err, wire.ErrPaused):
			w.wantPickup.Store(false)
			if !sleep(w.cfg.PollInterval) {
				return
			}
			continue
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			w.logger.Warn("fetch failed; retrying", "error", err, "retry_in", errBackoff)
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
			case w.recheck <- struct{}{}:
			default:
			}
		}
		// Blocking pickers wait on the queues only while a slot is idle and
		// the queues are empty.
		if len(got) < len(batch) {
			w.wantPickup.Store(true)
			w.pickSignal.fire()
		} else {
			w.wantPickup.Store(false)
		}
		if len(got) == 0 {
			d := backoff
			if !w.cfg.DisableBlockingPickup && len(queues) <= maxPickers {
				// Every queue has a blocking pickup that wakes this loop as
				// soon as a job arrives: polling is only a fallback.
				d = w.cfg.PollInterval
			}
			if !sleep(d) {
				return
			}
			backoff = min(backoff*2, w.cfg.PollInterval)
			continue
		}
		backoff = minPollInterval
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

// runSlot executes the jobs handed to one slot. A finished job's ack may
// bring the slot's next job with it (acker), so a busy slot goes back to the
// fetcher only when the queues ran dry.
func (w *Worker) runSlot(hardCtx context.Context, s *slot, acker *acker, idle chan<- int) {
	for f := range s.jobs {
		for {
			next, res, abandoned := w.runJob(hardCtx, s, acker, f)
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

// runJob runs one job on s and writes its outcome; res.more reports that
// the ack brought the slot's next job (res.next).
func (w *Worker) runJob(hardCtx context.Context, s *slot, acker *acker, f wire.Fetched) (next wire.Fetched, res ackResult, abandoned bool) {
	release, bounced := w.admit(hardCtx, s, f) // class concurrency cap
	if bounced {
		return next, res, false
	}
	s.mu.Lock()
	s.current = &f
	s.mu.Unlock()

	ack, requeue := w.execute(hardCtx, s, f)
	release()

	s.mu.Lock()
	abandoned = s.abandoned
	s.current = nil
	s.mu.Unlock()
	if abandoned {
		return next, res, true
	}
	if requeue {
		w.requeue(s, f)
		return next, res, false
	}
	res = acker.submit(ack, s)
	return res.next, res, false
}

// requeueRunning requeues the jobs of slots still busy after StopTimeout.
func (w *Worker) requeueRunning(slots []*slot) {
	for _, s := range slots {
		s.mu.Lock()
		f := s.current
		if f != nil {
			s.abandoned = true
		}
		s.mu.Unlock()
		if f != nil {
			w.requeue(s, *f)
		}
	}
}

func (w *Worker) requeue(s *slot, f wire.Fetched) {
	if f.Oversize != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ok, err := w.store.Requeue(ctx, s.id, f.Queue, f.Raw)
	switch {
	case err != nil:
		w.logger.Error("requeue of an interrupted job failed; the next worker will recover it",
			"worker", s.id, "queue", f.Queue, "error", err)
	case ok:
		w.logger.Info("interrupted job requeued", "worker", s.id, "queue", f.Queue, "bytes", len(f.Raw))
	}
}

// execute runs one fetched job and returns the ack to write, or requeue=true
// when a fast stop interrupted it.
func (w *Worker) execute(hardCtx context.Context, s *slot, f wire.Fetched) (ack wire.Ack, requeue bool) {
	start := time.Now()
	ack = wire.Ack{WorkerID: s.id, Processed: true, Queue: f.Queue, Class: ClassInvalid}
	ev := JobEvent{Queue: f.Queue, WorkerID: s.id, Bytes: len(f.Raw), Class: ClassInvalid}
	defer func() {
		if w.cfg.OnJobDone == nil {
			return
		}
		ev.Duration = time.Since(start)
		switch {
		case requeue:
			ev.Outcome = OutcomeRequeued
		case ack.Failure != nil:
			ev.Outcome = OutcomeFailed
		case ev.Outcome == "":
			ev.Outcome = OutcomeDone
		}
		w.cfg.OnJobDone(ev)
	}()
	var secretsOf func() []string // values to scrub from error messages
	fail := func(name, msg string, bt []string) wire.Ack {
		var secrets []string
		if secretsOf != nil {
			secrets = secretsOf()
		}
		if len(secrets) > 0 {
			msg = scrub(msg, secrets)
			for i := range bt {
				bt[i] = scrub(bt[i], secrets)
			}
		}
		payload := f.Raw
		if len(payload) == 0 || payload[0] != '{' || !json.Valid(payload) {
			payload = wire.InvalidPayloadObject(f.Raw)
		}
		ack.Failure = wire.Failure{
			FailedAt: wire.FailedAt(time.Now()), Payload: payload, Exception: name, Error: msg,
			Backtrace: bt, Worker: s.id, Queue: f.Queue,
		}.Encode()
		ack.CountFailed = true
		ev.Exception = name
		w.logger.Warn("job failed", "job_id", ev.ID, "class", ev.Class, "queue", f.Queue, "worker", s.id,
			"exception", name, "bytes", len(f.Raw), "duration", time.Since(start))
		return ack
	}
	if o := f.Oversize; o != nil {
		msg := w.limits.CheckSize(o.Size).Error() + "; the job was not run"
		fail(ExceptionPayloadLimit, msg, nil)
		// The record keeps only the payload's first KiB, its size and SHA-1.
		ack.Failure = wire.Failure{FailedAt: wire.FailedAt(time.Now()), Payload: wire.OversizePayloadObject(f.Raw, *o),
			Exception: ExceptionPayloadLimit, Error: msg, Backtrace: []string{}, Worker: s.id, Queue: f.Queue}.Encode()
		return ack, false
	}
	// One pass over the bytes: syntax, depth limit, duplicate keys, fields.
	p, err := wire.DecodePayloadDepth(f.Raw, w.limits.MaxDepth)
	ev.ID = p.ID
	switch {
	case errors.Is(err, wire.ErrTooDeep):
		lerr := &envelope.LimitError{Limit: "depth", Value: w.limits.MaxDepth + 1, Max: w.limits.MaxDepth}
		return fail(ExceptionPayloadLimit, lerr.Error()+"; the job was not run", nil), false
	case err != nil:
		return fail(ExceptionInvalidPayload, err.Error()+"; the job was not run", nil), false
	}
	args, elems, signed, name, err := w.open(p, f.Queue)
	if err != nil {
		return fail(name, err.Error()+"; the job was not run", nil), false
	}
	h := w.handlers[p.Class]
	if h == nil {
		ack.Class, ev.Class = ClassUnknown, ClassUnknown
		return fail(ExceptionUnknownClass, fmt.Sprintf("no handler is registered for class %q on this worker; the job was not run (register it with resq.Handle, or work this queue with a worker that has it)", p.Class), nil), false
	}
	ack.Class, ev.Class = p.Class, p.Class
	secretsOf = func() []string { return w.redactor.secretValues(p.Class, args, p.Envelope.Enc != nil) }
	if w.cfg.ReplayWindow > 0 && p.ID != "" {
		seen, err := w.store.Seen(hardCtx, p.ID)
		if err == nil && seen {
			return fail(ExceptionReplay, fmt.Sprintf("job id %s already ran within the replay window (%s); the job was not run", p.ID, w.cfg.ReplayWindow), nil), false
		}
		ack.SeenID, ack.SeenTTL = p.ID, w.cfg.ReplayWindow
	}
	job := &Job{ID: p.ID, Class: p.Class, Queue: f.Queue, Args: args, EnqueuedAt: p.EnqueuedAt,
		WorkerID: s.id, StartedAt: start, payload: f.Raw, Encrypted: p.Envelope.Enc != nil, Signed: signed}
	job.elems, job.split = elems, args
	job.Metadata = p.Metadata()
	timeout := w.cfg.JobTimeout
	if h.opts.Timeout > 0 {
		timeout = h.opts.Timeout
	}
	jctx, cancel := context.WithTimeout(hardCtx, timeout)
	err = runProtected(jctx, w.perform(h), job)
	timedOut := errors.Is(jctx.Err(), context.DeadlineExceeded)
	cancel()
	switch {
	case err == nil:
		w.logger.Debug("job done", "job_id", job.ID, "class", job.Class, "queue", job.Queue,
			"worker", s.id, "bytes", len(f.Raw), "duration", time.Since(start))
		return ack, false
	case errors.Is(err, ErrDontPerform):
		ev.Outcome = OutcomeSkipped
		w.logger.Debug("job skipped by middleware", "job_id", job.ID, "class", job.Class, "queue", job.Queue)
		return ack, false
	case hardCtx.Err() != nil && !timedOut:
		return ack, true
	case timedOut:
		var je Exception
		if errors.As(err, &je) && je.ExceptionName() == ExceptionTimeout {
			return fail(ExceptionTimeout, err.Error(), backtraceOf(err)), false
		}
		return fail(ExceptionTimeout, fmt.Sprintf("timeout after %s: the job's context was cancelled (%v)", roundDur(timeout), err), backtraceOf(err)), false
	default:
		return fail(exceptionName(err), err.Error(), backtraceOf(err)), false
	}
}

// open checks a decoded payload's signature and decrypts its args
// (envelope.Keyring.Open), then checks the plaintext against the limits. It
// returns the plaintext args and their elements, whether a signature was
// verified, and on error the exception name to record.
func (w *Worker) open(p wire.Payload, queue string) (args json.RawMessage, elems []json.RawMessage, signed bool, exception string, err error) {
	args, signed, err = w.cfg.Keyring.envelope().Open(p.Meta(queue), p.Args, p.Envelope, w.unsignedQueue(queue))
	switch {
	case errors.Is(err, envelope.ErrSignature):
		return nil, nil, false, ExceptionSignature, err
	case err != nil:
		return nil, nil, signed, ExceptionDecrypt, err
	}
	if p.Envelope.Enc != nil {
		if err := w.limits.CheckDepth(args); err != nil {
			return nil, nil, signed, ExceptionPayloadLimit, err
		}
	}
	elems, err = wire.SplitArray(args, w.limits.MaxDepth+1)
	if err != nil {
		return nil, nil, signed, ExceptionInvalidPayload, fmt.Errorf("args are not a JSON array")
	}
	if err := w.limits.CheckArgs(len(elems)); err != nil {
		return nil, nil, signed, ExceptionPayloadLimit, err
	}
	return args, elems, signed, "", nil
}

func (w *Worker) unsignedQueue(queue string) bool {
	return w.unsigned.matches(queue)
}

// runProtected runs fn, turning a panic into an error with a stack trace.
func runProtected(ctx context.Context, fn HandlerFunc, job *Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			stack := strings.Split(strings.TrimSpace(string(debug.Stack())), "\n")
			err = &JobError{Name: ExceptionPanic, Err: fmt.Errorf("panic: %v", r), Backtrace: stack}
		}
	}()
	return fn(ctx, job)
}

func exceptionName(err error) string {
	var e Exception
	if errors.As(err, &e) {
		return e.ExceptionName()
	}
	if errors.Is(err, ErrInvalidArgs) {
		return ExceptionInvalidArgs
	}
	return ExceptionError
}

func backtraceOf(err error) []string {
	var je *JobError
	if errors.As(err, &je) {
		return je.Backtrace
	}
	return nil
}

// buildChain wraps handlers in the configured middleware, outermost first.
func (w *Worker) buildChain() func(h *handlerEntry) HandlerFunc {
	mws := append([]Middleware(nil), w.cfg.Middleware...)
	chains := make(map[*handlerEntry]HandlerFunc, len(w.handlers))
	for _, h := range w.handlers {
		fn := w.baseHandler(h)
		for i := len(mws) - 1; i >= 0; i-- {
			fn = mws[i](fn)
		}
		chains[h] = fn
	}
	return func(h *handlerEntry) HandlerFunc { return chains[h] }
}

// maintain refreshes heartbeats, re-registers ids that someone removed, and
// recovers dead workers' jobs, every HeartbeatInterval.
func (w *Worker) maintain(ctx context.Context) {
	t := time.NewTicker(w.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.recheck:
		}
		if err := w.store.Beat(ctx, w.ids); err != nil {
			if ctx.Err() == nil {
				w.logger.Warn("heartbeat failed", "error", err)
			}
			continue
		}
		if ok, err := w.store.IsRegistered(ctx, w.ids[0]); err == nil && !ok {
			w.logger.Warn("worker ids were unregistered by another process; registering again", "first_id", w.ids[0])
			_ = w.store.Register(ctx, w.ids, time.Now())
		}
		if _, err := w.conn.pruneDead(ctx, w.pruneOptions()); err != nil && ctx.Err() == nil {
			w.logger.Warn("dead-worker check failed", "error", err)
		}
	}
}

func (w *Worker) pruneOptions() pruneOptions {
	own := make(map[string]bool, len(w.ids))
	for _, id := range w.ids {
		own[id] = true
	}
	return pruneOptions{host: w.cfg.Hostname, own: own, staleAfter: w.cfg.PruneInterval, policy: w.cfg.DeadJobs, logger: w.logger}
}

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
	w    *Worker
	reqs chan ackReq
	stop <-chan struct{} // Run's ctx is done: no more fetching
}

// ackLoops is how many acker loops a worker with n slots runs.
func ackLoops(n int) int { return min(2, n) }

type ackReq struct {
	ack  wire.Ack
	slot *slot
}

// ackResult tells a slot that its ack is written, and hands it its next job
// when the write fetched one; empty says the write fetched and the queues
// had nothing for the slot.
type ackResult struct {
	next  wire.Fetched
	more  bool
	empty bool
}

func newAcker(w *Worker, stop <-chan struct{}) *acker {
	return &acker{w: w, reqs: make(chan ackReq, len(w.ids)), stop: stop}
}

// submit hands an ack to the batch writer and waits until it is written
// (on the slot's own ackDone channel, buffered 1, reused for every job).
func (a *acker) submit(ack wire.Ack, s *slot) ackResult {
	a.reqs <- ackReq{ack: ack, slot: s}
	return <-s.ackDone
}

func (a *acker) close() { close(a.reqs) }

// fetchNext is the fetch to send with a batch of acks, or nil when the
// finished slots should not take new jobs (paused, stopping, queues not yet
// resolved) or need not look: idle, when the blocking pickup is armed
// because the queues were empty at the last fetch (a job pushed since is
// moved by the pickup, which wakes the fetcher).
func (a *acker) fetchNext(batch []ackReq) (next *wire.FetchRequest, idle bool) {
	w := a.w
	if w.paused.Load() || w.store.PlainCommands() {
		return nil, false
	}
	if w.wantPickup.Load() && !w.cfg.DisableBlockingPickup {
		return nil, true
	}
	select {
	case <-a.stop:
		return nil, false
	case <-w.quit:
		return nil, false
	default:
	}
	qs := w.pickQueues.Load()
	if qs == nil || len(*qs) == 0 {
		return nil, false
	}
	ids := make([]string, len(batch))
	for i, b := range batch {
		ids[i] = b.ack.WorkerID
	}
	return &wire.FetchRequest{Queues: *qs, PickupOwner: w.pickupOwner(), WorkerIDs: ids, MaxBytes: w.limits.MaxBytes}, false
}

// write writes one batch of acks (with the slots' next fetch when fetchNext
// allows) and returns the jobs fetched; empty reports that slots without a
// job need not fetch again before the blocking pickup wakes them. It
// retries while Redis is away; a retry goes through Store.AckRetry, which
// never repeats a write that landed with its reply lost.
func (a *acker) write(batch []ackReq, acks []wire.Ack, mark wire.AckMark) (got []wire.Fetched, empty bool) {
	w := a.w
	next, idle := a.fetchNext(batch)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	got, fetched, err := w.store.AckAndFetch(ctx, acks, time.Now(), next, mark)
	cancel()
	if err == nil {
		return got, fetched || idle
	}
	// The outcome is unknown: the records this write replaced or left are
	// handed back by the slots' next fetch, which checks for them.
	for _, b := range batch {
		b.slot.checkHeld.Store(true)
	}
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		w.logger.Warn("writing job results failed; retrying", "error", err, "jobs", len(acks), "retry_in", backoff)
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var landed bool
		landed, err = w.store.AckRetry(ctx, acks, mark, time.Now())
		cancel()
		switch {
		case err == nil && landed:
			w.logger.Info("job results were written; only the reply was lost", "jobs", len(acks))
			return nil, false
		case err == nil:
			return nil, false
		case attempt >= 100:
			w.logger.Error("giving up on job results; their jobs will be recovered from the in-flight records", "jobs", len(acks))
			return nil, false
		}
	}
}

// loop is acker loop number lane. Its writes carry their own mark
// (<host:pid>:<lane>), numbered from the clock, so a later process with the
// same pid never meets its predecessor's marks.
func (a *acker) loop(lane int) {
	batch := make([]ackReq, 0, cap(a.reqs))
	acks := make([]wire.Ack, 0, cap(a.reqs))
	mark := wire.AckMark{Owner: a.w.owner + ":" + strconv.Itoa(lane), Seq: time.Now().UnixNano()}
	for r := range a.reqs {
		batch = append(batch[:0], r)
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

// ProcessTitle is the argv[0] that EnsureProcessTitle gives the process.
const ProcessTitle = "resque-3.0.0:resq-work"

// EnsureProcessTitle makes the process's command line start with
// ProcessTitle, by re-executing the same binary in place (the pid does not
// change; the call does not return on success). Ruby Resque workers starting
// on the same host treat registered workers whose pid is not a process with a
// Resque-like command line as dead and fail their running jobs (spec §4.15);
// call this first thing in main when Ruby workers share the host. It returns
// nil at once if the title is already set.
func EnsureProcessTitle() error { return isolate.EnsureProcessTitle(ProcessTitle) }

// pickupOwner is the owner of this worker's pickup lists, or "" when
// blocking pickup is off.
func (w *Worker) pickupOwner() string {
	if w.cfg.DisableBlockingPickup && !w.store.PlainCommands() {
		return "" // (without scripts, every fetch goes through the pickup lists)
	}
	return w.owner
}

// maxPickers bounds the blocking connections one worker holds.
const maxPickers = 16

// pickers runs one blocking pickup per queue (up to maxPickers) while a slot
// is idle and the queues are empty: a job pushed to an empty queue is moved
// at once (BLMOVE) into this process's pickup list and the fetcher is woken,
// so idle pickup latency does not depend on the poll interval. The pickup
// list is in Redis, so a job is never only in memory.
func (w *Worker) pickers(ctx context.Context) {
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, c := range running {
			c()
		}
		wg.Wait()
	}()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		want := map[string]bool{}
		if qs := w.pickQueues.Load(); qs != nil {
			for i, q := range *qs {
				if i >= maxPickers {
					break
				}
				want[q] = true
			}
		}
		for q, c := range running {
			if !want[q] {
				c()
				delete(running, q)
			}
		}
		for q := range want {
			if running[q] == nil {
				pctx, c := context.WithCancel(ctx)
				running[q] = c
				wg.Add(1)
				go func() { defer wg.Done(); w.pick(pctx, q) }()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *Worker) pick(ctx context.Context, queue string) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if !w.wantPickup.Load() || w.paused.Load() {
			wait := w.pickSignal.wait()
			if w.wantPickup.Load() && !w.paused.Load() {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-wait:
			case <-time.After(time.Second):
			}
			continue
		}
		bctx, cancel := context.WithCancel(ctx)
		w.picksMu.Lock()
		if w.picks == nil {
			w.picks = map[*context.CancelFunc]bool{}
		}
		w.picks[&cancel] = true
		w.picksMu.Unlock()
		moved, err := w.store.BlockingPickup(bctx, w.owner, queue, time.Second)
		w.picksMu.Lock()
		delete(w.picks, &cancel)
		w.picksMu.Unlock()
		cancel()
		if err != nil && ctx.Err() == nil && bctx.Err() != nil {
			continue // cancelled by Pause
		}
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
		case moved:
			backoff = 100 * time.Millisecond
			w.wantPickup.Store(false) // the fetcher decides again
			w.poke()
		}
	}
}

// broadcast wakes every goroutine waiting on it.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
