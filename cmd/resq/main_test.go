package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
)

// One redis-server for the test binary; each test gets its own database
// and namespace.
var (
	pool      = redistest.NewPool(redistest.Options{})
	nsCounter atomic.Int64
)

func TestMain(m *testing.M) {
	redis.SetLogger(discardRedisLog{}) // as main does
	testkit.Main(m, pool.Close)
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is one test's Redis and namespace, and the environment that
// points resq at them.
type fixture struct {
	t   *testing.T
	srv *redistest.Server
	ns  string
	env []string
}

func setup(t *testing.T) *fixture {
	t.Helper()
	srv := pool.Get(t)
	ns := fmt.Sprintf("cli%d", nsCounter.Add(1))
	return &fixture{t: t, srv: srv, ns: ns, env: []string{
		"REDIS_URL=" + srv.URL(), "RESQ_NAMESPACE=" + ns, "RESQ_NO_TITLE=1",
	}}
}

func (f *fixture) key(rel string) string { return f.ns + ":" + rel }

// result is one finished command.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs one resq command in-process with env.
func runWith(env []string, args ...string) result {
	var out, errb syncBuffer
	code := run(context.Background(), args, system{Stdout: &out, Stderr: &errb, Env: env})
	return result{code, out.String(), errb.String()}
}

// run runs a command against the fixture's Redis and namespace.
// usageCase is a command line and what its usage error must say.
type usageCase struct {
	args []string
	want string
}

// usageErrors runs each case and checks that it exits 2 (usage) with want
// in its stderr.
func (f *fixture) usageErrors(cases []usageCase) {
	f.t.Helper()
	for _, c := range cases {
		if r := f.run(c.args...); r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			f.t.Errorf("resq %s: want exit 2 saying %q, got %v", strings.Join(c.args, " "), c.want, r)
		}
	}
}

func (f *fixture) run(args ...string) result {
	f.t.Helper()
	return runWith(f.env, args...)
}

// ok runs a command that must succeed and returns its stdout.
func (f *fixture) ok(args ...string) string {
	f.t.Helper()
	r := f.run(args...)
	if r.code != 0 {
		f.t.Fatalf("resq %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// okJSON runs a command with --json and decodes its output into v.
func (f *fixture) okJSON(v any, args ...string) {
	f.t.Helper()
	out := f.ok(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		f.t.Fatalf("resq %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// background is a command running in a goroutine, with fake signals.
type background struct {
	sigs   chan os.Signal
	cancel context.CancelFunc
	done   chan int
	stdout syncBuffer
	stderr syncBuffer
}

func (f *fixture) start(args ...string) *background {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &background{sigs: make(chan os.Signal), cancel: cancel, done: make(chan int, 1)}
	sys := system{Stdout: &b.stdout, Stderr: &b.stderr, Env: f.env,
		Signals: func(...os.Signal) (<-chan os.Signal, func()) { return b.sigs, func() {} }}
	go func() { b.done <- run(ctx, args, sys) }()
	f.t.Cleanup(func() {
		cancel()
		select {
		case <-b.done:
		case <-time.After(15 * time.Second):
			f.t.Errorf("resq %s did not stop\nstderr:\n%s", strings.Join(args, " "), b.stderr.String())
		}
	})
	return b
}

// signal delivers a signal, as the OS would.
func (b *background) signal(t *testing.T, s os.Signal) {
	t.Helper()
	select {
	case b.sigs <- s:
	case <-time.After(10 * time.Second):
		t.Fatalf("the command did not take signal %v", s)
	}
}

// wait returns the exit code, failing the test after timeout.
func (b *background) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case code := <-b.done:
		b.done <- code // for the cleanup
		return code
	case <-time.After(timeout):
		t.Fatalf("the command did not exit within %s\nstderr:\n%s", timeout, b.stderr.String())
		return -1
	}
}

// deadPort returns a loopback port nothing listens on.
func deadPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, got)
		}
	}
}
