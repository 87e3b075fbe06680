// Package isolate is the only resq package that starts processes and makes
// system calls for jobs: it runs --exec job commands as child processes in
// their own process group (never through a shell), under limits, kills them
// on timeout, keeps a bounded tail of their output, runs warm children for
// ChildProcess handlers, and answers whether a pid is alive. (cmd/resq uses
// the syscall package for signal numbers only.)
//
// Nothing here runs at import: a program that runs jobs under limits calls
// RunShimIfRequested first in main (see shim.go).
package isolate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ProcessAlive reports whether a process with this pid is running on this
// host. A zombie (exited, not yet reaped by its parent) is not: kill(pid, 0)
// succeeds on one, so the process state is read from /proc/<pid>/stat.
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if st, ok := processState(pid); ok && (st == 'Z' || st == 'X' || st == 'x') {
		return false
	}
	return true
}

// Command describes one child process run.
type Command struct {
	Path  string   // executable; run directly, never through a shell
	Args  []string // arguments after the program name
	Env   []string // extra environment (KEY=VALUE), added to a minimal base
	Stdin []byte
	// Timeout is the wall-clock limit (0: none). On expiry the process group
	// gets SIGTERM, then everything of the job SIGKILL after KillGrace.
	Timeout   time.Duration
	KillGrace time.Duration // default 2s
	// MaxOutput is how many bytes of stdout and of stderr are kept (the tail);
	// the rest is read and discarded. Default 64 KiB.
	MaxOutput int
	// OutputKill, when positive, kills the job once it has written more than
	// this many bytes to stdout and stderr together (an output flood costs
	// the worker CPU even when discarded).
	OutputKill int64
	// Limits are hard limits on the job's process tree.
	Limits Limits
}

// Result is what a finished child left behind.
type Result struct {
	ExitCode int    // -1 when killed by a signal
	Signal   string // the signal that ended it, if any
	Stdout   []byte // tail, at most MaxOutput bytes
	Stderr   []byte // tail, at most MaxOutput bytes
	Dropped  int64  // output bytes discarded beyond MaxOutput
	Written  int64  // output bytes written in total
	TimedOut bool
	// Stray is set when processes of the job were still running after its
	// main process exited; they were killed.
	Stray    bool
	CPU      time.Duration // CPU time of the main process
	Duration time.Duration
}

// ErrTimeout matches (errors.Is) the error of a run that hit its timeout.
var ErrTimeout = errors.New("timeout")

// Run starts the command without cgroups (rlimits, and a dedicated uid for a
// process limit when running as root) and waits for it; see Sandbox.Run.
// Unlike a Sandbox from NewSandbox it has no keeper: if this process dies
// while the command runs, the command's main process is killed (parent-death
// signal) but what it started is left to KillJobsOfDeadOwner.
func Run(ctx context.Context, c Command) (Result, error) {
	s := &Sandbox{caps: Capabilities{DedicatedUIDs: os.Geteuid() == 0, CgroupReason: "not probed"}, owner: ownerMark()}
	return s.Run(ctx, c)
}

// Run starts the command under its limits and waits for it. A non-zero exit
// is not an error; the error is for a process that could not start, a
// *LimitError for a limit or timeout that ended it (errors.Is(err,
// ErrTimeout) for a timeout), or ctx's error when ctx ended first. Whatever
// happens, every process of the job is gone when Run returns.
func (s *Sandbox) Run(ctx context.Context, c Command) (Result, error) {
	if c.KillGrace <= 0 {
		c.KillGrace = 2 * time.Second
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = 64 << 10
	}
	if err := c.Limits.Validate(); err != nil {
		return Result{ExitCode: -1}, err
	}
	if !strings.Contains(c.Path, "/") {
		p, err := exec.LookPath(c.Path)
		if err != nil {
			return Result{ExitCode: -1}, fmt.Errorf("start %s: %w", c.Path, err)
		}
		c.Path = p
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	inR, inW, err1 := pipe()
	outR, outW, err2 := pipe()
	errR, errW, err3 := pipe()
	if err := errors.Join(err1, err2, err3); err != nil {
		closeAll()
		return Result{ExitCode: -1}, fmt.Errorf("start %s: %w", c.Path, err)
	}
	// The token finds the job's processes that escape both the process
	// group and the dedicated uid (see the copier timeout below).
	rawToken := randomToken()
	token := jobTokenEnv + "=" + rawToken
	cmd := &exec.Cmd{Env: append(append(baseEnv(), c.Env...), token), Stdin: inR, Stdout: outW, Stderr: errW}
	if s.owner != "" {
		cmd.Env = append(cmd.Env, s.owner)
	}
	t, err := s.prepare(cmd, "job", c.Path, append([]string{c.Path}, c.Args...), c.Limits)
	if err != nil {
		closeAll()
		return Result{ExitCode: -1}, fmt.Errorf("start %s: %w", c.Path, err)
	}
	t.token = rawToken
	start := time.Now()
	err = t.start(cmd)
	inR.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		closeAll()
		t.release()
		return Result{ExitCode: -1}, fmt.Errorf("start %s: %w", c.Path, err)
	}

	meter := newOutputMeter(c.OutputKill, c.Limits.Procs > 0)
	stdout := &tailBuffer{max: c.MaxOutput, meter: meter}
	stderr := &tailBuffer{max: c.MaxOutput, meter: meter, watchProcs: c.Limits.Procs > 0}
	var copiers sync.WaitGroup
	copiers.Add(2)
	go func() { defer copiers.Done(); s.copyOutput(stdout, outR) }()
	go func() { defer copiers.Done(); s.copyOutput(stderr, errR) }()
	// A program that does not read its stdin gets EPIPE here, or a write
	// blocked until it exits; either is fine. Up to PIPE_BUF bytes always
	// fit in the empty pipe, so a small job's args are written here,
	// without a goroutine.
	if len(c.Stdin) <= stdinInline {
		_, _ = inW.Write(c.Stdin)
		inW.Close()
	} else {
		go func() {
			_, _ = inW.Write(c.Stdin)
			inW.Close()
		}()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var timer <-chan time.Time
	if c.Timeout > 0 {
		tm := time.NewTimer(c.Timeout)
		defer tm.Stop()
		timer = tm.C
	}
	var poll <-chan time.Time
	if t.cg != nil {
		tk := time.NewTicker(50 * time.Millisecond)
		defer tk.Stop()
		poll = tk.C
	}
	var res Result
	var lim *LimitError
	var runErr, waitErr error
wait:
	for {
		select {
		case waitErr = <-done:
			break wait
		case <-timer:
			res.TimedOut = true
			lim = &LimitError{Limit: LimitTimeout, Reason: "timeout after " + c.Timeout.String()}
			waitErr = terminate(t, done, c.KillGrace)
			break wait
		case <-ctx.Done():
			runErr = ctx.Err()
			waitErr = terminate(t, done, c.KillGrace)
			break wait
		case <-meter.flood:
			lim = outputReason(c.OutputKill)
			t.kill()
			waitErr = <-done
			break wait
		case <-meter.procs:
			lim = procsReason(c.Limits)
			lim.Reason += ": fork failed; the job was killed"
			t.kill()
			waitErr = <-done
			break wait
		case <-poll:
			if l := c.Limits; l.CPUTime > 0 && t.cg.cpu() > l.CPUTime {
				lim = cpuReason(l)
			} else if e := t.cg.exceeded(l); e != nil && l.Procs > 0 && e.Limit == LimitProcs {
				lim = e
				lim.Reason += ": fork failed; the job was killed"
			}
			if lim != nil {
				t.kill()
				waitErr = <-done
				break wait
			}
		}
	}
	res.Stray = t.leftovers()
	t.kill()
	copied := make(chan struct{})
	go func() { copiers.Wait(); close(copied) }()
	select {
	case <-copied:
	case <-time.After(time.Second):
		// A process that escaped the process group (setsid) still holds the
		// pipes: find it by the job's token, the slow way.
		res.Stray = true
		KillProcessesWithEnv(token)
		outR.Close()
		errR.Close()
		<-copied
	}
	closeAll()
	if t.cg != nil && lim == nil && runErr == nil {
		lim = t.cg.exceeded(c.Limits)
	}
	t.release()

	res.Duration = time.Since(start)
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	res.Dropped = stdout.dropped + stderr.dropped
	res.Written = meter.total.Load()
	var ee *exec.ExitError
	switch {
	case errors.As(waitErr, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = -1
			res.Signal = ws.Signal().String()
		} else {
			res.ExitCode = ee.ExitCode()
		}
	case waitErr != nil && runErr == nil:
		runErr = waitErr
	}
	if ps := cmd.ProcessState; ps != nil {
		res.CPU = ps.UserTime() + ps.SystemTime()
	}
	if runErr != nil {
		return res, runErr
	}
	if lim == nil {
		lim = classify(c.Limits, res, meter.seen.Load())
	} else if lim.Limit == LimitTimeout {
		// A more specific cause seen on the way (a fork that failed, say).
		if more := limitFromOutput(c.Limits, meter.seen.Load()); more != nil {
			more.Reason += "; the job was killed at its " + c.Timeout.String() + " timeout"
			lim = more
		}
	}
	if lim != nil {
		return res, lim
	}
	return res, nil
}

// stdinInline is PIPE_BUF: a write of at most this many bytes to an empty
// pipe never blocks.
const stdinInline = 4096

// copyOutput reads a job's output stream into w until it closes, with a
// buffer reused across jobs (io.Copy would allocate 32 KiB per stream and
// job).
func (s *Sandbox) copyOutput(w io.Writer, r *os.File) {
	bp, _ := s.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 16<<10)
		bp = &b
	}
	// Hiding r's WriteTo makes CopyBuffer use the buffer.
	_, _ = io.CopyBuffer(w, struct{ io.Reader }{r}, *bp)
	s.bufs.Put(bp)
}

// classify names the limit behind a run that ended on its own.
func classify(l Limits, res Result, seen uint32) *LimitError {
	failed := res.ExitCode != 0
	switch {
	case l.CPUTime > 0 && (res.Signal == syscall.SIGXCPU.String() ||
		(res.Signal == syscall.SIGKILL.String() && res.CPU >= l.CPUTime)):
		return cpuReason(l)
	case failed:
		if e := limitFromOutput(l, seen); e != nil {
			return e
		}
	}
	if res.Stray {
		if e := limitFromOutput(l, seen); e != nil && e.Limit == LimitProcs {
			e.Reason += ": fork failed; the job's processes were killed"
			return e
		}
		reason := "the program exited but left processes running; they were killed (a job must wait for the processes it starts)"
		if l.Procs > 0 {
			reason = "the program exited but left processes running (process limit " + strconv.Itoa(l.Procs) + "); they were killed (a job must wait for the processes it starts)"
		}
		return &LimitError{Limit: LimitStray, Reason: reason}
	}
	return nil
}

// jobTokenEnv names the environment variable that carries a job's random
// token into its processes.
const jobTokenEnv = "RESQ_ISOLATE_JOB"

func randomToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// terminate sends SIGTERM to the group, then kills the job after grace.
func terminate(t *tree, done <-chan error, grace time.Duration) error {
	t.signalGroup(syscall.SIGTERM)
	tm := time.NewTimer(grace)
	defer tm.Stop()
	select {
	case err := <-done:
		return err
	case <-tm.C:
		t.kill()
		return <-done
	}
}

// baseEnv is the environment a child starts from: enough to find programs,
// nothing of the worker's secrets (REDIS_URL, keyrings).
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// outputMeter counts a job's output across stdout and stderr. It signals a
// flood on flood once total passes limit (when limit is set), and, when
// procs is not nil, a failed fork reported on stderr.
type outputMeter struct {
	onFlood   func()        // called (once per signal) when flood is signalled
	seen      atomic.Uint32 // markers of limits seen (seenMemory…)
	total     atomic.Int64
	limit     atomic.Int64 // 0: no flood limit
	flood     chan struct{}
	procs     chan struct{}
	procsOnce sync.Once
}

func newOutputMeter(kill int64, watchProcs bool) *outputMeter {
	m := &outputMeter{flood: make(chan struct{}, 1)}
	m.limit.Store(kill)
	if watchProcs {
		m.procs = make(chan struct{})
	}
	return m
}

func (m *outputMeter) add(n int) {
	t := m.total.Add(int64(n))
	if l := m.limit.Load(); l > 0 && t > l {
		select {
		case m.flood <- struct{}{}:
			if m.onFlood != nil {
				m.onFlood()
			}
		default:
		}
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu         sync.Mutex
	max        int
	buf        []byte
	dropped    int64
	meter      *outputMeter
	watchProcs bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if t.meter != nil {
		t.meter.add(n)
	}
	if len(p) >= t.max {
		t.dropped += int64(len(t.buf) + len(p) - t.max)
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
	} else {
		if over := len(t.buf) + len(p) - t.max; over > 0 {
			t.dropped += int64(over)
			t.buf = append(t.buf[:0], t.buf[over:]...)
		}
		t.buf = append(t.buf, p...)
	}
	if t.meter != nil {
		// Look at what was just written plus enough before it for a marker
		// split across writes.
		recent := t.buf[max(0, len(t.buf)-n-64):]
		if bits := markersIn(recent); bits != 0 {
			t.meter.seen.Or(bits)
		}
		if t.watchProcs && t.meter.procs != nil {
			for _, m := range forkFailureMarkers {
				if bytes.Contains(recent, []byte(m)) {
					t.meter.procsOnce.Do(func() { close(t.meter.procs) })
					break
				}
			}
		}
	}
	return n, nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}

var _ io.Writer = (*tailBuffer)(nil)

// EnsureProcessTitle makes this process's command line contain marker (for
// example "resque-3.0.0:resq-work") by re-executing the same binary in place
// with argv[0] replaced. The pid does not change. Ruby Resque workers on the
// same host prune registered workers whose pid is not a process with a
// Resque-like command line (docs/protocol.md §4.15), so a resq worker needs it. It returns
// nil without doing anything when argv[0] already contains marker.
func EnsureProcessTitle(marker string) error {
	if len(os.Args) > 0 && strings.Contains(os.Args[0], marker) {
		return nil
	}
	if os.Getenv("RESQ_TITLE_REEXEC") == "1" {
		return errors.New("process title re-exec did not take effect")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	argv := append([]string{marker}, os.Args[1:]...)
	env := append(os.Environ(), "RESQ_TITLE_REEXEC=1")
	return syscall.Exec(self, argv, env)
}

// Process is a started child that the caller signals and waits for (used by
// the CLI's end-to-end tests and the demo).
type Process struct {
	cmd    *exec.Cmd
	stdout *tailBuffer
	stderr *tailBuffer
	done   chan struct{}
	err    error
}

// Start starts c without waiting. Env is added to the full environment of
// this process (unlike Run, which starts from a minimal one). Output tails
// are kept as in Run.
func Start(c Command) (*Process, error) {
	if c.MaxOutput <= 0 {
		c.MaxOutput = 1 << 20
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.Stdin = bytes.NewReader(c.Stdin)
	p := &Process{cmd: cmd, stdout: &tailBuffer{max: c.MaxOutput}, stderr: &tailBuffer{max: c.MaxOutput}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the child's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the child has exited (and was reaped).
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig ("QUIT", "TERM", "INT", "KILL", "USR2", "CONT") to the
// child.
func (p *Process) Signal(sig string) error {
	s, ok := map[string]syscall.Signal{"QUIT": syscall.SIGQUIT, "TERM": syscall.SIGTERM, "INT": syscall.SIGINT,
		"KILL": syscall.SIGKILL, "USR2": syscall.SIGUSR2, "CONT": syscall.SIGCONT}[sig]
	if !ok {
		return fmt.Errorf("unknown signal %q", sig)
	}
	return p.cmd.Process.Signal(s)
}

// Wait waits up to d for the child to exit and returns its exit code (-1
// if killed by a signal), or an error on timeout.
func (p *Process) Wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(d):
		return 0, fmt.Errorf("process %d still running after %s", p.Pid(), d)
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// Kill kills the child's whole process group and waits for it.
func (p *Process) Kill() {
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Output returns the tails of stdout and stderr so far.
func (p *Process) Output() (stdout, stderr []byte) { return p.stdout.Bytes(), p.stderr.Bytes() }
