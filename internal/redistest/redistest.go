// Package redistest runs private redis-server processes for tests.
//
// Every Server is a separate redis-server child process listening on a free
// loopback port (never 6379) with its own temporary directory, so tests in
// many packages can run in parallel without sharing state. The package uses
// only the standard library; Do speaks just enough RESP to run a command and
// render its reply as text.
//
// A Pool is an optional optimisation: one shared process per test binary that
// hands each test its own freshly flushed logical database.
package redistest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// readyTimeout bounds how long we wait for a started server to answer PING.
	readyTimeout = 10 * time.Second
	// stopTimeout bounds how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 10 * time.Second
	// startAttempts is how many fresh ports Start tries when binding fails.
	startAttempts = 8
	// logTailLines is how many log lines failure messages include.
	logTailLines = 40
)

// Options configures StartWith.
type Options struct {
	// AppendOnly turns on persistence (appendonly yes, appendfsync always)
	// in the server's private directory, so data survives Stop/Kill+Restart.
	AppendOnly bool
	// Args are extra redis-server arguments appended to the defaults, e.g.
	// []string{"--maxmemory", "10mb"}.
	Args []string
	// Password, when set, is the default user's password (requirepass);
	// Do, Try and the readiness checks authenticate with it.
	Password string

	// bin is the program to run (default redis-server); confText, when
	// set, is written to a config file in the server's directory on first
	// start and passed as the first argument (redis-sentinel needs one it
	// can rewrite; a restart keeps the rewritten file).
	bin      string
	confText string
}

// Server is a private redis-server process on a free loopback port.
type Server struct {
	opts Options
	bin  string
	dir  string
	port int
	db   int   // logical database for URL/Do (non-zero only for pooled handles)
	pool *Pool // non-nil for handles from Pool.Get: lifecycle methods refused

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	err  error         // cmd.Wait result, valid after done is closed
	log  *logBuffer
}

// Start starts a fresh redis-server with default options. It fails the test
// (never skips) if redis-server is not on PATH or does not come up, and
// registers a cleanup that kills the process and removes its directory.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is Start with options.
func StartWith(tb testing.TB, o Options) *Server {
	tb.Helper()
	s, err := launch(o)
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(s.destroy)
	return s
}

// launch creates the directory and starts the process, retrying on fresh
// ports when the chosen one turns out to be taken.
func launch(o Options) (*Server, error) {
	name, pkg := "redis-server", "redis-server"
	if o.bin != "" {
		name, pkg = o.bin, o.bin
	}
	bin, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s not found on PATH; install it (Debian: apt-get install -y %s) — tests need a real Redis", name, pkg)
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		return nil, fmt.Errorf("creating temp dir: %v", err)
	}
	s := &Server{opts: o, bin: bin, dir: dir, log: &logBuffer{}}
	var lastErr error
	for attempt := 0; attempt < startAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			lastErr = err
			continue
		}
		s.port = port
		err = s.spawn()
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	os.RemoveAll(dir)
	return nil, lastErr
}

// Addr returns "127.0.0.1:PORT".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL returns "redis://127.0.0.1:PORT/DB" (DB is 0 for servers from Start).
// With Options.Password the URL carries it: "redis://:PASSWORD@127.0.0.1:PORT/DB".
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/%d", url.QueryEscape(s.opts.Password), s.Addr(), s.db)
	}
	return fmt.Sprintf("redis://%s/%d", s.Addr(), s.db)
}

// Port returns the TCP port.
func (s *Server) Port() int { return s.port }

// DB returns the logical database this handle uses (0 unless pooled).
func (s *Server) DB() int { return s.db }

// Dir returns the server's private working directory.
func (s *Server) Dir() string { return s.dir }

// Log returns everything the server has logged so far (all runs).
func (s *Server) Log() string { return s.log.String() }

// PID returns the process id of the running server, or 0 if it is not running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.exited() {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool { return s.PID() != 0 }

// Stop sends SIGTERM and waits for the process to exit (SIGKILL after 10 s).
// With AppendOnly the AOF is flushed, so Restart sees all acknowledged writes.
// Stopping a stopped server is a no-op.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	s.refusePooled(tb, "Stop")
	if err := s.signalAndWait(syscall.SIGTERM, stopTimeout); err != nil {
		tb.Fatalf("redistest: stop %s: %v%s", s.Addr(), err, s.tail())
	}
}

// Kill sends SIGKILL and waits for the process to exit. Killing a stopped
// server is a no-op.
func (s *Server) Kill(tb testing.TB) {
	tb.Helper()
	s.refusePooled(tb, "Kill")
	if err := s.signalAndWait(syscall.SIGKILL, stopTimeout); err != nil {
		tb.Fatalf("redistest: kill %s: %v%s", s.Addr(), err, s.tail())
	}
}

// Restart starts the server again on the same port and directory after Stop
// or Kill, and returns once PING answers. Calling it while the server is
// running fails the test.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.refusePooled(tb, "Restart")
	if s.Running() {
		tb.Fatalf("redistest: Restart of %s while it is running; call Stop or Kill first", s.Addr())
	}
	// The port was ours a moment ago; something else may briefly hold it
	// (e.g. a connection in the middle of closing), so retry for a while.
	deadline := time.Now().Add(readyTimeout)
	for {
		err := s.spawn()
		if err == nil {
			return
		}
		if !errors.Is(err, errPortInUse) || time.Now().After(deadline) {
			tb.Fatalf("redistest: restart on %s: %v", s.Addr(), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Do runs one command on a new connection and returns the reply as text:
// simple strings and bulk strings as-is, integers in decimal, nil as "(nil)",
// arrays as their elements' renderings joined by "\n" (nested arrays are
// flattened, an empty array is ""). An error reply or a connection failure
// fails the test; use Try to inspect errors.
func (s *Server) Do(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := s.Try(args...)
	if err != nil {
		tb.Fatalf("redistest: %s %q: %v", s.Addr(), args, err)
	}
	return out
}

// Try is Do without a testing.TB: it returns error replies as *ReplyError and
// connection problems as other errors.
func (s *Server) Try(args ...string) (string, error) {
	if len(args) == 0 {
		return "", errors.New("no command given")
	}
	return command(s.Addr(), s.opts.Password, s.db, 5*time.Second, args...)
}

// ReplyError is an error reply from Redis (e.g. "WRONGTYPE ...").
type ReplyError struct{ Msg string }

func (e *ReplyError) Error() string { return e.Msg }

// ---- process management ----

var errPortInUse = errors.New("port already in use")

// spawn starts redis-server on s.port and waits until it answers PING.
func (s *Server) spawn() error {
	args := []string{
		"--port", strconv.Itoa(s.port),
		"--bind", "127.0.0.1",
		"--dir", s.dir,
		"--save", "",
		"--daemonize", "no",
		"--logfile", "",
	}
	if s.opts.Password != "" {
		args = append(args, "--requirepass", s.opts.Password)
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		args = append(args, "--appendonly", "no")
	}
	args = append(args, s.opts.Args...)
	if s.opts.confText != "" {
		conf := s.dir + "/redis.conf"
		if _, err := os.Stat(conf); err != nil {
			if err := os.WriteFile(conf, []byte(s.opts.confText), 0o600); err != nil {
				return fmt.Errorf("writing %s: %v", conf, err)
			}
		}
		args = append([]string{conf}, args...)
	}

	s.log.mark(fmt.Sprintf("---- redistest: starting %s %s ----\n", s.bin, strings.Join(quoteArgs(args), " ")))
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %v", s.bin, err)
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done, s.err = cmd, done, nil
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(done)
	}()

	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for {
		select {
		case <-done:
			s.mu.Lock()
			werr := s.err
			s.mu.Unlock()
			if s.log.contains("Address already in use") || s.log.contains("Could not create server TCP listening socket") {
				return fmt.Errorf("%w: redis-server could not listen on %s%s", errPortInUse, s.Addr(), s.tail())
			}
			return fmt.Errorf("redis-server on %s exited during startup (%v)%s", s.Addr(), werr, s.tail())
		default:
		}
		if time.Now().After(deadline) {
			s.signalAndWait(syscall.SIGKILL, stopTimeout)
			return fmt.Errorf("redis-server on %s did not answer PING within %v (last: %v)%s", s.Addr(), readyTimeout, lastErr, s.tail())
		}
		lastErr = s.ready(cmd.Process.Pid)
		if lastErr == nil {
			return nil
		}
		time.Sleep(15 * time.Millisecond)
	}
}

// ready checks that the process listening on our port is ours and serving.
func (s *Server) ready(pid int) error {
	pong, err := command(s.Addr(), s.opts.Password, 0, time.Second, "PING")
	if err != nil {
		return err
	}
	if pong != "PONG" {
		return fmt.Errorf("PING answered %q", pong)
	}
	// Guard against a port race with another test process: make sure the
	// server answering is the child we started.
	info, err := command(s.Addr(), s.opts.Password, 0, time.Second, "INFO", "server")
	if err != nil {
		return err
	}
	want := "process_id:" + strconv.Itoa(pid)
	for _, line := range strings.Split(info, "\n") {
		if strings.TrimSpace(line) == want {
			return nil
		}
	}
	return fmt.Errorf("%w: another process answers on %s", errPortInUse, s.Addr())
}

// exited reports whether the current process has been reaped. Caller holds mu.
func (s *Server) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Server) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
	}
	_ = cmd.Process.Kill()
	select {
	case <-done:
		return fmt.Errorf("process did not exit within %v of %v; killed", timeout, sig)
	case <-time.After(timeout):
		return fmt.Errorf("process %d did not exit even after SIGKILL", cmd.Process.Pid)
	}
}

// destroy kills the process and removes the directory (test cleanup).
func (s *Server) destroy() {
	s.signalAndWait(syscall.SIGKILL, stopTimeout)
	os.RemoveAll(s.dir)
}

func (s *Server) refusePooled(tb testing.TB, what string) {
	tb.Helper()
	if s.pool != nil {
		tb.Fatalf("redistest: %s is not allowed on a pooled server (shared process); use Start for a private one", what)
	}
}

// tail renders the end of the server log for error messages.
func (s *Server) tail() string {
	t := s.log.tail(logTailLines)
	if t == "" {
		return "\n(redis-server log is empty)"
	}
	return "\nredis-server log (tail):\n" + t
}

// ---- ports ----

var (
	portMu   sync.Mutex
	usedPort = map[int]bool{}
)

// freePort asks the kernel for a free loopback port. Ports already handed out
// by this process are skipped so parallel tests never pick the same one.
func freePort() (int, error) {
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port == 6379 || usedPort[port] {
			continue
		}
		usedPort[port] = true
		return port, nil
	}
	return 0, errors.New("could not find an unused free port")
}

// ---- log capture ----

type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// keep memory bounded for chatty servers: drop the oldest half past 4 MiB
	if b.buf.Len() > 4<<20 {
		keep := append([]byte(nil), b.buf.Bytes()[b.buf.Len()/2:]...)
		b.buf.Reset()
		b.buf.Write(keep)
	}
	return b.buf.Write(p)
}

func (b *logBuffer) mark(s string) { b.Write([]byte(s)) }

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// contains looks only at the current run (after the last start marker).
func (b *logBuffer) contains(sub string) bool {
	s := b.String()
	if i := strings.LastIndex(s, "---- redistest: starting"); i >= 0 {
		s = s[i:]
	}
	return strings.Contains(s, sub)
}

func (b *logBuffer) tail(n int) string {
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return ""
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

// ---- tiny RESP client ----

// command dials addr, authenticates when password is set, selects db when
// non-zero, sends args and renders the reply.
func command(addr, password string, db int, timeout time.Duration, args ...string) (string, error) {
	out, err := commands(addr, password, db, timeout, args)
	if err != nil {
		return "", err
	}
	return out[0], nil
}

// commands runs cmds on one connection, pipelined, and returns their
// replies; the first error reply ends it.
func commands(addr, password string, db int, timeout time.Duration, cmds ...[]string) ([]string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	w := bufio.NewWriter(conn)
	r := bufio.NewReader(conn)
	if password != "" {
		writeCommand(w, "AUTH", password)
	}
	if db != 0 {
		writeCommand(w, "SELECT", strconv.Itoa(db))
	}
	for _, args := range cmds {
		writeCommand(w, args...)
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	if password != "" {
		if _, err := readReply(r); err != nil {
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	if db != 0 {
		if _, err := readReply(r); err != nil {
			return nil, fmt.Errorf("SELECT %d: %w", db, err)
		}
	}
	out := make([]string, 0, len(cmds))
	for range cmds {
		rep, err := readReply(r)
		if err != nil {
			return out, err
		}
		out = append(out, rep)
	}
	return out, nil
}

func writeCommand(w *bufio.Writer, args ...string) {
	fmt.Fprintf(w, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(w, "$%d\r\n%s\r\n", len(a), a)
	}
}

// readReply reads one reply. An error reply is returned as *ReplyError after
// the whole reply has been consumed; errors nested in arrays are rendered as
// "(error) MSG" lines instead.
func readReply(r *bufio.Reader) (string, error) {
	line, err := readLine(r)
	if err != nil {
		return "", err
	}
	if line[0] == '-' {
		return "", &ReplyError{Msg: line[1:]}
	}
	return renderRest(r, line)
}

func renderReply(r *bufio.Reader) (string, error) {
	line, err := readLine(r)
	if err != nil {
		return "", err
	}
	if line[0] == '-' {
		return "(error) " + line[1:], nil
	}
	return renderRest(r, line)
}

func renderRest(r *bufio.Reader, line string) (string, error) {
	switch line[0] {
	case '+', ':', ',', '(':
		return line[1:], nil
	case '_':
		return "(nil)", nil
	case '#':
		if line[1:] == "t" {
			return "true", nil
		}
		return "false", nil
	case '$', '=', '!':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := ioReadFull(r, buf); err != nil {
			return "", err
		}
		s := string(buf[:n])
		if line[0] == '=' && len(s) >= 4 {
			s = s[4:] // verbatim string: strip "txt:"
		}
		if line[0] == '!' {
			return "(error) " + s, nil
		}
		return s, nil
	case '*', '~', '>', '%':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad aggregate length %q", line)
		}
		if n < 0 {
			return "(nil)", nil
		}
		if line[0] == '%' {
			n *= 2
		}
		parts := make([]string, 0, n)
		for i := 0; i < n; i++ {
			p, err := renderReply(r)
			if err != nil {
				return "", err
			}
			parts = append(parts, p)
		}
		return strings.Join(parts, "\n"), nil
	default:
		return "", fmt.Errorf("unexpected RESP line %q", line)
	}
}

func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", errors.New("empty RESP line")
	}
	return line, nil
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ---- shared pool ----

// Pool shares one redis-server process among the tests of one test binary,
// giving each caller of Get its own logical database, flushed before use and
// released when the test ends. It trades isolation for speed: Stop, Kill and
// Restart are refused on pooled handles, and commands that touch the whole
// server (FLUSHALL, CONFIG SET, SHUTDOWN, ...) must not be used. Typical use:
//
//	var pool = redistest.NewPool(redistest.Options{})
//	func TestMain(m *testing.M) { code := m.Run(); pool.Close(); os.Exit(code) }
//
// The process is started on the first Get. On Linux it also dies with the
// test binary if Close is never called.
type Pool struct {
	opts Options

	mu     sync.Mutex
	srv    *Server
	free   []int
	closed bool
}

// poolDatabases is the number of logical databases in a pooled server.
const poolDatabases = 256

// NewPool returns a pool; it does not start anything yet.
func NewPool(o Options) *Pool { return &Pool{opts: o} }

// Get returns a handle on the shared server using a fresh, empty database.
func (p *Pool) Get(tb testing.TB) *Server {
	tb.Helper()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		tb.Fatalf("redistest: Pool.Get after Close")
	}
	if p.srv == nil || !p.srv.Running() {
		o := p.opts
		o.Args = append(append([]string(nil), o.Args...), "--databases", strconv.Itoa(poolDatabases))
		srv, err := launch(o)
		if err != nil {
			p.mu.Unlock()
			tb.Fatalf("redistest: pool: %v", err)
		}
		if p.srv != nil {
			p.srv.destroy()
		}
		p.srv = srv
		p.free = p.free[:0]
		for db := poolDatabases - 1; db >= 1; db-- { // db 0 stays unused
			p.free = append(p.free, db)
		}
	}
	if len(p.free) == 0 {
		p.mu.Unlock()
		tb.Fatalf("redistest: pool: all %d databases are in use", poolDatabases-1)
	}
	db := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	srv := p.srv
	p.mu.Unlock()

	h := &Server{opts: p.opts, bin: srv.bin, dir: srv.dir, port: srv.port, db: db, pool: p,
		cmd: srv.cmd, done: srv.done, log: srv.log}
	if _, err := h.Try("FLUSHDB"); err != nil {
		tb.Fatalf("redistest: pool: FLUSHDB %d: %v%s", db, err, srv.tail())
	}
	tb.Cleanup(func() {
		h.Try("FLUSHDB")
		p.mu.Lock()
		if p.srv == srv {
			p.free = append(p.free, db)
		}
		p.mu.Unlock()
	})
	return h
}

// Close kills the shared process (if any) and removes its directory.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.srv != nil {
		p.srv.destroy()
		p.srv = nil
	}
}

// Launch starts a private server outside any one test, for TestMain and
// runnable examples; Close stops it and removes its directory.
func Launch(o Options) (*Server, error) { return launch(o) }

// Close kills a server started with Launch.
func (s *Server) Close() { s.destroy() }
