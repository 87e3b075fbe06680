// Package testkit holds the helpers every test suite of resq shares, so that
// each lives once: a logger that writes into the test log, polling until a
// condition holds, running a Worker for the length of a test, a Client that
// must build, and the goroutine-leak check each TestMain runs.
//
// It is imported by tests only.
package testkit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
)

// Logger returns a logger that writes into t's log at debug level under
// go test -v, and nowhere otherwise.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Wait is how long Eventually polls before it fails the test.
const Wait = 15 * time.Second

// Eventually polls cond every 5 ms until it holds, and fails t when it still
// does not after Wait.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Wait)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", Wait, what)
}

// RunWorker starts w.Run in the background and returns a function that
// shuts it down gracefully and waits for Run to return; the function also
// runs at cleanup, and calling it twice is harmless. A shutdown error or an
// error from Run fails t.
func RunWorker(t testing.TB, w *resq.Worker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer scancel()
			if err := w.Shutdown(sctx); err != nil {
				t.Errorf("worker shutdown: %v", err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker Run returned %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// Client returns resq.NewClient(conn, cfg), failing t when it refuses cfg.
func Client(t testing.TB, conn *resq.Conn, cfg resq.ClientConfig) *resq.Client {
	t.Helper()
	c, err := resq.NewClient(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Main is the body of a TestMain: it runs the limit shim when the test
// binary was started as one (resq.RunShimIfRequested), runs the tests, calls
// cleanup (closing the Redis servers the package started), and when the
// tests passed fails the binary if goroutines are left running. It does not
// return.
func Main(m *testing.M, cleanup func()) {
	resq.RunShimIfRequested()
	code := m.Run()
	if cleanup != nil {
		cleanup()
	}
	if code == 0 {
		if err := CheckLeaks(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// ExampleRedis starts the redis-server a package's runnable examples talk to
// (examples get no *testing.T, so they cannot take one from a Pool). It ends
// the test binary with a message when redis-server cannot start. Close it in
// Main's cleanup.
func ExampleRedis() *redistest.Server {
	srv, err := redistest.Launch(redistest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "the examples need redis-server:", err)
		os.Exit(1)
	}
	return srv
}

// LeakIgnores are the goroutines that may outlive a test by design:
// redistest's server reapers, which wait for a killed redis-server.
var LeakIgnores = []goleak.Option{goleak.IgnoreTopFunction("github.com/resq-go/resq/internal/redistest.(*Server).spawn.func1")}

// CheckLeaks reports goroutines still running, apart from the ones that
// outlive a test by design (redistest's server reapers).
//
// It waits up to 10 s for goroutines to end: a test that stops a command
// the way a second TERM does (return at once, jobs left to the next
// worker) leaves the abandoned worker finishing its shutdown — closing its
// job keeper may take up to 5 s — which in a real process the exit cuts
// short.
func CheckLeaks(opts ...goleak.Option) error {
	opts = append(opts, LeakIgnores...)
	err := goleak.Find(opts...)
	for deadline := time.Now().Add(10 * time.Second); err != nil && time.Now().Before(deadline); err = goleak.Find(opts...) {
		time.Sleep(200 * time.Millisecond)
	}
	return err
}

// buildOnce holds the one build of cmd/resq per test binary.
var buildOnce struct {
	once sync.Once
	path string
	err  error
}

// BuildResq builds cmd/resq once per test binary (with the test's Go, build
// cache and flags) and returns the binary's path; it fails the test when the
// build fails. Tests that run the real program (signals, SIGKILL, process
// trees) use it.
func BuildResq(t testing.TB) string {
	t.Helper()
	buildOnce.once.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		pkg := filepath.Join(filepath.Dir(self), "..", "..", "cmd", "resq")
		dir, err := os.MkdirTemp("", "resq-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "resq")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", buildOnce.path, ".")
		cmd.Dir = pkg
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildOnce.err = fmt.Errorf("go build ./cmd/resq: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatalf("building resq: %v", buildOnce.err)
	}
	return buildOnce.path
}
