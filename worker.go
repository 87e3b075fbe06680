package resq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resq-go/resq/internal/envelope"
	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/wire"
	"github.com/resq-go/resq/internal/worker"
)

// Worker fetches jobs from Redis and runs the registered handlers. The
// fetching, the slots, the acker and the upkeep are internal/worker's
// Engine; the Worker holds the handlers and executes each job the engine
// hands it (execute.go).
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
	redactor *Redactor      // secret fields of this worker's handlers, for scrubbing errors
	unsigned queueSpec      // queues accepting unsigned jobs
	iso      *isolation     // child processes (worker_child.go); nil when unused
	leases   *leaseKeeper   // class concurrency caps (concurrency.go); nil when unused
	engine   *worker.Engine // fetch loop, slots, acker, upkeep
	// orphanHolds is the dead-worker check's memory of unregistered
	// workers' holds (prune.go); used by the upkeep's calls only.
	orphanHolds map[string]time.Time

	mu      sync.Mutex
	running bool
	started bool          // registered (set on Run's goroutine)
	stopped chan struct{} // closed when Run returns
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
	if err := cfg.Retry.validate(); err != nil {
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
	w := &Worker{orphanHolds: map[string]time.Time{},
		conn:     conn,
		store:    conn.store,
		cfg:      cfg,
		spec:     spec,
		logger:   cfg.Logger,
		handlers: map[string]*handlerEntry{},
		stopped:  make(chan struct{}),
	}
	w.ids = workerIDs(cfg.Hostname, cfg.PID, spec.idPart(), cfg.Concurrency)
	w.limits = cfg.Limits.envelope()
	if len(cfg.AllowUnsigned) > 0 {
		w.unsigned, err = parseQueues(cfg.AllowUnsigned)
		if err != nil {
			return nil, fmt.Errorf("resq.NewWorker: AllowUnsigned: %w", err)
		}
	}
	ecfg := worker.Config{
		Store: conn.store, IDs: w.ids, Owner: cfg.Hostname + ":" + strconv.Itoa(cfg.PID),
		PollInterval: cfg.PollInterval, HeartbeatInterval: cfg.HeartbeatInterval, StopTimeout: cfg.StopTimeout,
		DisableBlockingPickup: cfg.DisableBlockingPickup, DisableHoldAhead: cfg.DisableHoldAhead, MaxBytes: w.limits.MaxBytes, Logger: cfg.Logger,
		ExecuteFunc: w.execute, StartFunc: w.start, StartedFunc: w.logStarted, PruneFunc: w.prune,
	}
	if spec.dynamic {
		ecfg.ResolveQueuesFunc = spec.resolve
	} else {
		ecfg.Queues = spec.include
	}
	if w.engine, err = worker.New(ecfg); err != nil {
		return nil, fmt.Errorf("resq.NewWorker: %w", err)
	}
	return w, nil
}

// workerIDs returns one Resque worker id per slot: host:pid:queues for a
// single slot (exactly Ruby's form), host:pid:queues:N otherwise. The pid part
// stays the bare pid and the queue part's first entries stay the configured
// queues, so Ruby's same-host pruning sees a live process (docs/protocol.md §4.15).
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
func (w *Worker) Pause() { w.engine.Pause() }

// Resume undoes Pause (like CONT).
func (w *Worker) Resume() { w.engine.Resume() }

// Shutdown asks Run to stop taking jobs, finish the running ones and return
// (like QUIT). It waits until Run has returned or ctx ends. While Redis is
// unreachable, results that cannot be written within StopTimeout are left in
// the workers' in-flight records, which the next worker recovers.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.engine.RequestStop()
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

// Run registers the worker, runs jobs until ctx is cancelled or Shutdown is
// called, and unregisters. When ctx is cancelled (a fast stop, like TERM),
// running jobs' contexts are cancelled and jobs still running after
// StopTimeout are requeued at the head of their queue. Redis outages are
// retried with backoff; Run does not return because Redis is away. Once a
// stop is requested, results that Redis does not take within StopTimeout
// stay in the in-flight records, for the next worker to recover.
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
	if err := w.checkHandlerRetries(); err != nil {
		w.mu.Unlock()
		return err
	}
	if err := w.startLimits(); err != nil {
		w.mu.Unlock()
		return err
	}
	w.perform = w.buildChain()
	w.redactor = &Redactor{classFields: map[string]map[string]bool{}}
	for class, h := range w.handlers {
		h.retry = w.retryPolicy(h)
		set := map[string]bool{}
		for _, f := range h.secrets {
			set[f] = true
		}
		w.redactor.classFields[class] = set
	}
	w.mu.Unlock()
	defer close(w.stopped)
	defer w.stopLimits()

	err := w.engine.Run(ctx) // calls w.start, w.logStarted, then w.execute per job
	if w.started {
		w.logger.Info("worker stopped", "first_id", w.ids[0])
	}
	return err
}

// start runs at start-up, before the ids are registered (retried while
// Redis is unreachable): it recovers dead workers' jobs (ours or Ruby's) and
// records the handlers' secret fields.
func (w *Worker) start(ctx context.Context) error {
	if _, err := w.conn.pruneDead(ctx, w.pruneOptions()); err != nil {
		return err
	}
	for class, h := range w.handlers {
		if err := w.store.AddSecretFields(ctx, class, h.secrets); len(h.secrets) > 0 && err != nil {
			return err
		}
	}
	return nil
}

func (w *Worker) logStarted() {
	w.started = true
	w.logger.Info("worker started", "workers", len(w.ids), "queues", w.spec.idPart(),
		"first_id", w.ids[0], "handlers", len(w.handlers))
}

// prune is the engine's periodic dead-worker check.
func (w *Worker) prune(ctx context.Context) error {
	_, err := w.conn.pruneDead(ctx, w.pruneOptions())
	return err
}

func (w *Worker) pruneOptions() pruneOptions {
	own := make(map[string]bool, len(w.ids))
	for _, id := range w.ids {
		own[id] = true
	}
	return pruneOptions{host: w.cfg.Hostname, own: own, staleAfter: w.cfg.PruneInterval, policy: w.cfg.DeadJobs, logger: w.logger, orphans: w.orphanHolds}
}

// ProcessTitle is the argv[0] that EnsureProcessTitle gives the process.
const ProcessTitle = "resque-3.0.0:resq-work"

// EnsureProcessTitle makes the process's command line start with
// ProcessTitle, by re-executing the same binary in place (the pid does not
// change; the call does not return on success). Ruby Resque workers starting
// on the same host treat registered workers whose pid is not a process with a
// Resque-like command line as dead and fail their running jobs (docs/protocol.md §4.15);
// call this first thing in main when Ruby workers share the host. It returns
// nil at once if the title is already set.
func EnsureProcessTitle() error { return isolate.EnsureProcessTitle(ProcessTitle) }
