package isolate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// childEnv marks a process started by StartChild; the child side
// (OpenChildConn) checks it together with its fds 3 and 4.
const childEnv = "RESQ_ISOLATE_CHILD"

// ChildCommand describes a warm child: a long-lived process, usually this
// very binary, that runs one job at a time sent over a pipe.
type ChildCommand struct {
	// Path of the program. Default /proc/self/exe (this binary, even if the
	// file was replaced since it started).
	Path string
	// Args is the whole argv, argv[0] included.
	Args []string
	// Env is the child's whole environment (the child marker is added).
	Env []string
	// Limits: Memory, Procs and Files bound the child process (tree) for
	// its whole life; CPUTime bounds each job's CPU time (the child's CPU
	// time is read from /proc while a job runs longer than 100 ms).
	Limits Limits
	// MaxOutput is how many bytes of the child's stdout and stderr (one
	// stream) are kept. Default 64 KiB.
	MaxOutput int
	// OutputKill, when positive, kills the child when one job makes it
	// write more than this many bytes.
	OutputKill int64
	// KillGrace is how long a job may take to return after its context is
	// cancelled (or its time is up) before the child is killed. Default 2 s.
	KillGrace time.Duration
	// StartTimeout is how long the child may take to become ready.
	// Default 30 s.
	StartTimeout time.Duration
}

// ErrChildGone is returned by Call when the child had exited before the job
// was sent: the job did not start, and can be sent to a new child.
var ErrChildGone = errors.New("the child process is not running")

// ChildExitError is returned by Call when the child died while running the
// job, and by StartChild when it died before it was ready.
type ChildExitError struct {
	Status string // "exit status 2", "signal: killed"
	Output []byte // the tail of the child's stdout and stderr
}

func (e *ChildExitError) Error() string {
	msg := "the child process died (" + e.Status + ")"
	if tail := strings.TrimSpace(string(lastLines(e.Output, 5, 2048))); tail != "" {
		msg += ": " + tail
	}
	return msg
}

// Child is a running warm child. Call and Close must not be called
// concurrently.
type Child struct {
	c       ChildCommand
	cmd     *exec.Cmd
	t       *tree
	reqW    *os.File // the child's fd 3
	respR   *os.File // the child's fd 4
	cancelW *os.File // the child's fd 5
	buf     []byte   // response bytes read but not yet parsed
	rbuf    []byte
	exited  chan struct{} // closed when the process has been reaped
	outDone chan struct{} // closed when its output has been read to the end
	out     *tailBuffer
	meter   *outputMeter
	flooded atomic.Bool
	cpu     time.Duration // the child's CPU time at the end of its last job
	seq     uint64
	jobs    int
	dead    bool
}

// StartChild starts a warm child and waits until it is ready to serve.
func (s *Sandbox) StartChild(c ChildCommand) (*Child, error) {
	if c.Path == "" {
		c.Path = "/proc/self/exe"
	}
	if c.MaxOutput <= 0 {
		c.MaxOutput = 64 << 10
	}
	if c.KillGrace <= 0 {
		c.KillGrace = 2 * time.Second
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 30 * time.Second
	}
	if err := c.Limits.Validate(); err != nil {
		return nil, err
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for range 4 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, err
		}
		files = append(files, r, w)
	}
	reqR, reqW, respR, respW, cancelR, cancelW, outR, outW := files[0], files[1], files[2], files[3], files[4], files[5], files[6], files[7]
	token := randomToken()
	cmd := &exec.Cmd{
		Env:        append(append([]string(nil), c.Env...), childEnv+"=1", jobTokenEnv+"="+token),
		Stdout:     outW,
		Stderr:     outW,
		ExtraFiles: []*os.File{reqR, respW, cancelR}, // fds 3, 4, 5
	}
	if s.owner != "" {
		cmd.Env = append(cmd.Env, s.owner)
	}
	procLimits := c.Limits
	procLimits.CPUTime = 0 // per job, polled: an rlimit would count the child's whole life
	t, err := s.prepare(cmd, "child", c.Path, c.Args, procLimits)
	if err != nil {
		closeAll()
		return nil, err
	}
	t.token = token
	if err := t.start(cmd); err != nil {
		closeAll()
		t.release()
		return nil, fmt.Errorf("start child process: %w", err)
	}
	reqR.Close()
	respW.Close()
	cancelR.Close()
	outW.Close()
	ch := &Child{c: c, cmd: cmd, t: t, reqW: reqW, respR: respR, cancelW: cancelW,
		rbuf: make([]byte, 64<<10), exited: make(chan struct{}), outDone: make(chan struct{}), meter: newOutputMeter(0, false)}
	ch.meter.onFlood = func() {
		ch.flooded.Store(true)
		_ = ch.respR.SetReadDeadline(time.Now()) // wakes a Call waiting for the result
	}
	ch.out = &tailBuffer{max: c.MaxOutput, meter: ch.meter}
	go func() {
		_, _ = io.Copy(ch.out, outR)
		outR.Close()
		close(ch.outDone)
	}()
	go func() {
		_ = cmd.Wait()
		close(ch.exited)
	}()
	r, err := ch.next(time.Now().Add(c.StartTimeout))
	switch {
	case err == nil && r.ready:
		ch.cpu = time.Duration(r.CPU)
		return ch, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		ch.Close()
		return nil, fmt.Errorf("the child process did not become ready within %s (does main reach Worker.Run before doing anything else?): %s",
			c.StartTimeout, strings.TrimSpace(string(lastLines(ch.out.Bytes(), 5, 2048))))
	default:
		ch.kill()
		<-ch.exited
		err := ch.exitError()
		ch.Close()
		return nil, err
	}
}

// next reads the child's next message, waiting until deadline (zero: no
// deadline). os.ErrDeadlineExceeded means none came in time (or the read
// was woken); io.EOF, that the child is gone.
func (ch *Child) next(deadline time.Time) (*Response, error) {
	for {
		typ, body, rest, ok, err := splitFrame(ch.buf)
		if err != nil {
			return nil, err
		}
		if ok {
			r, err := parseResponse(typ, body)
			ch.buf = append(ch.buf[:0], rest...)
			return r, err
		}
		if err := ch.respR.SetReadDeadline(deadline); err != nil {
			return nil, err
		}
		n, err := ch.respR.Read(ch.rbuf)
		ch.buf = append(ch.buf, ch.rbuf[:n]...)
		if err != nil && n == 0 {
			return nil, err
		}
	}
}

// Pid returns the child's process id.
func (ch *Child) Pid() int { return ch.cmd.Process.Pid }

// Jobs returns how many jobs the child has been sent.
func (ch *Child) Jobs() int { return ch.jobs }

// Dead reports whether the child was killed or has exited; a dead child
// takes no more jobs.
func (ch *Child) Dead() bool {
	if ch.dead {
		return true
	}
	select {
	case <-ch.exited:
		ch.dead = true
	default:
	}
	return ch.dead
}

// Call sends a job and waits for its outcome. The job's time limit is ctx's
// deadline: the child's handler gets a context with that deadline, and if
// the handler has not returned KillGrace after it, the child is killed and
// Call returns a timeout *LimitError naming stated. When ctx is cancelled
// otherwise, the handler's context is cancelled too, and Call returns ctx's
// error (killing the child after KillGrace). A limit hit returns a
// *LimitError and a death mid-job a *ChildExitError; the child is dead after
// either. ErrChildGone means the job was never sent.
//
// The result is read on the calling goroutine; ctx's end, an output flood
// and the polls of CPU time wake the read through its deadline.
func (ch *Child) Call(ctx context.Context, req *Request, stated time.Duration) (*Response, error) {
	if ch.Dead() {
		return nil, ErrChildGone
	}
	ch.seq++
	ch.jobs++
	req.Seq = ch.seq
	req.ReportCPU = ch.c.Limits.CPUTime > 0
	if dl, ok := ctx.Deadline(); ok {
		req.Timeout = max(int64(time.Until(dl)), 1)
	}
	select {
	case <-ch.meter.flood: // from between jobs
	default:
	}
	ch.flooded.Store(false)
	ch.meter.seen.Store(0)
	if ch.c.OutputKill > 0 {
		ch.meter.limit.Store(ch.meter.total.Load() + ch.c.OutputKill)
	}
	if _, err := ch.reqW.Write(encodeRequest(req)); err != nil {
		ch.kill()
		return nil, ErrChildGone
	}
	stop := context.AfterFunc(ctx, func() { _ = ch.respR.SetReadDeadline(time.Now()) })
	defer stop()
	var nextPoll, graceEnd time.Time
	if ch.c.Limits.CPUTime > 0 {
		nextPoll = time.Now().Add(100 * time.Millisecond)
	}
	for {
		deadline := nextPoll
		if !graceEnd.IsZero() && (deadline.IsZero() || graceEnd.Before(deadline)) {
			deadline = graceEnd
		}
		// Checked after choosing the deadline and before reading: a wake-up
		// that comes later interrupts the read.
		if ctx.Err() != nil && graceEnd.IsZero() {
			_, _ = ch.cancelW.Write(encodeCancel(req.Seq))
			graceEnd = time.Now().Add(ch.c.KillGrace)
			continue
		}
		if ch.flooded.Load() {
			ch.kill()
			return nil, outputReason(ch.c.OutputKill)
		}
		r, err := ch.next(deadline)
		switch {
		case err == nil:
			if r.Seq != req.Seq || r.ready {
				continue // a cancelled job's late answer
			}
			if req.ReportCPU {
				ch.cpu = time.Duration(r.CPU)
			}
			return r, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			now := time.Now()
			if !graceEnd.IsZero() && !now.Before(graceEnd) {
				ch.kill()
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return nil, &LimitError{Limit: LimitTimeout, Reason: "timeout after " + stated.String() +
						": the handler did not return within " + ch.c.KillGrace.String() + " of its context's cancellation; its child process was killed"}
				}
				return nil, ctx.Err()
			}
			if !nextPoll.IsZero() && !now.Before(nextPoll) {
				used, err := cpuTimeOf(ch.Pid())
				if err == nil && used-ch.cpu > ch.c.Limits.CPUTime {
					ch.kill()
					return nil, cpuReason(ch.c.Limits)
				}
				nextPoll = now.Add(100 * time.Millisecond)
			}
		default: // EOF: the child is gone
			return nil, ch.diedMidJob()
		}
	}
}

// diedMidJob explains a child that died while running a job.
func (ch *Child) diedMidJob() error {
	ch.kill()
	<-ch.exited
	ch.drainOutput()
	if ch.t.cg != nil {
		if e := ch.t.cg.exceeded(ch.c.Limits); e != nil {
			return e
		}
	}
	if e := limitFromOutput(ch.c.Limits, ch.meter.seen.Load()); e != nil {
		return e
	}
	return ch.exitError()
}

// drainOutput waits until a dead child's last words (a runtime's "out of
// memory") have been read from its output pipe.
func (ch *Child) drainOutput() {
	select {
	case <-ch.outDone:
	case <-time.After(time.Second):
	}
}

func (ch *Child) exitError() error {
	ch.drainOutput()
	status := "exited"
	if ps := ch.cmd.ProcessState; ps != nil {
		status = ps.String()
	}
	return &ChildExitError{Status: status, Output: ch.out.Bytes()}
}

// Output returns the tail of the child's stdout and stderr.
func (ch *Child) Output() []byte { return ch.out.Bytes() }

// kill ends the child's whole tree at once.
func (ch *Child) kill() {
	if !ch.dead {
		ch.dead = true
		ch.t.kill()
	}
}

// Close stops the child: it exits when its request pipe closes; after
// KillGrace, or if it is dead already, its tree is killed. Its cgroup is
// removed.
func (ch *Child) Close() {
	ch.reqW.Close()
	ch.cancelW.Close()
	if !ch.dead {
		select {
		case <-ch.exited:
		case <-time.After(ch.c.KillGrace):
		}
	}
	ch.dead = true
	ch.t.kill()
	<-ch.exited
	ch.respR.Close()
	ch.t.release()
}

// lastLines returns at most n lines and max bytes from the end of b.
func lastLines(b []byte, n, maxBytes int) []byte {
	if len(b) > maxBytes {
		b = b[len(b)-maxBytes:]
	}
	s := strings.TrimRight(string(b), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return []byte(strings.Join(lines, "\n"))
}

// InChild reports whether this process was started as a warm child.
func InChild() bool { return os.Getenv(childEnv) == "1" }

// ChildConn is the child's side of the pipes to its worker.
type ChildConn struct {
	br     *bufio.Reader
	w      *os.File
	cancel *bufio.Reader
	mu     sync.Mutex
}

// OpenChildConn takes fds 3, 4 and 5 as the pipes from and to the worker.
// It fails when this process is not a warm child.
func OpenChildConn() (*ChildConn, error) {
	if !InChild() {
		return nil, errors.New("not a resq child process")
	}
	for _, fd := range []int{3, 4, 5} {
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFIFO {
			return nil, fmt.Errorf("resq child: fd %d is not a pipe from the worker", fd)
		}
		// Programs the handler starts must not inherit the job pipes.
		syscall.CloseOnExec(fd)
	}
	// Nor the marker.
	os.Unsetenv(childEnv)
	return &ChildConn{
		br:     bufio.NewReaderSize(os.NewFile(3, "resq-jobs"), 64<<10),
		w:      os.NewFile(4, "resq-results"),
		cancel: bufio.NewReader(os.NewFile(5, "resq-cancels")),
	}, nil
}

// Ready tells the worker that the child serves.
func (c *ChildConn) Ready() error { return c.write(&Response{ready: true, CPU: int64(SelfCPU())}) }

// Read returns the next job; io.EOF when the worker closed the pipe.
func (c *ChildConn) Read() (*Request, error) { return ReadRequest(c.br) }

// ReadCancel waits for the worker to cancel a job and returns the job's
// Seq; io.EOF when the worker closed the pipe. Call it from a goroutine of
// its own.
func (c *ChildConn) ReadCancel() (uint64, error) { return readCancel(c.cancel) }

// Reply sends the outcome of req.
func (c *ChildConn) Reply(req *Request, r *Response) error {
	if req.ReportCPU {
		r.CPU = int64(SelfCPU())
	}
	return c.write(r)
}

func (c *ChildConn) write(r *Response) error {
	b := encodeResponse(r)
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.w.Write(b)
	return err
}

// SelfCPU returns this process's user+system CPU time.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
