package isolate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// childEnv marks a process started by StartChild; the child side
// (OpenChildConn) checks it together with its fds 3 and 4.
const childEnv = "RESQ_ISOLATE_CHILD"

// ChildCommand describes a warm child: a long-lived process, usually this
// very binary, that runs one job at a time sent over a pipe (the next ones
// may wait in the pipe; see Child).
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

// ErrChildGone is returned by Call when the job was never started: the
// child had exited before it was sent, it died or was killed while the job
// waited behind another, or the job was withdrawn (Call's queued argument)
// before the child reached it. The job can be sent to another child.
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

// Child is a running warm child. It runs one job at a time, in the order
// the jobs were sent; Call may be called concurrently, and a job sent while
// another runs waits in the child's pipe (pipelining: the child goes from
// one job to the next without sleeping in between). Every limit stays per
// job: the running job is the oldest one not answered yet, its CPU time is
// counted from the previous job's answer, and a kill for its sake ends only
// it — the jobs waiting behind it had not started and get ErrChildGone.
type Child struct {
	c        ChildCommand
	cmd      *exec.Cmd
	t        *tree
	reqW     *os.File // the child's fd 3
	respR    *os.File // the child's fd 4
	cancelW  *os.File // the child's fd 5
	buf      []byte   // response bytes read but not yet parsed
	rbuf     []byte
	exited   chan struct{} // closed when the process has been reaped
	outDone  chan struct{} // closed when its output has been read to the end
	readDone chan struct{} // closed when the reader has delivered its last answer
	out      *tailBuffer
	meter    *outputMeter

	mu      sync.Mutex    // guards what follows, and orders writes to reqW
	pending []*childCall  // sent, not answered, oldest (the running job) first
	flooded bool          // the running job flooded its output; the child is killed
	gaveUp  bool          // the running job's Call killed the child and answered itself
	cpu     time.Duration // the child's CPU time at the end of its last job
	since   time.Time     // when the running job started (was sent, or the one before it answered)
	seq     uint64
	jobs    int
	dead    bool
}

// childCall is one job sent to a child.
type childCall struct {
	seq     uint64
	cpuTime bool             // the job is limited in CPU time
	done    chan childAnswer // buffered: the reader never waits
}

type childAnswer struct {
	resp *Response
	err  error
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
		rbuf: make([]byte, 64<<10), exited: make(chan struct{}), outDone: make(chan struct{}),
		readDone: make(chan struct{}), meter: newOutputMeter(0, false)}
	ch.meter.onFlood = func() {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		if len(ch.pending) > 0 && !ch.dead {
			ch.flooded = true
			ch.killLocked() // the reader then answers the running job
		}
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
		go ch.read()
		return ch, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		close(ch.readDone)
		ch.Close()
		return nil, fmt.Errorf("the child process did not become ready within %s (does main reach Worker.Run before doing anything else?): %s",
			c.StartTimeout, strings.TrimSpace(string(lastLines(ch.out.Bytes(), 5, 2048))))
	default:
		close(ch.readDone)
		ch.kill()
		<-ch.exited
		err := ch.exitError()
		ch.Close()
		return nil, err
	}
}

// next reads the child's next message, waiting until deadline (zero: no
// deadline). os.ErrDeadlineExceeded means none came in time; io.EOF, that
// the child is gone.
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

// read is the child's reader goroutine: it hands each answer to its job's
// Call and, when the child is gone, explains it to the running job and
// tells the jobs waiting behind it that they never started.
func (ch *Child) read() {
	defer close(ch.readDone)
	for {
		r, err := ch.next(time.Time{})
		if err != nil {
			break
		}
		ch.mu.Lock()
		i := slices.IndexFunc(ch.pending, func(c *childCall) bool { return c.seq == r.Seq })
		if i < 0 || r.ready {
			ch.mu.Unlock()
			continue // a job whose Call has given up (it killed the child)
		}
		c := ch.pending[i]
		ch.pending = slices.Delete(ch.pending, i, i+1)
		if r.Status == StatusWithdrawn {
			ch.mu.Unlock()
			c.done <- childAnswer{err: ErrChildGone}
			continue
		}
		if c.cpuTime {
			ch.cpu = time.Duration(r.CPU)
		}
		if i == 0 {
			ch.startedLocked() // the next job runs now
		}
		ch.mu.Unlock()
		c.done <- childAnswer{resp: r}
	}
	// The child closed its answers: it is dead or dying.
	ch.mu.Lock()
	ch.killLocked()
	ch.mu.Unlock()
	<-ch.exited
	ch.mu.Lock()
	pending, flooded, gaveUp := ch.pending, ch.flooded, ch.gaveUp
	ch.pending = nil
	ch.mu.Unlock()
	if gaveUp {
		// The running job has its answer; none of these started.
		for _, c := range pending {
			c.done <- childAnswer{err: ErrChildGone}
		}
		return
	}
	if len(pending) == 0 {
		return
	}
	var err error
	if flooded {
		err = outputReason(ch.c.OutputKill)
	} else {
		err = ch.diedMidJob()
	}
	pending[0].done <- childAnswer{err: err}
	for _, c := range pending[1:] {
		c.done <- childAnswer{err: ErrChildGone}
	}
}

// startedLocked resets the per-job output count for the job that runs now
// (the oldest pending one).
func (ch *Child) startedLocked() {
	if len(ch.pending) == 0 {
		return
	}
	ch.since = time.Now()
	ch.meter.seen.Store(0)
	if ch.c.OutputKill > 0 {
		ch.meter.limit.Store(ch.meter.total.Load() + ch.c.OutputKill)
	}
}

// Pid returns the child's process id.
func (ch *Child) Pid() int { return ch.cmd.Process.Pid }

// Jobs returns how many jobs the child has been sent.
func (ch *Child) Jobs() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.jobs
}

// Pending returns how many jobs the child has been sent and not answered:
// the running one and those waiting behind it.
func (ch *Child) Pending() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.pending)
}

// Load returns how many jobs the child has been sent and not answered,
// and for how long the oldest of them, the running one, has run.
func (ch *Child) Load() (pending int, running time.Duration) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(ch.pending) == 0 {
		return 0, 0
	}
	return len(ch.pending), time.Since(ch.since)
}

// Dead reports whether the child was killed or has exited; a dead child
// takes no more jobs.
func (ch *Child) Dead() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.deadLocked()
}

func (ch *Child) deadLocked() bool {
	if !ch.dead {
		select {
		case <-ch.exited:
			ch.dead = true
		default:
		}
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
// either.
//
// When the child is still running earlier jobs, the job waits in its pipe.
// If it has waited there longer than queued (when positive) and has not
// started, it is withdrawn and Call returns ErrChildGone, so that the
// caller can send it to another child instead of waiting behind a long
// job; ErrChildGone also means that the child was gone before the job
// started. A job waiting behind another whose ctx ends is withdrawn the
// same way, and Call returns ctx's error.
func (ch *Child) Call(ctx context.Context, req *Request, stated, queued time.Duration) (*Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // never sent
	}
	call := &childCall{done: make(chan childAnswer, 1), cpuTime: ch.c.Limits.CPUTime > 0}
	req.ReportCPU = call.cpuTime
	ch.mu.Lock()
	if ch.deadLocked() {
		ch.mu.Unlock()
		return nil, ErrChildGone
	}
	ch.seq++
	ch.jobs++
	req.Seq, call.seq = ch.seq, ch.seq
	if dl, ok := ctx.Deadline(); ok {
		req.Timeout = max(int64(time.Until(dl)), 1)
	}
	ch.pending = append(ch.pending, call)
	if len(ch.pending) == 1 {
		ch.startedLocked()
	}
	if _, err := ch.reqW.Write(encodeRequest(req)); err != nil {
		ch.removeLocked(call)
		ch.killLocked()
		ch.mu.Unlock()
		return nil, ErrChildGone
	}
	ch.mu.Unlock()

	var poll <-chan time.Time
	if call.cpuTime {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		poll = tk.C
	}
	var withdraw <-chan time.Time
	if queued > 0 {
		tm := time.NewTimer(queued)
		defer tm.Stop()
		withdraw = tm.C
	}
	var grace <-chan time.Time
	done := ctx.Done()
	// The child cancels the job, or withdraws it if it has not started
	// (withdrawOnly: only that).
	cancel := func(frame []byte) {
		ch.mu.Lock()
		if !ch.dead {
			_, _ = ch.cancelW.Write(frame)
		}
		ch.mu.Unlock()
	}
	for {
		select {
		case a := <-call.done:
			if errors.Is(a.err, ErrChildGone) && ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return a.resp, a.err
		case <-withdraw:
			withdraw = nil
			if !ch.isRunning(call) {
				cancel(encodeWithdraw(call.seq)) // the answer says whether it was in time
			}
		case <-done:
			done = nil
			cancel(encodeCancel(call.seq))
			tm := time.NewTimer(ch.c.KillGrace)
			defer tm.Stop()
			grace = tm.C
		case <-grace:
			if !ch.giveUp(call) {
				continue // answered just now
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, &LimitError{Limit: LimitTimeout, Reason: "timeout after " + stated.String() +
					": the handler did not return within " + ch.c.KillGrace.String() + " of its context's cancellation; its child process was killed"}
			}
			return nil, ctx.Err()
		case <-poll:
			ch.mu.Lock()
			running, base := !ch.dead && len(ch.pending) > 0 && ch.pending[0] == call, ch.cpu
			ch.mu.Unlock()
			if !running {
				continue
			}
			if used, err := cpuTimeOf(ch.Pid()); err == nil && used-base > ch.c.Limits.CPUTime && ch.giveUp(call) {
				return nil, cpuReason(ch.c.Limits)
			}
		}
	}
}

// isRunning reports whether call is the job the child runs now.
func (ch *Child) isRunning(call *childCall) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return len(ch.pending) > 0 && ch.pending[0] == call
}

// giveUp kills the child for call's sake, unless call has been answered;
// the jobs behind it get ErrChildGone from the reader.
func (ch *Child) giveUp(call *childCall) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	running := len(ch.pending) > 0 && ch.pending[0] == call
	if !ch.removeLocked(call) {
		return false
	}
	ch.gaveUp = ch.gaveUp || running
	ch.killLocked()
	return true
}

// removeLocked takes call off the pending list; false if it was not on it.
func (ch *Child) removeLocked(call *childCall) bool {
	i := slices.Index(ch.pending, call)
	if i < 0 {
		return false
	}
	ch.pending = slices.Delete(ch.pending, i, i+1)
	return true
}

// diedMidJob explains a child that died while running a job.
func (ch *Child) diedMidJob() error {
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
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.killLocked()
}

func (ch *Child) killLocked() {
	if !ch.dead {
		ch.dead = true
		ch.t.kill()
	}
}

// Close stops the child: it exits when its request pipe closes; after
// KillGrace, or if it is dead already, its tree is killed. Its cgroup is
// removed. No Call may be running.
func (ch *Child) Close() {
	ch.mu.Lock()
	ch.reqW.Close()
	ch.cancelW.Close()
	dead := ch.deadLocked()
	ch.mu.Unlock()
	if !dead {
		select {
		case <-ch.exited:
		case <-time.After(ch.c.KillGrace):
		}
	}
	ch.kill()
	ch.t.kill() // what the child started, even if the child itself has exited
	<-ch.exited
	<-ch.readDone
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
	mu     sync.Mutex // orders writes to w

	state     sync.Mutex
	read      uint64             // the Seq of the last job read
	cur       uint64             // the Seq of the running job, 0 for none
	curCancel context.CancelFunc // cancels the running job's context
	withdrawn map[uint64]bool    // jobs withdrawn before they were read
	cancels   sync.Once
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
		br:        bufio.NewReaderSize(os.NewFile(3, "resq-jobs"), 64<<10),
		w:         os.NewFile(4, "resq-results"),
		cancel:    bufio.NewReader(os.NewFile(5, "resq-cancels")),
		withdrawn: map[uint64]bool{},
	}, nil
}

// Ready tells the worker that the child serves.
func (c *ChildConn) Ready() error { return c.write(&Response{ready: true, CPU: int64(SelfCPU())}) }

// Next returns the next job to run, one at a time, and its context: it
// carries the job's deadline and is cancelled when the worker cancels the
// job. A job the worker withdrew before the child read it is skipped (the
// worker has its answer already). io.EOF when the worker closed the pipe.
// Answer each job with Reply before the next call.
func (c *ChildConn) Next() (*Request, context.Context, error) {
	c.cancels.Do(func() { go c.readCancels() })
	for {
		req, err := ReadRequest(c.br)
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		if req.Timeout > 0 {
			ctx, cancel = context.WithTimeout(context.Background(), time.Duration(req.Timeout))
		}
		c.state.Lock()
		c.read = req.Seq
		if c.withdrawn[req.Seq] {
			delete(c.withdrawn, req.Seq)
			c.state.Unlock()
			cancel()
			continue
		}
		c.cur, c.curCancel = req.Seq, cancel
		c.state.Unlock()
		return req, ctx, nil
	}
}

// readCancels serves the cancellation pipe: the running job's context is
// cancelled; a job not read yet is withdrawn, and the worker told so at
// once, so that it can run the job elsewhere.
func (c *ChildConn) readCancels() {
	for {
		seq, withdrawOnly, err := readCancel(c.cancel)
		if err != nil {
			return
		}
		c.state.Lock()
		switch {
		case seq == c.cur && c.curCancel != nil && !withdrawOnly:
			c.curCancel()
		case seq > c.read:
			c.withdrawn[seq] = true
			_ = c.write(&Response{Seq: seq, Status: StatusWithdrawn})
		}
		c.state.Unlock()
	}
}

// Reply sends the outcome of req, the job from Next, and releases its
// context.
func (c *ChildConn) Reply(req *Request, r *Response) error {
	c.state.Lock()
	if c.cur == req.Seq && c.curCancel != nil {
		c.curCancel()
		c.cur, c.curCancel = 0, nil
	}
	c.state.Unlock()
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
