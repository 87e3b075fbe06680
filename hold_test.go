package resq_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// aheadKeys lists the namespace's ahead hashes (jobs held ahead).
func aheadKeys(t *testing.T, b *bundle) string {
	t.Helper()
	return b.srv.Do(t, "KEYS", b.key("resq:ahead:*"))
}

// enqueueWork enqueues n Work jobs on q, args 0 … n-1.
func enqueueWork(t *testing.T, b *bundle, n int) {
	t.Helper()
	for i := range n {
		if _, err := b.client.Enqueue(context.Background(), "q", "Work", i); err != nil {
			t.Fatal(err)
		}
	}
}

// A busy worker holds jobs ahead and runs every job once; when it pauses,
// what it held goes back to the queue (a paused worker holds nothing but
// its running jobs); after Resume and Shutdown nothing is held and every
// job ran exactly once.
func TestHoldAheadPauseAndStop(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const jobs = 400
	enqueueWork(t, b, jobs)
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 4})
	runs := handleCountingRuns(w) // 1 ms per job
	var heldSeen atomic.Bool
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "jobs held ahead while the worker is busy", func() bool {
		if k := aheadKeys(t, b); k != "" && b.srv.Do(t, "HLEN", k) != "0" {
			heldSeen.Store(true)
		}
		return heldSeen.Load()
	})
	w.Pause()
	testkit.Eventually(t, "the paused worker holds nothing", func() bool {
		st, err := b.admin.Stats(ctx)
		return err == nil && st.Working == 0 && aheadKeys(t, b) == ""
	})
	st, _ := b.admin.Stats(ctx)
	if st.Processed+st.Pending != jobs {
		t.Fatalf("paused: processed %d + pending %d, want %d", st.Processed, st.Pending, jobs)
	}
	if st.Pending == 0 {
		t.Fatal("every job ran before the pause: the test proved nothing")
	}
	w.Resume()
	waitProcessed(t, b, jobs)
	stop()
	if k := aheadKeys(t, b); k != "" {
		t.Fatalf("held jobs left after the worker stopped: %s", k)
	}
	if v := b.srv.Do(t, "SCARD", b.key("resq:aheads")); v != "0" {
		t.Fatalf("%s hold owners listed after the worker stopped", v)
	}
	for i := range jobs {
		if n := runs.of(i); n != 1 {
			t.Fatalf("job %d ran %d times", i, n)
		}
	}
}

// Jobs held behind long ones go back to the head of their queue within
// about holdMaxAge (100 ms), so that another worker runs them while this
// one's slots are all busy.
func TestHeldJobsBehindLongOnesReturn(t *testing.T) {
	t.Parallel()
	t.Run("default user", func(t *testing.T) { t.Parallel(); heldJobsBehindLongOnesReturn(t, false) })
	// A worker-role ACL user may return held jobs by field (HMGET).
	t.Run("worker role", func(t *testing.T) { t.Parallel(); heldJobsBehindLongOnesReturn(t, true) })
}

func heldJobsBehindLongOnesReturn(t *testing.T, acl bool) {
	b := setup(t)
	ctx := context.Background()
	release := make(chan struct{})
	var long atomic.Int32
	conn, user := b.conn, ""
	if acl {
		conn, user = aclConn(t, b, resq.ACLWorker, true)
	}
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 2, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("Long", func(ctx context.Context, j *resq.Job) error { long.Add(1); <-release; return nil })
	var numbered atomic.Int32 // quick jobs of the ten behind the long ones that ran here
	w.HandleFunc("Quick", func(ctx context.Context, j *resq.Job) error {
		if string(j.Args) != `["Quick"]` {
			numbered.Add(1)
		}
		return nil
	})
	// Two quick jobs, so that acks hold the jobs behind; then two long ones
	// that occupy both slots; then quick ones.
	for _, c := range []string{"Quick", "Quick", "Long", "Long"} {
		if _, err := b.client.Enqueue(ctx, "q", c, c); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if _, err := b.client.Enqueue(ctx, "q", "Quick", i); err != nil {
			t.Fatal(err)
		}
	}
	testkit.RunWorker(t, w)
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free) // before the worker's own cleanup stops it
	testkit.Eventually(t, "both slots run a long job", func() bool { return long.Load() == 2 })
	start := time.Now()
	// (A slot may have run one or two of them before its long job.)
	testkit.Eventually(t, "the quick jobs back in the queue", func() bool {
		return b.srv.Do(t, "LLEN", b.key("queue:q")) == strconv.Itoa(10-int(numbered.Load())) && aheadKeys(t, b) == ""
	})
	rest := 10 - int(numbered.Load())
	if rest == 0 {
		t.Fatal("every quick job ran before the long ones: the test proved nothing")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("held jobs came back after %s", d)
	}
	// Another worker runs them while the first one's slots are busy.
	w2 := newWorker(t, b, resq.WorkerConfig{Concurrency: 2, Hostname: "other"})
	var ran2 atomic.Int32
	w2.HandleFunc("Quick", func(ctx context.Context, j *resq.Job) error { ran2.Add(1); return nil })
	stop2 := testkit.RunWorker(t, w2)
	testkit.Eventually(t, "the second worker ran the quick jobs", func() bool { return int(ran2.Load()) == rest })
	stop2()
	free()
	testkit.Eventually(t, "the long jobs finished", func() bool {
		st, err := b.admin.Stats(ctx)
		return err == nil && st.Processed == 14
	})
	if acl {
		checkNoDenials(t, b.srv, user, true)
	}
}

// A dead worker's hold goes back to the heads of its queues when it is
// pruned, before the queue's own jobs; so does the hold of a worker that
// something else unregistered (Ruby's pruning) once its pid is gone, and
// a hold a predecessor with this worker's ids left, when the worker starts.
func TestDeadWorkersHoldIsReturned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	host, _ := os.Hostname()
	dead := host + ":999997:q:1"
	b.srv.Do(t, "SADD", b.key("workers"), dead, host+":999997:q:2")
	b.srv.Do(t, "HSET", b.key("resq:ahead:"+dead),
		"17:1:1q", `{"class":"Job","args":["held 1"]}`,
		"17:2:1q", `{"class":"Job","args":["held 2"]}`,
		"16:1:0r", `not json`)
	b.srv.Do(t, "RPUSH", b.key("queue:q"), `{"class":"Job","args":["queued"]}`)
	// Unregistered, its process gone: an orphan.
	b.srv.Do(t, "HSET", b.key("resq:ahead:"+host+":999996:s"), "3:1:1s", `{"class":"Job","args":["orphan"]}`)
	// Unregistered on another host: left for now (it may be re-registering).
	b.srv.Do(t, "HSET", b.key("resq:ahead:web9:12:s"), "3:1:1s", `{"class":"Job","args":["remote"]}`)
	b.srv.Do(t, "SADD", b.key("resq:aheads"), dead, host+":999996:s", "web9:12:s")
	res, err := b.admin.Prune(ctx, 0, resq.RequeueDeadJobs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requeued != 4 || len(res.Pruned) != 2 {
		t.Fatalf("prune = %+v", res)
	}
	want := strings.Join([]string{`{"class":"Job","args":["held 1"]}`, `{"class":"Job","args":["held 2"]}`, `{"class":"Job","args":["queued"]}`}, "\n")
	if v := b.srv.Do(t, "LRANGE", b.key("queue:q"), "0", "-1"); v != want {
		t.Fatalf("queue q = %q", v)
	}
	if v := b.srv.Do(t, "LRANGE", b.key("queue:r"), "0", "-1"); v != "not json" {
		t.Fatalf("queue r = %q", v)
	}
	if v := b.srv.Do(t, "LRANGE", b.key("queue:s"), "0", "-1"); v != `{"class":"Job","args":["orphan"]}` {
		t.Fatalf("queue s = %q", v)
	}
	if v := b.srv.Do(t, "SISMEMBER", b.key("queues"), "r"); v != "1" {
		t.Fatalf("queue r not listed in queues")
	}
	if v := aheadKeys(t, b); v != b.key("resq:ahead:web9:12:s") {
		t.Fatalf("ahead hashes left: %q", v)
	}
	if v := b.srv.Do(t, "SMEMBERS", b.key("resq:aheads")); v != "web9:12:s" {
		t.Fatalf("hold owners left: %q", v)
	}

	// A hold left under this worker's own first id is returned at start-up.
	w := newWorker(t, b, resq.WorkerConfig{Queues: []string{"q2"}})
	b.srv.Do(t, "HSET", b.key("resq:ahead:"+w.IDs()[0]), "5:1:1q2", `{"class":"Job","args":["mine"]}`)
	got := make(chan string, 1)
	w.HandleFunc("Job", func(ctx context.Context, j *resq.Job) error { got <- string(j.Args); return nil })
	testkit.RunWorker(t, w)
	select {
	case a := <-got:
		if a != `["mine"]` {
			t.Fatalf("ran %s", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job left in this worker's hold did not run")
	}
}

// Many workers on one queue, every job once (claims and refills of
// several processes' holds interleave on the same queue).
func TestHoldAheadManyWorkersEachJobOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const jobs = 3000
	items := make([]resq.EnqueueParams, jobs)
	for i := range items {
		items[i] = resq.EnqueueParams{Queue: "q", Class: "Work", Args: []any{i}}
	}
	if _, err := b.client.EnqueueBatch(ctx, items); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	runs := map[int]int{}
	var stops []func()
	for n := range 3 {
		w := newWorker(t, b, resq.WorkerConfig{Concurrency: 5, Hostname: fmt.Sprintf("h%d", n)})
		resq.Handle(w, "Work", func(ctx context.Context, a []int) error {
			mu.Lock()
			runs[a[0]]++
			mu.Unlock()
			return nil
		})
		stops = append(stops, testkit.RunWorker(t, w))
	}
	waitProcessed(t, b, jobs)
	for _, s := range stops {
		s()
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range jobs {
		if runs[i] != 1 {
			t.Fatalf("job %d ran %d times", i, runs[i])
		}
	}
	if k := aheadKeys(t, b); k != "" {
		t.Fatalf("held jobs left: %s", k)
	}
}

// pause-all-workers (Ruby's and resq's pause of every worker) stops the
// held jobs too: they go back to the queue, none runs while it is set;
// once it is cleared every job runs once.
func TestHoldAheadGlobalPause(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const jobs = 400
	enqueueWork(t, b, jobs)
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 4, PollInterval: 50 * time.Millisecond})
	runs := handleCountingRuns(w)
	testkit.RunWorker(t, w)
	testkit.Eventually(t, "jobs held ahead", func() bool {
		k := aheadKeys(t, b)
		return k != "" && b.srv.Do(t, "HLEN", k) != "0"
	})
	b.srv.Do(t, "SET", b.key("pause-all-workers"), "true")
	testkit.Eventually(t, "nothing running or held while paused", func() bool {
		st, err := b.admin.Stats(ctx)
		return err == nil && st.Working == 0 && aheadKeys(t, b) == ""
	})
	st, _ := b.admin.Stats(ctx)
	time.Sleep(300 * time.Millisecond)
	if st2, _ := b.admin.Stats(ctx); st2.Processed != st.Processed {
		t.Fatalf("jobs ran while all workers were paused: %d then %d", st.Processed, st2.Processed)
	}
	if st.Processed+st.Pending != jobs || st.Pending == 0 {
		t.Fatalf("paused: processed %d + pending %d, want %d with some pending", st.Processed, st.Pending, jobs)
	}
	b.srv.Do(t, "DEL", b.key("pause-all-workers"))
	waitProcessed(t, b, jobs)
	for i := range jobs {
		if n := runs.of(i); n != 1 {
			t.Fatalf("job %d ran %d times", i, n)
		}
	}
}

// One slot keeps its queue's order with jobs held ahead, also when a slow
// job makes the held ones go back to the queue.
func TestHoldAheadOneSlotKeepsOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const jobs = 60
	enqueueWork(t, b, jobs)
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	var mu sync.Mutex
	var order []int
	resq.Handle(w, "Work", func(ctx context.Context, a []int) error {
		mu.Lock()
		order = append(order, a[0])
		mu.Unlock()
		if a[0]%20 == 5 {
			time.Sleep(3 * holdMaxAgeForTests) // the held jobs go back meanwhile
		}
		return nil
	})
	testkit.RunWorker(t, w)
	waitProcessed(t, b, jobs)
	mu.Lock()
	defer mu.Unlock()
	for i, n := range order {
		if n != i {
			t.Fatalf("ran %v; want 0 … %d in order", order, jobs-1)
		}
	}
}

// holdMaxAgeForTests is the engine's holdMaxAge (100 ms), which the root
// package cannot read.
const holdMaxAgeForTests = 100 * time.Millisecond
