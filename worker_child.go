package resq

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/resq-go/resq/internal/isolate"
)

// Isolation says where a handler runs.
type Isolation int

const (
	// InProcess runs the handler on a goroutine of the worker (the
	// default). Its timeout cancels its context; a handler that ignores the
	// cancellation keeps its slot busy until it returns, so timed-out
	// handlers never pile up, but nothing can force it to stop.
	InProcess Isolation = iota
	// ChildProcess runs the handler in a warm child process: the worker's
	// own binary, re-executed in child mode, which runs one job at a time
	// sent over a pipe and is reused for ChildLimits.MaxJobs jobs. The
	// slots share a pool of such children per set of limits: about one per
	// core, more (up to one per slot) while long jobs hold them all. A
	// handler that outlives its timeout, or hits a ChildLimits limit, is
	// killed with its whole process tree; the worker and its other jobs are
	// unaffected (jobs sent to the same child that had not started yet run
	// in another one).
	//
	// The child runs main again up to Worker.Run, which then serves jobs
	// from the pipe instead of Redis and exits when the worker closes it.
	// So main must register the same handlers before Run, and must not do
	// work with side effects before Run when InChildProcess reports true
	// (enqueueing sample jobs, say). The child's environment is the
	// worker's without REDIS* and RESQ_* variables; it never talks to
	// Redis (jobs and results travel over the pipe; encrypted args are
	// decrypted by the worker).
	ChildProcess
)

func (i Isolation) String() string {
	if i == ChildProcess {
		return "child process"
	}
	return "in process"
}

// Defaults for ChildLimits.
const (
	DefaultMaxOutput    = 64 << 10
	DefaultOutputKill   = 64 << 20
	DefaultKillGrace    = 2 * time.Second
	DefaultChildMaxJobs = 1000
	childStartTimeout   = 10 * time.Second
)

// ChildLimits are hard limits on a job's child process, for --exec
// commands (Command.Limits) and ChildProcess handlers
// (HandlerOptions.Limits). Zero fields take the defaults: no memory, CPU,
// process or open-file limit; 64 KiB of output kept; a job killed after
// writing 64 MiB; 2 s of grace; a warm child recycled after 1000 jobs.
//
// The limits are enforced with cgroup v2 when the worker runs in a delegated
// cgroup (memory.max, pids.max and cpu.stat of the job's tree), otherwise
// with rlimits on each process (RLIMIT_DATA, RLIMIT_CPU, RLIMIT_NOFILE) and,
// for Procs, RLIMIT_NPROC under a dedicated uid per job, which needs root;
// Worker.Run refuses a process limit it cannot enforce. It logs the
// mechanism in force at start-up.
type ChildLimits struct {
	// Memory in bytes. Under rlimits it is per process and counts the
	// memory a process maps for writing (RLIMIT_DATA); a Go child needs
	// some tens of MiB for its runtime (and ~400 MiB under -race).
	Memory int64
	// CPUTime is CPU time (user + system). For an --exec command it is per
	// process under rlimits; for a ChildProcess handler, per job.
	CPUTime time.Duration
	// Procs bounds processes and threads (a Go child's runtime threads
	// count).
	Procs int
	// Files bounds open file descriptors per process (RLIMIT_NOFILE).
	Files int
	// MaxOutput is how many bytes of the child's stdout and stderr are
	// kept for the failure record; the rest is read and discarded.
	MaxOutput int
	// OutputKill kills a job that writes more than this many bytes;
	// negative: never.
	OutputKill int64
	// KillGrace is how long a job gets after SIGTERM (--exec) or after its
	// context is cancelled (ChildProcess) before it is killed.
	KillGrace time.Duration
	// MaxJobs recycles a warm child after this many jobs (ChildProcess
	// only); a child is also replaced after a limit hit, a timeout or a
	// crash.
	MaxJobs int
}

func (l ChildLimits) withDefaults() ChildLimits {
	if l.MaxOutput <= 0 {
		l.MaxOutput = DefaultMaxOutput
	}
	if l.OutputKill == 0 {
		l.OutputKill = DefaultOutputKill
	}
	if l.KillGrace <= 0 {
		l.KillGrace = DefaultKillGrace
	}
	if l.MaxJobs <= 0 {
		l.MaxJobs = DefaultChildMaxJobs
	}
	return l
}

func (l ChildLimits) outputKill() int64 { return max(l.OutputKill, 0) }

// Exception names of child-process failures.
const (
	// ExceptionResourceLimit: the job hit a memory, CPU-time, process,
	// open-file or output limit, or left processes running; the error names
	// the limit ("memory limit 256 MiB exceeded").
	ExceptionResourceLimit = "Resq::ResourceLimit"
	// ExceptionChildCrashed: a ChildProcess handler's child died mid-job,
	// or could not be started.
	ExceptionChildCrashed = "Resq::ChildCrashed"
)

// InChildProcess reports whether this process is a resq child started to
// run ChildProcess handlers. Guard side effects in main with it: the child
// runs main again up to Worker.Run.
func InChildProcess() bool { return isolate.InChild() }

// isolation is a running Worker's child-process machinery.
type isolation struct {
	sandbox *isolate.Sandbox
	slots   int // the worker's concurrency: no pool grows beyond it
	warm    int // children kept started ahead of need, per pool
	mu      sync.Mutex
	pools   map[ChildLimits]*childPool // one per set of limits in use
	closed  bool
	closing sync.WaitGroup // children being started or closed in the background
}

// How the warm children of a pool are shared by the slots.
const (
	// childPipelineDepth is how many jobs a child is sent at most: the one
	// it runs and those waiting in its pipe to run next.
	childPipelineDepth = 4
	// childQueueWait is how long a job waits in a child's pipe behind
	// another before it is withdrawn and sent to a child with room.
	childQueueWait = 5 * time.Millisecond
	// childGrowAfter: when jobs wait for room, no job has ended for this
	// long (the children run long jobs) and no child is starting, the pool
	// doubles, up to one child per slot. Short jobs end far more often, so
	// the pool stays at about one child per core and each child stays busy
	// and awake.
	childGrowAfter = 20 * time.Millisecond
)

// childPool is the warm children for one set of limits, shared by all the
// worker's slots. A child runs one job at a time, as one per slot did; the
// jobs of several slots take turns in it, the next ones waiting in its pipe
// (isolate.Child.Call). New jobs go to the first child with room, so that
// the few children that ran the last jobs run the next ones and the others
// sleep.
type childPool struct {
	iso      *isolation
	w        *Worker
	limits   ChildLimits
	children []*isolate.Child // under iso.mu, in the order they started
	waiters  []chan struct{}  // jobs waiting for room, first come first
	starting int
	lastEnd  time.Time // when a job of the pool last ended
	startErr error     // why the last start failed, if it did
}

// pool returns the pool for lim, making it (and starting its warm
// children) the first time.
func (iso *isolation) pool(w *Worker, lim ChildLimits, slotID string) *childPool {
	iso.mu.Lock()
	defer iso.mu.Unlock()
	p := iso.pools[lim]
	if p == nil {
		p = &childPool{iso: iso, w: w, limits: lim, lastEnd: time.Now()}
		iso.pools[lim] = p
		if !iso.closed {
			for range iso.warm {
				p.startLocked(slotID)
			}
		}
	}
	return p
}

// startLocked starts one more child in the background.
func (p *childPool) startLocked(slotID string) {
	p.starting++
	p.iso.closing.Add(1)
	go func() {
		defer p.iso.closing.Done()
		c, err := p.iso.sandbox.StartChild(isolate.ChildCommand{
			Args: os.Args, Env: childEnviron(slotID), Limits: p.limits.isolateLimits(),
			MaxOutput: p.limits.MaxOutput, OutputKill: p.limits.outputKill(), KillGrace: p.limits.KillGrace,
			StartTimeout: childStartTimeout,
		})
		if err != nil {
			p.w.logger.Warn("a child process could not start", "worker", slotID, "error", err)
		}
		p.iso.mu.Lock()
		defer p.iso.mu.Unlock()
		p.starting--
		p.startErr = err
		if err == nil {
			if p.iso.closed {
				p.iso.closeLater(c)
				return
			}
			p.children = append(p.children, c)
		}
		p.wakeLocked()
	}()
}

// wakeLocked lets the first waiting job look for room again.
func (p *childPool) wakeLocked() {
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		ch <- struct{}{}
	}
}

// pickLocked returns the first child that is idle or runs one job that
// started less than childQueueWait ago (it goes on to this one without
// sleeping), or else the first idle one, or else the one with the fewest
// jobs below the pipeline depth whose running job is that recent;
// idleOnly: an idle one only. It retires children that are dead
// or have run MaxJobs jobs; a replacement starts when the pool fell below
// its warm size or jobs wait.
func (p *childPool) pickLocked(slotID string, idleOnly bool) *isolate.Child {
	var idle, room *isolate.Child
	roomN := childPipelineDepth
	for i := 0; i < len(p.children); i++ {
		c := p.children[i]
		n, running := c.Load()
		if c.Dead() || c.Jobs() >= p.limits.MaxJobs {
			if n == 0 || c.Dead() {
				p.children = slices.Delete(p.children, i, i+1)
				i--
				p.iso.closeLater(c)
				if len(p.children)+p.starting < p.iso.warm || len(p.waiters) >= p.starting {
					p.startLocked(slotID)
				}
			}
			continue
		}
		switch {
		case idleOnly:
			if n == 0 {
				return c
			}
		case n <= 1 && running < childQueueWait:
			return c // idle, or going on to this job right after its short one
		case idle == nil && n == 0:
			idle = c
		case n < roomN && running < childQueueWait:
			room, roomN = c, n
		}
	}
	if idle != nil {
		return idle
	}
	return room
}

// get returns a child with room for the job of slot slotID, waiting for
// one, and growing the pool while its children are all held by long jobs.
//
// With idleOnly, only a child with no job will do (the job was withdrawn
// from behind a long one).
func (p *childPool) get(ctx context.Context, slotID string, idleOnly bool) (*isolate.Child, error) {
	iso := p.iso
	var grow *time.Ticker
	defer func() {
		if grow != nil {
			grow.Stop()
		}
	}()
	for {
		iso.mu.Lock()
		if iso.closed {
			iso.mu.Unlock()
			return nil, errors.New("the worker is stopping")
		}
		if c := p.pickLocked(slotID, idleOnly); c != nil {
			if grow != nil {
				p.wakeLocked() // woken and served: the next waiter may find room too
			}
			iso.mu.Unlock()
			return c, nil
		}
		if len(p.children)+p.starting == 0 {
			if err := p.startErr; err != nil && grow != nil {
				p.startErr = nil // the next job tries again
				iso.mu.Unlock()
				return nil, err
			}
			p.startLocked(slotID) // nothing would come free
		}
		wake := make(chan struct{}, 1)
		p.waiters = append(p.waiters, wake)
		iso.mu.Unlock()
		if grow == nil {
			grow = time.NewTicker(childGrowAfter)
		}
	wait:
		for {
			select {
			case <-wake:
				break wait
			case <-grow.C:
				iso.mu.Lock()
				if time.Since(p.lastEnd) >= childGrowAfter && p.starting == 0 && !iso.closed {
					// Double the pool, within the slots and the jobs waiting.
					for n := min(max(len(p.children), 1), len(p.waiters), iso.slots-len(p.children)); n > 0; n-- {
						p.startLocked(slotID)
					}
				}
				iso.mu.Unlock()
			case <-ctx.Done():
				iso.mu.Lock()
				if i := slices.Index(p.waiters, wake); i >= 0 {
					p.waiters = slices.Delete(p.waiters, i, i+1)
				} else {
					p.wakeLocked() // it was this job's turn: pass it on
				}
				iso.mu.Unlock()
				return nil, ctx.Err()
			}
		}
	}
}

// ended records that a job of the pool ended, so that a waiting job can
// take its place.
func (p *childPool) ended() {
	p.iso.mu.Lock()
	defer p.iso.mu.Unlock()
	p.lastEnd = time.Now()
	p.wakeLocked()
}

// closeLater closes a child without making the slot wait; stop waits for it.
func (iso *isolation) closeLater(c *isolate.Child) {
	iso.closing.Add(1)
	go func() {
		defer iso.closing.Done()
		c.Close()
	}()
}

// stop closes every child and waits for those being started or closed;
// the slots are done, so no job runs.
func (iso *isolation) stop() {
	iso.mu.Lock()
	iso.closed = true
	for _, p := range iso.pools {
		for _, c := range p.children {
			iso.closeLater(c)
		}
		p.children = nil
		for _, ch := range p.waiters {
			ch <- struct{}{}
		}
		p.waiters = nil
	}
	iso.mu.Unlock()
	iso.closing.Wait()
}

// startLimits prepares what Run needs for isolated handlers, limited
// commands and class concurrency caps: it probes the host (once), checks
// that every limit can be enforced, logs how, and starts the warm children
// of the first ChildProcess class. Called by Run under w.mu.
func (w *Worker) startLimits() error {
	var isolated []*handlerEntry
	var first *handlerEntry // the first ChildProcess class, whose limits the first children get
	commands := false
	for _, h := range w.handlers {
		commands = commands || h.command
		if h.opts.Isolation == ChildProcess && (first == nil || h.class < first.class) {
			first = h
		}
		if h.opts.Isolation == ChildProcess || (h.command && !h.opts.Limits.isolateLimits().IsZero()) {
			isolated = append(isolated, h)
		}
	}
	if len(isolated) > 0 {
		caps := isolate.Probe()
		for _, h := range isolated {
			if err := caps.Check(h.opts.Limits.isolateLimits()); err != nil {
				return fmt.Errorf("resq: class %s: %w", h.class, err)
			}
		}
		w.iso = &isolation{sandbox: isolate.NewSandbox(caps), slots: len(w.ids),
			warm: min(len(w.ids), runtime.GOMAXPROCS(0)), pools: map[ChildLimits]*childPool{}}
		caps = w.iso.sandbox.Capabilities()
		for _, h := range isolated {
			mode := "child process"
			if h.command {
				mode = "command"
			}
			w.logger.Info("job isolation", "class", h.class, "mode", mode,
				"limits", h.opts.Limits.isolateLimits().String(), "enforced_by", caps.Describe(h.opts.Limits.isolateLimits()))
		}
		if first != nil {
			w.iso.pool(w, first.opts.Limits.withDefaults(), w.ids[0])
		}
	} else if commands {
		// No limits to probe for, but a sandbox all the same: its keeper
		// ends the commands' processes if this process dies.
		w.iso = &isolation{sandbox: isolate.NewSandbox(isolate.Capabilities{}), pools: map[ChildLimits]*childPool{}}
	}
	return w.startLeases()
}

// stopLimits stops warm children and lease renewals; Run calls it when its
// slots are done.
func (w *Worker) stopLimits() {
	w.stopLeases()
	if w.iso == nil {
		return
	}
	w.iso.stop()
	_ = w.iso.sandbox.Close()
}

// baseHandler is what the middleware chain of h wraps: h's own function,
// or for a ChildProcess handler, the call into a warm child.
func (w *Worker) baseHandler(h *handlerEntry) HandlerFunc {
	if h.opts.Isolation != ChildProcess || w.iso == nil {
		return h.fn
	}
	return func(ctx context.Context, job *Job) error { return w.runInChild(ctx, job, h) }
}

// runInChild runs job in a warm child of the pool for h's limits. A job
// that did not start (its child had died, or the job was withdrawn from
// behind a long one) goes to another child.
func (w *Worker) runInChild(ctx context.Context, job *Job, h *handlerEntry) error {
	lim := h.opts.Limits.withDefaults()
	p := w.iso.pool(w, lim, job.WorkerID)
	stated := h.opts.Timeout
	if stated <= 0 {
		stated = w.cfg.JobTimeout
	}
	req := &isolate.Request{Class: job.Class, Queue: job.Queue, ID: job.ID, WorkerID: job.WorkerID,
		EnqueuedAt: unixNano(job.EnqueuedAt), StartedAt: unixNano(job.StartedAt),
		Encrypted: job.Encrypted, Signed: job.Signed, Args: job.Args}
	idleOnly := false
	for gone := 0; ; {
		c, err := p.get(ctx, job.WorkerID, idleOnly)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &JobError{Name: ExceptionChildCrashed, Err: fmt.Errorf("the child process for %s could not start; the job was not run: %w", job.Class, err)}
		}
		resp, err := c.Call(ctx, req, stated, childQueueWait)
		p.ended()
		if errors.Is(err, isolate.ErrChildGone) && ctx.Err() == nil {
			if !c.Dead() {
				idleOnly = true // withdrawn from behind a long job: wait for a free child
				continue
			}
			if gone++; gone < 3 {
				continue // its child died before it started
			}
		}
		return childOutcome(resp, err)
	}
}

// childOutcome turns a child's answer into the handler's error.
func childOutcome(resp *isolate.Response, err error) error {
	var le *isolate.LimitError
	var ce *isolate.ChildExitError
	switch {
	case errors.As(err, &le) && le.Limit == isolate.LimitTimeout:
		return &JobError{Name: ExceptionTimeout, Err: le}
	case errors.As(err, &le):
		return &JobError{Name: ExceptionResourceLimit, Err: le}
	case errors.As(err, &ce):
		return &JobError{Name: ExceptionChildCrashed, Err: ce, Backtrace: tailLines(ce.Output, 20)}
	case err != nil:
		return err // the job's context ended: a fast stop
	}
	switch resp.Status {
	case isolate.StatusOK:
		return nil
	case isolate.StatusSkipped:
		return ErrDontPerform
	default:
		return &JobError{Name: resp.Exception, Err: errors.New(resp.Message), Backtrace: resp.Backtrace}
	}
}

// childEnviron is a child's environment: the worker's, without Redis
// credentials and resq settings (REDIS*, RESQ_*), plus the id of the slot
// it was started for (so that an operator, or a test, can find a worker's
// children; a child serves every slot).
func childEnviron(slotID string) []string {
	env := []string{"RESQ_ISOLATE_WORKER=" + slotID}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REDIS") || strings.HasPrefix(kv, "RESQ_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// serveChild is Run in a child process: it serves jobs from the worker's
// pipe until the worker closes it, then exits the process. Jobs are read
// and run on this goroutine, one at a time.
func (w *Worker) serveChild() error {
	conn, err := isolate.OpenChildConn()
	if err != nil {
		return fmt.Errorf("resq: child mode: %w", err)
	}
	if err := conn.Ready(); err != nil {
		os.Exit(0) // the worker is gone
	}
	for {
		req, ctx, err := conn.Next()
		if err != nil {
			break // the worker closed the pipe, or is gone
		}
		if conn.Reply(req, w.runChildJob(ctx, req)) != nil {
			break
		}
	}
	os.Exit(0)
	return nil
}

// runChildJob runs one job in the child with the handler's own function (the
// worker runs the middleware).
func (w *Worker) runChildJob(ctx context.Context, req *isolate.Request) *isolate.Response {
	resp := &isolate.Response{Seq: req.Seq}
	h := w.handlers[req.Class]
	if h == nil {
		resp.Status, resp.Exception = isolate.StatusError, ExceptionUnknownClass
		resp.Message = fmt.Sprintf("class %q is not registered in the child process (main must register the same handlers before Worker.Run)", req.Class)
		return resp
	}
	job := &Job{ID: req.ID, Class: req.Class, Queue: req.Queue, Args: req.Args, WorkerID: req.WorkerID,
		Encrypted: req.Encrypted, Signed: req.Signed}
	if req.EnqueuedAt != 0 {
		job.EnqueuedAt = time.Unix(0, req.EnqueuedAt)
	}
	if req.StartedAt != 0 {
		job.StartedAt = time.Unix(0, req.StartedAt)
	}
	err := runProtected(ctx, h.fn, job)
	switch {
	case err == nil:
	case errors.Is(err, ErrDontPerform):
		resp.Status = isolate.StatusSkipped
	default:
		resp.Status, resp.Exception, resp.Message, resp.Backtrace = isolate.StatusError, exceptionName(err), err.Error(), backtraceOf(err)
	}
	return resp
}

// runCommand runs job as the external program c (HandleCommand) under c's
// limits, and turns the outcome into the handler's error.
func (w *Worker) runCommand(ctx context.Context, job *Job, c Command) error {
	lim := c.Limits.withDefaults()
	if c.MaxOutput > 0 {
		lim.MaxOutput = c.MaxOutput
	}
	stated := c.Timeout
	if stated <= 0 {
		stated = w.cfg.JobTimeout
	}
	timeout := c.Timeout
	if timeout <= 0 {
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
	}
	cmd := isolate.Command{
		Path: c.Path, Args: c.Args, Stdin: job.Args,
		Env:     []string{"RESQ_JOB_CLASS=" + job.Class, "RESQ_JOB_QUEUE=" + job.Queue, "RESQ_JOB_ID=" + job.ID, "RESQ_JOB_ATTEMPT=" + strconv.Itoa(job.Attempt)},
		Timeout: timeout, KillGrace: lim.KillGrace, MaxOutput: lim.MaxOutput, OutputKill: lim.outputKill(),
		Limits: lim.isolateLimits(),
	}
	var res isolate.Result
	var err error
	if w.iso != nil {
		res, err = w.iso.sandbox.Run(ctx, cmd)
	} else {
		res, err = isolate.Run(ctx, cmd)
	}
	status := fmt.Sprintf("exit status %d", res.ExitCode)
	if res.Signal != "" {
		status = "killed by signal " + res.Signal
	}
	truncated := ""
	if res.Dropped > 0 {
		truncated = fmt.Sprintf(" (output truncated: %d bytes beyond the last %s of each stream were discarded)", res.Dropped, isolate.FormatBytes(int64(lim.MaxOutput)))
	}
	var le *isolate.LimitError
	switch {
	case errors.As(err, &le) && le.Limit == isolate.LimitTimeout, errors.Is(err, context.DeadlineExceeded):
		return &JobError{Name: ExceptionTimeout, Err: fmt.Errorf("timeout after %s: %s killed%s", roundDur(stated), c.Path, truncated), Backtrace: tailLines(res.Stderr, 20)}
	case errors.As(err, &le):
		msg := fmt.Sprintf("%s (%s, %s)%s", le.Reason, c.Path, status, truncated)
		if tail := strings.TrimSpace(string(lastBytes(res.Stderr, 512))); tail != "" && le.Limit != isolate.LimitOutput {
			msg += ": " + tail
		}
		return &JobError{Name: ExceptionResourceLimit, Err: errors.New(msg), Backtrace: tailLines(res.Stderr, 20)}
	case err != nil:
		return &JobError{Name: ExceptionExecFailed, Err: err}
	case res.ExitCode != 0:
		msg := strings.TrimSpace(string(lastBytes(res.Stderr, 2048)))
		if msg == "" {
			msg = status + truncated
		} else {
			msg = status + truncated + ": " + msg
		}
		return &JobError{Name: ExceptionExecFailed, Err: &ExitError{Code: res.ExitCode, Msg: msg}, Backtrace: tailLines(res.Stderr, 20)}
	}
	return nil
}
