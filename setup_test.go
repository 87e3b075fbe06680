package resq_test

import (
	"fmt"
	"sync/atomic"
	"testing"

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
