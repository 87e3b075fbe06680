package resq

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	// sent over a pipe and is reused for ChildLimits.MaxJobs jobs. A handler
	// that outlives its timeout, or hits a ChildLimits limit, is killed with
	// its whole process tree; the worker and its other jobs are unaffected.
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
	sandbox  *isolate.Sandbox
	children map[string]*slotChild // by slot worker id; fixed at start
	closing  sync.WaitGroup        // children being closed in the background
}

// closeLater closes a child (or a child still starting) without making the
// slot wait; stopLimits waits for it.
func (iso *isolation) closeLater(c *isolate.Child, p *pendingChild) {
	iso.closing.Add(1)
	go func() {
		defer iso.closing.Done()
		if p != nil {
			<-p.done
			c = p.child
		}
		if c != nil {
			c.Close()
		}
	}()
}

// slotChild is the warm child of one slot. A replacement is started in the
// background as soon as a child is gone (killed, crashed or recycled), so
// that its start-up is not charged to the next job's time limit.
type slotChild struct {
	mu      sync.Mutex
	child   *isolate.Child
	limits  ChildLimits
	pending *pendingChild // a start in progress
}

// pendingChild is a child being started in the background.
type pendingChild struct {
	done   chan struct{} // closed when child or err is set
	child  *isolate.Child
	err    error
	limits ChildLimits
}

// startLimits prepares what Run needs for isolated handlers, limited
// commands and class concurrency caps: it probes the host (once), checks
// that every limit can be enforced, logs how, and starts the slots' warm
// children. Called by Run under w.mu.
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
		w.iso = &isolation{sandbox: isolate.NewSandbox(caps), children: make(map[string]*slotChild, len(w.ids))}
		caps = w.iso.sandbox.Capabilities()
		for _, h := range isolated {
			mode := "child process"
			if h.command {
				mode = "command"
			}
			w.logger.Info("job isolation", "class", h.class, "mode", mode,
				"limits", h.opts.Limits.isolateLimits().String(), "enforced_by", caps.Describe(h.opts.Limits.isolateLimits()))
		}
		for _, id := range w.ids {
			sc := &slotChild{}
			if first != nil {
				sc.pending = w.startChild(id, first.opts.Limits.withDefaults())
			}
			w.iso.children[id] = sc
		}
	} else if commands {
		// No limits to probe for, but a sandbox all the same: its keeper
		// ends the commands' processes if this process dies.
		w.iso = &isolation{sandbox: isolate.NewSandbox(isolate.Capabilities{}), children: map[string]*slotChild{}}
	}
	return w.startLeases()
}

// startChild starts a warm child for slot id in the background.
func (w *Worker) startChild(id string, lim ChildLimits) *pendingChild {
	p := &pendingChild{done: make(chan struct{}), limits: lim}
	go func() {
		defer close(p.done)
		p.child, p.err = w.iso.sandbox.StartChild(isolate.ChildCommand{
			Args: os.Args, Env: childEnviron(id), Limits: lim.isolateLimits(),
			MaxOutput: lim.MaxOutput, OutputKill: lim.outputKill(), KillGrace: lim.KillGrace,
			StartTimeout: childStartTimeout,
		})
		if p.err != nil {
			w.logger.Warn("a child process could not start", "worker", id, "error", p.err)
		}
	}()
	return p
}

// stopLimits stops warm children and lease renewals; Run calls it when its
// slots are done.
func (w *Worker) stopLimits() {
	w.stopLeases()
	if w.iso == nil {
		return
	}
	var wg sync.WaitGroup
	for _, sc := range w.iso.children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc.mu.Lock()
			defer sc.mu.Unlock()
			if p := sc.pending; p != nil {
				<-p.done
				if p.child != nil {
					p.child.Close()
				}
				sc.pending = nil
			}
			if sc.child != nil {
				sc.child.Close()
				sc.child = nil
			}
		}()
	}
	wg.Wait()
	w.iso.closing.Wait()
	_ = w.iso.sandbox.Close()
}

// baseHandler is what the middleware chain of h wraps: h's own function,
// or for a ChildProcess handler, the call into the slot's warm child.
func (w *Worker) baseHandler(h *handlerEntry) HandlerFunc {
	if h.opts.Isolation != ChildProcess || w.iso == nil {
		return h.fn
	}
	return func(ctx context.Context, job *Job) error { return w.runInChild(ctx, job, h) }
}

// runInChild runs job in the warm child of its slot, taking over a child
// started in the background or starting one.
func (w *Worker) runInChild(ctx context.Context, job *Job, h *handlerEntry) error {
	sc := w.iso.children[job.WorkerID]
	if sc == nil {
		return &JobError{Name: ExceptionChildCrashed, Err: errors.New("no child-process slot for worker " + job.WorkerID)}
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	lim := h.opts.Limits.withDefaults()
	stated := h.opts.Timeout
	if stated <= 0 {
		stated = w.cfg.JobTimeout
	}
	req := &isolate.Request{Class: job.Class, Queue: job.Queue, ID: job.ID, WorkerID: job.WorkerID,
		EnqueuedAt: unixNano(job.EnqueuedAt), StartedAt: unixNano(job.StartedAt),
		Encrypted: job.Encrypted, Signed: job.Signed, Args: job.Args}
	for attempt := 0; ; attempt++ {
		if c := sc.child; c != nil && (c.Dead() || sc.limits != lim) {
			w.iso.closeLater(c, nil)
			sc.child = nil
		}
		if sc.child == nil {
			p := sc.pending
			if p == nil || p.limits != lim {
				if p != nil {
					w.iso.closeLater(nil, p) // started for other limits
				}
				p = w.startChild(job.WorkerID, lim)
			}
			sc.pending = nil
			select {
			case <-p.done:
			case <-ctx.Done():
				sc.pending = p // the next job takes it over
				return ctx.Err()
			}
			if p.err != nil {
				return &JobError{Name: ExceptionChildCrashed, Err: fmt.Errorf("the child process for %s could not start; the job was not run: %w", job.Class, p.err)}
			}
			sc.child, sc.limits = p.child, lim
		}
		resp, err := sc.child.Call(ctx, req, stated)
		if errors.Is(err, isolate.ErrChildGone) && attempt == 0 {
			continue // it died between jobs; the job did not start
		}
		if c := sc.child; c.Dead() || c.Jobs() >= lim.MaxJobs {
			// Replace it now, in the background, not when the next job waits.
			w.iso.closeLater(c, nil)
			sc.child = nil
			sc.pending = w.startChild(job.WorkerID, lim)
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
// credentials and resq settings (REDIS*, RESQ_*), plus the slot's id (so
// that an operator, or a test, can find a slot's child).
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
// and run on this goroutine; cancellations come on a pipe of their own.
func (w *Worker) serveChild() error {
	conn, err := isolate.OpenChildConn()
	if err != nil {
		return fmt.Errorf("resq: child mode: %w", err)
	}
	if err := conn.Ready(); err != nil {
		os.Exit(0) // the worker is gone
	}
	var cur struct {
		mu     sync.Mutex
		seq    uint64
		cancel context.CancelFunc
	}
	go func() {
		for {
			seq, err := conn.ReadCancel()
			if err != nil {
				return
			}
			cur.mu.Lock()
			if cur.seq == seq && cur.cancel != nil {
				cur.cancel()
			}
			cur.mu.Unlock()
		}
	}()
	for {
		req, err := conn.Read()
		if err != nil {
			break // the worker closed the pipe, or is gone
		}
		ctx, cancel := context.WithCancel(context.Background())
		if req.Timeout > 0 {
			ctx, cancel = context.WithTimeout(context.Background(), time.Duration(req.Timeout))
		}
		cur.mu.Lock()
		cur.seq, cur.cancel = req.Seq, cancel
		cur.mu.Unlock()
		resp := w.runChildJob(ctx, req)
		cancel()
		if conn.Reply(req, resp) != nil {
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
