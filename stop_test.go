package resq_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
)

// A worker whose job ends while Redis is down still stops (Shutdown, or a
// fast stop): its result is given up StopTimeout after the stop request
// instead of being retried for minutes. The job stays in its in-flight
// record; after Redis returns, the next worker finds the stopped one dead
// and runs the job, which is counted once.
func TestStopWithRedisDownReturnsAndJobIsRecovered(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"shutdown", "fast stop"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			b := setupOn(t, redistest.StartWith(t, redistest.Options{AppendOnly: true}))
			ctx := context.Background()
			// pid 999999 is above pid_max on Linux: once this worker has
			// stopped, the next one on this host sees its ids as dead.
			w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, PID: 999999, StopTimeout: 300 * time.Millisecond})
			var runs atomic.Int32
			started := make(chan struct{})
			release := make(chan struct{})
			w.HandleFunc("Work", func(ctx context.Context, j *resq.Job) error {
				if runs.Add(1) == 1 {
					close(started)
					<-release // ignores ctx, like a job finishing its last write
				}
				return nil
			})
			e, err := b.client.Enqueue(ctx, "q", "Work", 1)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- w.Run(runCtx) }()
			<-started
			b.srv.Stop(t)
			close(release) // the job ends with Redis down: its ack cannot be written

			sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
			defer scancel()
			if mode == "shutdown" {
				if err := w.Shutdown(sctx); err != nil {
					t.Fatalf("Shutdown with Redis down: %v; want it to return within the stop timeout", err)
				}
			} else {
				cancel()
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Run returned %v", err)
				}
			case <-sctx.Done():
				t.Fatal("Run did not return with Redis down")
			}

			b.srv.Restart(t)
			if st, err := b.admin.Stats(ctx); err != nil || st.Processed != 0 || st.Working != 1 {
				t.Fatalf("after the stop: %+v, %v; want the job still in flight, nothing processed", st, err)
			}
			w2 := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
			got := make(chan string, 2)
			w2.HandleFunc("Work", func(ctx context.Context, j *resq.Job) error { got <- j.ID; return nil })
			testkit.RunWorker(t, w2)
			select {
			case id := <-got:
				if id != e.ID {
					t.Fatalf("recovered job id %q, want %q", id, e.ID)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the job left in flight was not recovered by the next worker")
			}
			testkit.Eventually(t, "the job counted once", func() bool {
				st, err := b.admin.Stats(ctx)
				return err == nil && st.Processed == 1 && st.Working == 0 && st.Workers == 1
			})
		})
	}
}
