package resq_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
)

// One redis-server per test binary; each test gets its own database and
// namespace.
var (
	pool         = redistest.NewPool(redistest.Options{})
	nsCounter    atomic.Int64
	exampleRedis *redistest.Server // for the runnable examples
)

func TestMain(m *testing.M) {
	var err error
	exampleRedis, err = redistest.Launch(redistest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "examples need redis-server:", err)
		os.Exit(1)
	}
	code := m.Run()
	exampleRedis.Close()
	pool.Close()
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/resq-go/resq/internal/redistest.(*Server).spawn.func1")); err != nil {
			fmt.Fprintln(os.Stderr, "goroutine leak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type bundle struct {
	srv    *redistest.Server
	ns     string
	conn   *resq.Conn
	client *resq.Client
	admin  *resq.Admin
}

func (b *bundle) key(rel string) string { return b.ns + ":" + rel }

// setup returns fresh fixtures on the shared Redis under a unique namespace.
func setup(t *testing.T) *bundle {
	t.Helper()
	return setupOn(t, pool.Get(t))
}

// setupPrivate starts a private redis-server (for tests that kill Redis).
func setupPrivate(t *testing.T) *bundle {
	t.Helper()
	return setupOn(t, redistest.Start(t))
}

func setupOn(t *testing.T, srv *redistest.Server) *bundle {
	t.Helper()
	ns := fmt.Sprintf("t%d", nsCounter.Add(1))
	conn, err := resq.Open(resq.ConnConfig{URL: srv.URL(), Namespace: ns, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &bundle{srv: srv, ns: ns, conn: conn, client: resq.NewClient(conn, resq.ClientConfig{}), admin: resq.NewAdmin(conn)}
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// runWorker starts w.Run in the background and returns a stop function that
// shuts it down gracefully and waits.
func runWorker(t *testing.T, w *resq.Worker) (stop func()) {
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
				t.Errorf("shutdown: %v", err)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds or 10 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
