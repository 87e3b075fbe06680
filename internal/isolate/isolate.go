// Package isolate is the only resq package that starts processes or makes
// system calls: it runs --exec job commands as child processes in their own
// process group (never through a shell), kills them on timeout, keeps a
// bounded tail of their output, and answers whether a pid is alive.
package isolate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcessAlive reports whether a process with this pid exists on this host.
func ProcessAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Command describes one child process run.
type Command struct {
	Path  string   // executable; run directly, never through a shell
	Args  []string // arguments after the program name
	Env   []string // extra environment (KEY=VALUE), added to a minimal base
	Stdin []byte
	// Timeout is the wall-clock limit (0: none). On expiry the process group
	// gets SIGTERM, then SIGKILL after KillGrace.
	Timeout   time.Duration
	KillGrace time.Duration // default 2s
	// MaxOutput is how many bytes of stdout and of stderr are kept (the tail);
	// the rest is read and discarded. Default 64 KiB.
	MaxOutput int
}

// Result is what a finished child left behind.
type Result struct {
	ExitCode int    // -1 when killed by a signal
	Signal   string // the signal that ended it, if any
	Stdout   []byte // tail, at most MaxOutput bytes
	Stderr   []byte // tail, at most MaxOutput bytes
	Dropped  int64  // output bytes discarded beyond MaxOutput
	TimedOut bool
	Duration time.Duration
}

// ErrTimeout is wrapped by the error of a run that hit its timeout.
var ErrTimeout = errors.New("timeout")

// Run starts the command and waits for it. A non-zero exit is not an error;
// the error is for a process that could not start, a timeout, or ctx ending.
// Whatever happens, the whole process group is gone when Run returns.
func Run(ctx context.Context, c Command) (Result, error) {
	if c.KillGrace <= 0 {
		c.KillGrace = 2 * time.Second
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = 64 << 10
	}
	cmd := exec.Command(c.Path, c.Args...)
	cmd.Env = append(baseEnv(), c.Env...)
	cmd.Stdin = bytes.NewReader(c.Stdin)
	stdout := &tailBuffer{max: c.MaxOutput}
	stderr := &tailBuffer{max: c.MaxOutput}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Result{ExitCode: -1}, fmt.Errorf("start %s: %w", c.Path, err)
	}
	pgid := cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var timer <-chan time.Time
	if c.Timeout > 0 {
		t := time.NewTimer(c.Timeout)
		defer t.Stop()
		timer = t.C
	}
	var res Result
	var runErr error
	var waitErr error
	select {
	case waitErr = <-done:
	case <-timer:
		res.TimedOut = true
		runErr = fmt.Errorf("%w after %s", ErrTimeout, c.Timeout)
		waitErr = terminate(pgid, done, c.KillGrace)
	case <-ctx.Done():
		runErr = ctx.Err()
		waitErr = terminate(pgid, done, c.KillGrace)
	}
	// Children that outlived the leader are killed too.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	res.Duration = time.Since(start)
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	res.Dropped = stdout.dropped + stderr.dropped
	res.ExitCode = 0
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.ExitCode = -1
			res.Signal = ws.Signal().String()
		} else {
			res.ExitCode = ee.ExitCode()
		}
	} else if waitErr != nil && runErr == nil {
		runErr = waitErr
	}
	return res, runErr
}

// terminate sends SIGTERM to the group, then SIGKILL after grace.
func terminate(pgid int, done <-chan error, grace time.Duration) error {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
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

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.dropped += int64(len(t.buf) + len(p) - t.max)
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.dropped += int64(over)
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
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
// Resque-like command line (spec §4.15), so a resq worker needs it. It returns
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
