package resq_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent Enqueue calls on one Client share pipelines: every job lands
// once with its own id, and Redis sees far fewer SADDs than jobs (one per
// pipeline, not one per job).
func TestConcurrentEnqueuesShareRoundTrips(t *testing.T) {
	t.Parallel()
	b := setupPrivate(t)
	ctx := context.Background()
	const producers, each = 32, 100
	ids := make(chan string, producers*each)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				e, err := b.client.Enqueue(ctx, "q", "Work", p, i)
				if err != nil {
					t.Error(err)
					return
				}
				ids <- e.ID
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("id %s returned twice", id)
		}
		seen[id] = true
	}
	if n := b.srv.Do(t, "LLEN", b.key("queue:q")); n != strconv.Itoa(producers*each) || len(seen) != producers*each {
		t.Fatalf("queue holds %s jobs, %d ids returned; want %d", n, len(seen), producers*each)
	}
	sadds, rpushes := b.srv.CommandCalls(t, "sadd"), b.srv.CommandCalls(t, "rpush")
	if sadds > producers*each*3/4 || rpushes > producers*each*3/4 {
		t.Errorf("%d SADDs and %d RPUSHes for %d jobs: concurrent enqueues were not coalesced", sadds, rpushes, producers*each)
	}
	t.Logf("%d jobs, %d SADD, %d RPUSH calls", producers*each, sadds, rpushes)
	// One caller's jobs stay in its order (a batch's RPUSH carries them in
	// arrival order).
	last := map[float64]float64{}
	for _, raw := range strings.Split(b.srv.Do(t, "LRANGE", b.key("queue:q"), "0", "-1"), "\n") {
		var job struct{ Args []float64 }
		if err := json.Unmarshal([]byte(raw), &job); err != nil || len(job.Args) != 2 {
			t.Fatalf("job %s: %v", raw, err)
		}
		p, i := job.Args[0], job.Args[1]
		if prev, ok := last[p]; ok && i <= prev {
			t.Fatalf("producer %v's job %v queued after its job %v", p, i, prev)
		}
		last[p] = i
	}
}

// Concurrent enqueues onto a queue whose key is not a list: every caller
// gets an error (the RPUSH that carried its job failed), none is reported
// stored, and the key is untouched.
func TestGroupedEnqueueRPushErrorFailsEveryCaller(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.Do(t, "SET", b.key("queue:q"), "not a list")
	const producers, each = 16, 20
	var wg sync.WaitGroup
	var stored atomic.Int64
	for range producers {
		wg.Go(func() {
			for range each {
				if _, err := b.client.Enqueue(context.Background(), "q", "Work", 1); err == nil {
					stored.Add(1)
				} else if !strings.Contains(err.Error(), "WRONGTYPE") {
					t.Errorf("error %v, want Redis's WRONGTYPE", err)
				}
			}
		})
	}
	wg.Wait()
	if n := stored.Load(); n != 0 {
		t.Fatalf("%d enqueues onto a string key reported stored", n)
	}
	if v := b.srv.Do(t, "GET", b.key("queue:q")); v != "not a list" {
		t.Fatalf("queue key changed to %q", v)
	}
}

// An Enqueue whose ctx ends while its job waits for a pipeline returns the
// ctx's error, and that job is not pushed; with Redis gone, every waiting
// caller gets an error (none is lost silently).
func TestGroupedEnqueueErrors(t *testing.T) {
	t.Parallel()
	b := setupPrivate(t)
	b.srv.Kill(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := b.client.Enqueue(ctx, "q", "Work", 1)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("an enqueue with Redis down returned no error")
		}
	}
	b.srv.Restart(t)
	if _, err := b.client.Enqueue(context.Background(), "q", "Work", 2); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	if n := b.srv.Do(t, "LLEN", b.key("queue:q")); n != "1" {
		t.Fatalf("queue holds %s jobs, want the 1 enqueued after the restart", n)
	}
}
