package resq_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
)

// One redis-server per test binary; each test gets its own database and
// namespace.
var (
	pool         = redistest.NewPool(redistest.Options{})
	nsCounter    atomic.Int64
	exampleRedis *redistest.Server // for the runnable examples
)

func TestMain(m *testing.M) {
	exampleRedis = testkit.ExampleRedis()
	testkit.Main(m, func() {
		exampleRedis.Close()
		pool.Close()
	})
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
	conn, err := resq.Open(resq.ConnConfig{URL: srv.URL(), Namespace: ns, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &bundle{srv: srv, ns: ns, conn: conn, client: testkit.Client(t, conn, resq.ClientConfig{}), admin: resq.NewAdmin(conn)}
}

// runCounter counts the runs of each job of class "Work" (args [n]); each
// run sleeps 1 ms, so that jobs overlap acks.
type runCounter struct {
	mu   sync.Mutex
	runs map[int]int
}

// handleCountingRuns registers the "Work" handler on w.
func handleCountingRuns(w *resq.Worker) *runCounter {
	c := &runCounter{runs: map[int]int{}}
	resq.Handle(w, "Work", func(ctx context.Context, a []int) error {
		c.mu.Lock()
		c.runs[a[0]]++
		c.mu.Unlock()
		time.Sleep(time.Millisecond)
		return nil
	})
	return c
}

// of returns how many times job n ran.
func (c *runCounter) of(n int) int { c.mu.Lock(); defer c.mu.Unlock(); return c.runs[n] }

// distinct returns how many different jobs ran.
func (c *runCounter) distinct() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.runs) }
