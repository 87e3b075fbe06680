package resq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
)

// noScriptsBundle is a bundle whose Conn logs in as a Redis ACL user that may
// run every command except scripting (EVAL, EVALSHA, SCRIPT, FUNCTION), as
// operators do who deny Lua as a CVE workaround. srv.Do still runs as the
// default user.
func noScriptsBundle(t *testing.T) *bundle {
	t.Helper()
	srv := redistest.Start(t)
	srv.Do(t, "ACL", "SETUSER", "worker", "on", ">pw", "~*", "&*", "+@all", "-@scripting")
	ns := fmt.Sprintf("t%d", nsCounter.Add(1))
	url := strings.Replace(srv.URL(), "redis://", "redis://worker:pw@", 1)
	conn, err := resq.Open(resq.ConnConfig{URL: url, Namespace: ns, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	b := &bundle{srv: srv, ns: ns, conn: conn, client: testkit.Client(t, conn, resq.ClientConfig{QueueCaps: map[string]int64{"capped": 2}}), admin: resq.NewAdmin(conn)}
	// The user really cannot script.
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if _, err := rdb.Eval(context.Background(), "return 1", nil).Result(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("EVAL as the no-scripts user: %v; want NOPERM", err)
	}
	return b
}

type secretArgs struct {
	User     string `json:"user"`
	Password string `json:"password" resq:"secret"`
}

// Without Lua the whole core path works on plain commands: enqueue (capped
// too), fetch with the in-flight record, acks and counters, a malformed job
// becoming a failure with a valid record, secret fields, and nothing left
// behind in the pickup lists or slot records.
func TestWorkerWithoutLuaScripts(t *testing.T) {
	t.Parallel()
	b := noScriptsBundle(t)
	ctx := context.Background()
	const jobs = 300
	for i := range jobs {
		if _, err := b.client.Enqueue(ctx, "q", "Work", i); err != nil {
			t.Fatal(err)
		}
	}
	b.srv.Do(t, "RPUSH", b.key("queue:q"), "not json")
	if _, err := b.client.Enqueue(ctx, "low", "Work", -1); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := b.client.Enqueue(ctx, "capped", "Work", 1000+i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.client.Enqueue(ctx, "capped", "Work", 2000); !errors.Is(err, resq.ErrQueueFull) {
		t.Fatalf("third job on a queue capped at 2: %v; want ErrQueueFull", err)
	}
	w := newWorker(t, b, resq.WorkerConfig{Queues: []string{"q", "low", "capped"}, Concurrency: 4})
	ran := make(chan int, jobs+3)
	resq.Handle(w, "Work", func(ctx context.Context, a []int) error { ran <- a[0]; return nil })
	resq.Handle(w, "Login", func(ctx context.Context, a secretArgs) error { return nil })
	stop := testkit.RunWorker(t, w)
	seen := map[int]bool{}
	for len(seen) < jobs+3 {
		select {
		case n := <-ran:
			if seen[n] {
				t.Fatalf("job %d ran twice", n)
			}
			seen[n] = true
		case <-time.After(20 * time.Second):
			t.Fatalf("ran %d of %d jobs", len(seen), jobs+3)
		}
	}
	testkit.Eventually(t, "all processed", func() bool {
		st, _ := b.admin.Stats(ctx)
		return st.Processed == jobs+4 && st.Working == 0
	})
	fs, err := b.admin.Failures(ctx, 0, 10)
	if err != nil || len(fs) != 1 || fs[0].Exception != resq.ExceptionInvalidPayload {
		t.Fatalf("failures = %+v, %v; want the malformed job's", fs, err)
	}
	if v := b.srv.Do(t, "HGET", b.key("resq:secret_fields"), "Login"); v != "password" {
		t.Errorf("secret fields of Login = %q", v)
	}
	stop()
	if keys := b.srv.Do(t, "KEYS", b.key("resq:pickup:*")); keys != "" {
		t.Errorf("pickup lists left: %s", keys)
	}
	if keys := b.srv.Do(t, "KEYS", b.key("worker:*")); keys != "" {
		t.Errorf("worker keys left: %s", keys)
	}
}

// Without Lua a fast stop still requeues the running job at the head of its
// queue, and a dead same-host worker's job is still recovered.
func TestFastStopAndRecoveryWithoutLua(t *testing.T) {
	t.Parallel()
	b := noScriptsBundle(t)
	assertFastStopRequeues(t, b)

	b.srv.Do(t, "DEL", b.key("queue:q"))
	assertDeadSameHostJobRequeued(t, b)
}

// Class concurrency caps hold without Lua too (leases under WATCH): a cap of
// 1 on two slots never runs two jobs of the class at once, and every job runs.
func TestClassConcurrencyWithoutLua(t *testing.T) {
	t.Parallel()
	b := noScriptsBundle(t)
	ctx := context.Background()
	for i := range 6 {
		if _, err := b.client.Enqueue(ctx, "q", "Work", i); err != nil {
			t.Fatal(err)
		}
	}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 2, PollInterval: 20 * time.Millisecond, ClassConcurrency: map[string]int{"Work": 1}})
	var running, maxRunning, done atomic.Int64
	w.HandleFunc("Work", func(ctx context.Context, j *resq.Job) error {
		n := running.Add(1)
		defer running.Add(-1)
		for m := maxRunning.Load(); n > m && !maxRunning.CompareAndSwap(m, n); m = maxRunning.Load() {
		}
		time.Sleep(30 * time.Millisecond)
		done.Add(1)
		return nil
	})
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "6 jobs", func() bool { return done.Load() == 6 })
	stop()
	if m := maxRunning.Load(); m != 1 {
		t.Fatalf("%d jobs of a class capped at 1 ran at once", m)
	}
	if st, _ := b.admin.Stats(ctx); st.Processed != 6 || st.StatFailed != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// Without Lua the acks hold jobs ahead in the process's pickup list; a
// pause (pause-all-workers) gives them back — the worker then holds nothing
// but its running jobs — and so does a graceful stop. No job runs twice or
// is lost on the way.
func TestPauseAndStopReturnHeldJobsWithoutLua(t *testing.T) {
	t.Parallel()
	b := noScriptsBundle(t)
	ctx := context.Background()
	const jobs = 400
	for i := range jobs {
		if _, err := b.client.Enqueue(ctx, "q", "Work", i); err != nil {
			t.Fatal(err)
		}
	}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 4, PollInterval: 20 * time.Millisecond})
	runs := handleCountingRuns(w)
	ran := runs.distinct
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// settled: nothing running, nothing in the pickup lists, every job not
	// run still in the queue.
	settled := func() bool {
		st, err := b.admin.Stats(ctx)
		held := b.srv.Do(t, "EVAL", `local n = 0
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('LLEN', k) end
return n`, "0", b.key("resq:pickup:*"))
		return err == nil && st.Working == 0 && held == "0" && int(st.Pending)+ran() == jobs && int(st.Processed) == ran()
	}
	testkit.Eventually(t, "100 jobs run", func() bool { return ran() >= 100 })
	b.srv.Do(t, "SET", b.key("pause-all-workers"), "true")
	testkit.Eventually(t, "paused: the held jobs back in the queue", settled)
	if st, _ := b.admin.Stats(ctx); st.Pending < 100 {
		t.Fatalf("%d jobs left in the queue: the pause did not stop the worker", st.Pending)
	}

	b.srv.Do(t, "DEL", b.key("pause-all-workers"))
	at := ran()
	testkit.Eventually(t, "more jobs after the pause", func() bool { return ran() >= at+100 })
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !settled() {
		st, _ := b.admin.Stats(ctx)
		t.Fatalf("after shutdown: stats %+v, %d jobs run, pickup lists %s", st, ran(), b.srv.Do(t, "KEYS", b.key("resq:pickup:*")))
	}
	for j := range jobs {
		if n := runs.of(j); n > 1 {
			t.Fatalf("job %d ran %d times", j, n)
		}
	}
}

// A worker stopping without Lua gives back the jobs its acks held ahead at
// once, not after its running jobs end: another worker can run them
// meanwhile.
func TestStopReturnsHeldJobsBeforeRunningJobsEndWithoutLua(t *testing.T) {
	t.Parallel()
	b := noScriptsBundle(t)
	ctx := context.Background()
	const jobs = 200
	for i := range jobs {
		if _, err := b.client.Enqueue(ctx, "q", "Work", i); err != nil {
			t.Fatal(err)
		}
	}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 2})
	started, release := make(chan struct{}), make(chan struct{})
	resq.Handle(w, "Work", func(ctx context.Context, a []int) error {
		if a[0] == 50 {
			close(started)
			<-release
		}
		return nil
	})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-started
	stopped := make(chan error, 1)
	go func() { stopped <- w.Shutdown(ctx) }()
	held := func() string {
		return b.srv.Do(t, "EVAL", `local n = 0
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do n = n + redis.call('LLEN', k) end
return n`, "0", b.key("resq:pickup:*"))
	}
	testkit.Eventually(t, "the held jobs given back while job 50 runs", func() bool {
		st, err := b.admin.Stats(ctx)
		return err == nil && held() == "0" && st.Working == 1 && int(st.Pending+st.Processed) == jobs-1
	})
	close(release)
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	<-done
	if st, _ := b.admin.Stats(ctx); int(st.Pending+st.Processed) != jobs || st.Working != 0 {
		t.Fatalf("after the stop: %+v", st)
	}
}
