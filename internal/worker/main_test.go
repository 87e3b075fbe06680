package worker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/internal/wire"
	"github.com/resq-go/resq/internal/worker"
)

// One redis-server per test binary; every test gets its own flushed database
// and namespace. Tests that stop Redis start a private server.
var (
	pool      = redistest.NewPool(redistest.Options{})
	nsCounter atomic.Int64
)

func TestMain(m *testing.M) { testkit.Main(m, pool.Close) }

// newStore returns a Store on srv under a fresh namespace, with the root
// package's client settings that matter when Redis goes away (few retries,
// bounded timeouts).
func newStore(t *testing.T, srv *redistest.Server) *wire.Store {
	t.Helper()
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = 2
	opt.DialTimeout = 3 * time.Second
	opt.ReadTimeout = 5 * time.Second
	opt.WriteTimeout = 5 * time.Second
	opt.ContextTimeoutEnabled = true
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return wire.NewStore(rdb, fmt.Sprintf("w%d", nsCounter.Add(1)))
}

// config is an engine config for tests: n slots on queue "q", short
// intervals, the given execute function.
func config(t *testing.T, store *wire.Store, n int, exec func(context.Context, worker.Slot, wire.Fetched) worker.Result) worker.Config {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("enginehost:999999:q:%d", i+1)
	}
	return worker.Config{
		Store: store, IDs: ids, Owner: "enginehost:999999", Queues: []string{"q"},
		PollInterval: 20 * time.Millisecond, HeartbeatInterval: time.Hour, StopTimeout: 200 * time.Millisecond,
		MaxBytes: 1 << 20, Logger: testkit.Logger(t), ExecuteFunc: exec,
	}
}

// ack is the success ack of f on slot s.
func ack(s worker.Slot, f wire.Fetched) worker.Result {
	return worker.Result{Action: worker.ActionAck, Ack: wire.Ack{WorkerID: s.ID, Processed: true, Queue: f.Queue, Class: "Job"}}
}

func ackAll(_ context.Context, s worker.Slot, f wire.Fetched) worker.Result { return ack(s, f) }

// start runs e in the background; the returned function requests a
// graceful stop and waits for Run to return (at most 20 s).
func start(t *testing.T, e *worker.Engine, ctx context.Context) (stop func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stopped := false
	stop = func() {
		t.Helper()
		if stopped {
			return
		}
		stopped = true
		e.RequestStop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Run did not return within 20 s of RequestStop")
		}
	}
	t.Cleanup(stop)
	return stop
}

func push(t *testing.T, store *wire.Store, queue string, payloads ...string) {
	t.Helper()
	for _, p := range payloads {
		if err := store.Push(context.Background(), queue, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
}

func info(t *testing.T, store *wire.Store) wire.Info {
	t.Helper()
	in, err := store.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return in
}
