package resq_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/testkit"
)

// In a resq child process the test binary registers the test handlers and
// serves them: the pattern a program with ChildProcess handlers follows
// (main reaches Worker.Run with the same handlers, and nothing before it
// has side effects).
func init() {
	// Before anything else: when started as the limit shim, apply the limits
	// and exec the job (this init runs before TestMain).
	resq.RunShimIfRequested()
	if !resq.InChildProcess() {
		return
	}
	conn, err := resq.Open(resq.ConnConfig{})
	if err != nil {
		panic(err)
	}
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"*"}})
	if err != nil {
		panic(err)
	}
	registerChildHandlers(w, resq.HandlerOptions{})
	err = w.Run(context.Background()) // exits the process when the worker closes the pipe
	fmt.Fprintln(os.Stderr, "child mode:", err)
	os.Exit(2)
}

// registerChildHandlers registers the handlers the child-process tests use,
// the same in the worker and in its children.
func registerChildHandlers(w *resq.Worker, o resq.HandlerOptions) {
	// Pid fails with the pid of the process that ran it, so a test can see
	// which child ran each job.
	resq.Handle(w, "Pid", func(ctx context.Context, a []int) error {
		return resq.Fail("Pid", "%d", os.Getpid())
	}, o)
	resq.Handle(w, "Greet", func(ctx context.Context, a greet) error {
		if a.Name == "" {
			return errors.New("no name")
		}
		return nil
	}, o)
	resq.Handle(w, "Noop", func(ctx context.Context, a []int) error { return nil }, o)
	resq.Handle(w, "Skip", func(ctx context.Context, a []int) error { return resq.ErrDontPerform }, o)
	// Never returns, ignoring its context.
	resq.Handle(w, "Spin", func(ctx context.Context, a []int) error {
		for {
		}
	}, o)
	resq.Handle(w, "Alloc", func(ctx context.Context, a []int) error { // a memory bomb: 1 GiB
		var keep [][]byte
		for i := 0; i < 64; i++ {
			b := make([]byte, 16<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		return resq.Fail("Alloc", "allocated %d MiB", len(keep)*16)
	}, o)
	// Meet writes a file named by its pid in a.Dir and waits until a.N
	// files are there: it succeeds only when N jobs run at once, each in a
	// child of its own.
	resq.Handle(w, "Meet", func(ctx context.Context, a meetArgs) error {
		if err := os.WriteFile(a.Dir+"/"+strconv.Itoa(os.Getpid()), nil, 0o600); err != nil {
			return err
		}
		for {
			ents, err := os.ReadDir(a.Dir)
			if err != nil {
				return err
			}
			if len(ents) >= a.N {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("only %d of %d met", len(ents), a.N)
			case <-time.After(5 * time.Millisecond):
			}
		}
	}, o)
	// Block waits until the file named by its argument exists.
	resq.Handle(w, "Block", func(ctx context.Context, a []string) error {
		for {
			if _, err := os.Stat(a[0]); err == nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}, o)
	resq.Handle(w, "Crash", func(ctx context.Context, a []int) error { os.Exit(3); return nil }, o)
	resq.Handle(w, "Panic", func(ctx context.Context, a []int) error { panic("boom") }, o)
}

type meetArgs struct {
	Dir string `json:"dir"`
	N   int    `json:"n"`
}

// childSurvivors returns the pids of child processes of w's slots (worker
// ids, so tests running in parallel use distinct queue names).
func childSurvivors(w *resq.Worker) []int {
	var pids []int
	for _, id := range w.IDs() {
		pids = append(pids, isolate.ProcessesWithEnv("RESQ_ISOLATE_WORKER="+id)...)
	}
	return pids
}

func failuresByError(t *testing.T, b *bundle) []resq.FailureView {
	t.Helper()
	fs, err := b.admin.Failures(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// TestChildProcessHostileHandlers runs Go handlers that never return, blow
// up memory, crash and panic in warm children, each followed by normal jobs
// on the same single slot: each is killed within its limit and recorded
// with the limit's name, the worker stays alive and small, the jobs behind
// run, and no child process is left.
func TestChildProcessHostileHandlers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// No hold ahead: the test reads which child ran each job from the Pid
	// jobs around the kills, which needs each job to start after the last
	// one's child settled; a held job starts at once and may go to a
	// replacement child that is starting beside it (both are fine).
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"hostile"}, Concurrency: 1, PollInterval: 20 * time.Millisecond, Logger: testkit.Logger(t), DisableHoldAhead: true})
	if err != nil {
		t.Fatal(err)
	}
	lim := resq.ChildLimits{Memory: childMemoryLimit, KillGrace: 500 * time.Millisecond}
	registerChildHandlers(w, resq.HandlerOptions{Isolation: resq.ChildProcess, Timeout: time.Minute, Limits: lim})
	resq.Handle(w, "Spin", func(ctx context.Context, a []int) error { return nil }, // runs in the child
		resq.HandlerOptions{Isolation: resq.ChildProcess, Timeout: time.Second, Limits: lim})
	enqueue := func(class string, args ...any) {
		t.Helper()
		if _, err := b.client.Enqueue(ctx, "hostile", class, args...); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("Pid")
	enqueue("Pid")
	enqueue("Greet", greet{Name: "ann"})
	enqueue("Greet", greet{})
	b.srv.Do(t, "RPUSH", b.key("queue:hostile"), `{"class":"Greet","args":[{"name":1}]}`)
	enqueue("Skip")
	enqueue("Panic")
	enqueue("Spin")
	enqueue("Pid")
	enqueue("Alloc")
	enqueue("Pid")
	enqueue("Crash")
	enqueue("Pid")
	const total = 13
	start := time.Now()
	stop := testkit.RunWorker(t, w)
	deadline := time.Now().Add(90 * time.Second)
	for {
		st, _ := b.admin.Stats(ctx)
		if st.Processed == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processed %d of %d jobs", st.Processed, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	rss := isolate.RSS()
	if rss > 400<<20 {
		t.Errorf("worker RSS is %s after a 1 GiB memory bomb ran in its child", isolate.FormatBytes(rss))
	}
	stop()
	if pids := childSurvivors(w); len(pids) > 0 {
		t.Fatalf("child processes survived the worker: %v", pids)
	}

	fs := failuresByError(t, b)
	var pids []string
	byClass := map[string][]resq.FailureView{}
	for _, f := range fs {
		if f.Exception == "Pid" {
			pids = append(pids, f.Error)
		}
		byClass[f.Job.Class] = append(byClass[f.Job.Class], f)
	}
	one := func(class string) resq.FailureView {
		t.Helper()
		if len(byClass[class]) != 1 {
			t.Fatalf("%s failures: %+v", class, byClass[class])
		}
		return byClass[class][0]
	}
	if f := one("Spin"); f.Exception != resq.ExceptionTimeout || !strings.HasPrefix(f.Error, "timeout after 1s: the handler did not return within 500ms") {
		t.Errorf("Spin: %s: %s", f.Exception, f.Error)
	}
	if f := one("Alloc"); f.Exception != resq.ExceptionResourceLimit || f.Error != "memory limit "+isolate.FormatBytes(childMemoryLimit)+" exceeded" {
		t.Errorf("Alloc: %s: %s", f.Exception, f.Error)
	}
	if f := one("Crash"); f.Exception != resq.ExceptionChildCrashed || !strings.HasPrefix(f.Error, "the child process died (exit status 3)") {
		t.Errorf("Crash: %s: %s", f.Exception, f.Error)
	}
	if f := one("Panic"); f.Exception != resq.ExceptionPanic || f.Error != "panic: boom" || len(f.Backtrace) == 0 {
		t.Errorf("Panic: %s: %s", f.Exception, f.Error)
	}
	if gs := byClass["Greet"]; len(gs) != 2 || gs[0].Exception != resq.ExceptionError || gs[1].Exception != resq.ExceptionInvalidArgs {
		t.Errorf("Greet failures: %+v", gs)
	}
	if _, ok := byClass["Skip"]; ok {
		t.Error("the skipped job failed")
	}
	// Pids: two jobs on the first child; a new child after each kill.
	if len(pids) != 5 || pids[0] != pids[1] || pids[1] == pids[2] || pids[2] == pids[3] || pids[3] == pids[4] {
		t.Errorf("pids of the Pid jobs = %v", pids)
	}
	for _, p := range pids {
		if p == strconv.Itoa(os.Getpid()) {
			t.Errorf("a Pid job ran in the worker's process")
		}
	}
	t.Logf("%d jobs, 4 of them hostile, in %s; worker (test process) RSS %s", total, took.Round(time.Millisecond), isolate.FormatBytes(rss))
}

func TestWarmChildIsRecycledAfterMaxJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"recycle"}, Concurrency: 1, PollInterval: 20 * time.Millisecond, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	registerChildHandlers(w, resq.HandlerOptions{Isolation: resq.ChildProcess, Limits: resq.ChildLimits{MaxJobs: 3}})
	for range 7 {
		if _, err := b.client.Enqueue(ctx, "recycle", "Pid"); err != nil {
			t.Fatal(err)
		}
	}
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "7 jobs", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == 7 })
	stop()
	var pids []string
	for _, f := range failuresByError(t, b) {
		pids = append(pids, f.Error)
	}
	if len(pids) != 7 || pids[0] != pids[2] || pids[2] == pids[3] || pids[3] != pids[5] || pids[5] == pids[6] {
		t.Fatalf("pids = %v; want a new child every 3 jobs", pids)
	}
	if len(childSurvivors(w)) > 0 {
		t.Fatal("a child survived")
	}
}

// TestWarmChildPoolGrowsForLongJobs: the slots share a pool of children
// that starts at one per core; when every child is held by a long job it
// grows, up to one child per slot, so long jobs still run Concurrency at a
// time.
func TestWarmChildPoolGrowsForLongJobs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const slots = 5
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"meet"}, Concurrency: slots, PollInterval: 20 * time.Millisecond, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	registerChildHandlers(w, resq.HandlerOptions{Isolation: resq.ChildProcess, Timeout: time.Minute})
	dir := t.TempDir()
	for range slots {
		if _, err := b.client.Enqueue(ctx, "meet", "Meet", meetArgs{Dir: dir, N: slots}); err != nil {
			t.Fatal(err)
		}
	}
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "5 jobs", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == slots })
	stop()
	if fs := failuresByError(t, b); len(fs) > 0 {
		t.Fatalf("failures: %s: %s", fs[0].Exception, fs[0].Error)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != slots {
		t.Fatalf("%d children ran the %d jobs", len(ents), slots)
	}
	if len(childSurvivors(w)) > 0 {
		t.Fatal("a child survived")
	}
}

// TestWarmChildShortJobsPassLongOne: short jobs do not wait behind a long
// one in its child's pipe; they run in another child while it runs.
func TestWarmChildShortJobsPassLongOne(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"mixed"}, Concurrency: 3, PollInterval: 20 * time.Millisecond, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	registerChildHandlers(w, resq.HandlerOptions{Isolation: resq.ChildProcess, Timeout: time.Minute})
	release := t.TempDir() + "/release"
	if _, err := b.client.Enqueue(ctx, "mixed", "Block", release); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		if _, err := b.client.Enqueue(ctx, "mixed", "Noop"); err != nil {
			t.Fatal(err)
		}
	}
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "the 50 short jobs while the long one runs", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == 50 })
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the long job", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == 51 })
	stop()
	if st, _ := b.admin.Stats(ctx); st.StatFailed != 0 {
		fs := failuresByError(t, b)
		t.Fatalf("%d failed: %s: %s", st.StatFailed, fs[0].Exception, fs[0].Error)
	}
	if len(childSurvivors(w)) > 0 {
		t.Fatal("a child survived")
	}
}

// TestInProcessHandlerThatNeverReturns: an in-process handler that ignores
// its context cannot be stopped, but it keeps its slot: no goroutines pile
// up while jobs queue behind it, and they run once it returns.
func TestInProcessHandlerThatNeverReturns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 2, PollInterval: 10 * time.Millisecond,
		JobTimeout: 50 * time.Millisecond, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var started, running atomic.Int64
	var maxRunning atomic.Int64
	w.HandleFunc("Stuck", func(ctx context.Context, job *resq.Job) error {
		started.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := maxRunning.Load()
			if n <= m || maxRunning.CompareAndSwap(m, n) {
				break
			}
		}
		<-release // ignores ctx
		return ctx.Err()
	})
	for range 50 {
		if _, err := b.client.Enqueue(ctx, "q", "Stuck"); err != nil {
			t.Fatal(err)
		}
	}
	base := runtime.NumGoroutine()
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "both slots stuck", func() bool { return started.Load() == 2 })
	// Well past the 50 ms timeout, many times over.
	for range 20 {
		time.Sleep(25 * time.Millisecond)
		if g := runtime.NumGoroutine(); g > base+40 {
			t.Fatalf("goroutines grew from %d to %d while handlers were stuck", base, g)
		}
	}
	if started.Load() != 2 {
		t.Fatalf("%d handlers started while 2 slots were stuck", started.Load())
	}
	if n, _ := b.admin.QueueSize(ctx, "q"); n != 48 {
		t.Fatalf("queue length = %d, want 48 jobs waiting behind the stuck slots", n)
	}
	close(release)
	testkit.Eventually(t, "all 50 jobs", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == 50 })
	stop()
	if maxRunning.Load() != 2 {
		t.Fatalf("%d handlers ran at once with 2 slots", maxRunning.Load())
	}
	st, _ := b.admin.Stats(ctx)
	if st.StatFailed != 2 {
		t.Fatalf("failed = %d; want the 2 stuck runs (the 48 behind them return at once)", st.StatFailed)
	}
	fs := failuresByError(t, b)
	if fs[0].Exception != resq.ExceptionTimeout || !strings.HasPrefix(fs[0].Error, "timeout after 50ms") {
		t.Fatalf("failure = %s: %s", fs[0].Exception, fs[0].Error)
	}
}

// TestClassConcurrencyCap: two workers share a cap of 2 running jobs of
// class Slow; jobs over the cap go back to the queue without being counted,
// and jobs of other classes are not held up.
func TestClassConcurrencyCap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var running, maxRunning, slowDone, fastDone atomic.Int64
	newWorker := func(pid int) *resq.Worker {
		w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 3, PID: pid,
			PollInterval: 20 * time.Millisecond, ClassConcurrency: map[string]int{"Slow": 2}, Logger: testkit.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		w.HandleFunc("Slow", func(ctx context.Context, job *resq.Job) error {
			n := running.Add(1)
			defer running.Add(-1)
			for {
				m := maxRunning.Load()
				if n <= m || maxRunning.CompareAndSwap(m, n) {
					break
				}
			}
			time.Sleep(60 * time.Millisecond)
			slowDone.Add(1)
			return nil
		})
		w.HandleFunc("Fast", func(ctx context.Context, job *resq.Job) error { fastDone.Add(1); return nil })
		return w
	}
	for i := range 10 {
		if _, err := b.client.Enqueue(ctx, "q", "Slow", i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if _, err := b.client.Enqueue(ctx, "q", "Fast", i); err != nil {
			t.Fatal(err)
		}
	}
	// Fake pids, so that each worker sees the other as a live process on
	// this host: the test's own pid for one, the parent's for the other.
	w1, w2 := newWorker(os.Getpid()), newWorker(os.Getppid())
	start := time.Now()
	stop1, stop2 := testkit.RunWorker(t, w1), testkit.RunWorker(t, w2)
	testkit.Eventually(t, "fast jobs", func() bool { return fastDone.Load() == 10 })
	fastTook := time.Since(start)
	testkit.Eventually(t, "slow jobs", func() bool { return slowDone.Load() == 10 })
	testkit.Eventually(t, "20 processed", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == 20 })
	stop1()
	stop2()
	if m := maxRunning.Load(); m != 2 {
		t.Fatalf("%d Slow jobs ran at once under a cap of 2", m)
	}
	st, _ := b.admin.Stats(ctx)
	if st.Processed != 20 || st.StatFailed != 0 || st.Pending != 0 {
		t.Fatalf("stats = %+v; bounced jobs must not count", st)
	}
	// 10 slow jobs, 2 at a time, take 300 ms; the fast ones must not wait
	// for them.
	if fastTook > 2*time.Second {
		t.Errorf("fast jobs took %s behind capped ones", fastTook)
	}
	if holders := b.srv.Do(t, "ZCARD", b.key("resq:lease:Slow")); holders != "0" {
		t.Fatalf("%s leases still held after the workers stopped", holders)
	}
}

// TestClassConcurrencyLeaseOfDeadHolderExpires: a lease that is not renewed
// (its worker died) stops counting after its TTL.
func TestClassConcurrencyLeaseOfDeadHolderExpires(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// A dead worker holds the only lease until 1 s from now (Redis runs on
	// this host, so its clock is ours).
	b.srv.Do(t, "ZADD", b.key("resq:lease:Slow"), strconv.FormatInt(time.Now().UnixMilli()+1000, 10), "dead-host:1:q")
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 1, PollInterval: 50 * time.Millisecond,
		HeartbeatInterval: 100 * time.Millisecond, ClassConcurrency: map[string]int{"Slow": 1}, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var ranAt atomic.Int64
	w.HandleFunc("Slow", func(ctx context.Context, job *resq.Job) error { ranAt.Store(time.Now().UnixNano()); return nil })
	if _, err := b.client.Enqueue(ctx, "q", "Slow"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "the job ran", func() bool { return ranAt.Load() != 0 })
	stop()
	if waited := time.Duration(ranAt.Load() - start.UnixNano()); waited < 500*time.Millisecond {
		t.Fatalf("the job ran after %s, while the dead holder's lease was still valid", waited)
	}
	if st, _ := b.admin.Stats(ctx); st.Processed != 1 {
		t.Fatalf("processed = %d", st.Processed)
	}
}

func TestClassConcurrencyRejectsNegativeCap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"q"}, ClassConcurrency: map[string]int{"X": -1}})
	if err == nil || !strings.Contains(err.Error(), `ClassConcurrency["X"] = -1 is negative`) {
		t.Fatalf("err = %v", err)
	}
}

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// pushNoops appends n no-op jobs to queue q in a few round trips.
func pushNoops(tb testing.TB, b *bundle, class string, n int) {
	tb.Helper()
	opt, err := redis.ParseURL(b.srv.URL())
	if err != nil {
		tb.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	ctx := context.Background()
	payload := `{"class":"` + class + `","args":[]}`
	for i := 0; i < n; i += 1000 {
		vals := make([]any, 0, 1000)
		for j := i; j < min(n, i+1000); j++ {
			vals = append(vals, payload)
		}
		if err := rdb.RPush(ctx, b.key("queue:q"), vals...).Err(); err != nil {
			tb.Fatal(err)
		}
	}
	if err := rdb.SAdd(ctx, b.key("queues"), "q").Err(); err != nil {
		tb.Fatal(err)
	}
}

// benchWorker processes b.N no-op jobs with register's handler on
// Concurrency 10 (the default) and reports jobs/s (Redis included: fetch, ack, counters).
func benchWorker(b *testing.B, register func(w *resq.Worker)) {
	benchWorkerAt(b, 10, register)
}

// benchWorkerAt is benchWorker at a given concurrency. It also reports the
// CPU time per job of this process and of the slots' warm children
// together (Redis not included).
func benchWorkerAt(b *testing.B, concurrency int, register func(w *resq.Worker)) {
	bb := setupBench(b)
	ctx := context.Background()
	w, err := resq.NewWorker(bb.conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: concurrency, PollInterval: 5 * time.Millisecond,
		Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	register(w)
	// Warm up: start the worker (and its children) on a few jobs first.
	pushNoops(b, bb, "Noop", 8)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	waitProcessed(b, bb, 8)
	pushNoops(b, bb, "Noop", b.N)
	cpu := func() time.Duration {
		d := isolate.SelfCPU()
		for _, pid := range childSurvivors(w) {
			c, _ := isolate.ProcessCPU(pid)
			d += c
		}
		return d
	}
	b.ResetTimer()
	start := time.Now()
	cpu0 := cpu()
	waitProcessed(b, bb, int64(8+b.N))
	el := time.Since(start)
	used := cpu() - cpu0
	b.ReportMetric(float64(len(childSurvivors(w))), "children")
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "jobs/s")
	b.ReportMetric(float64(used.Microseconds())/float64(b.N), "cpu-µs/job")
	sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
	defer scancel()
	_ = w.Shutdown(sctx)
	cancel()
	<-done
}

func waitProcessed(tb testing.TB, b *bundle, n int64) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		st, err := b.admin.Stats(context.Background())
		if err == nil && st.Processed >= n {
			if st.StatFailed > 0 {
				fs, _ := b.admin.Failures(context.Background(), 0, 1)
				tb.Fatalf("%d jobs failed: %+v", st.StatFailed, fs)
			}
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("processed %d of %d", st.Processed, n)
		}
		time.Sleep(10 * time.Millisecond) // polling costs Redis and CPU time
	}
}

func BenchmarkInProcess(b *testing.B) {
	benchWorker(b, func(w *resq.Worker) {
		resq.Handle(w, "Noop", func(ctx context.Context, a []int) error { return nil })
	})
}

// BenchmarkWarmChild: the same no-op jobs, each run in the slot's warm child
// (one child per slot, reused for every job).
func BenchmarkWarmChild(b *testing.B) {
	benchWorker(b, func(w *resq.Worker) {
		registerChildHandlers(w, resq.HandlerOptions{Isolation: resq.ChildProcess, Limits: resq.ChildLimits{MaxJobs: 1 << 30}})
	})
}

// BenchmarkWarmChild50 is BenchmarkWarmChild at concurrency 50 (the
// bench module's second setting), where more slots once made it slower.
func BenchmarkWarmChild50(b *testing.B) {
	benchWorkerAt(b, 50, func(w *resq.Worker) {
		registerChildHandlers(w, resq.HandlerOptions{Isolation: resq.ChildProcess, Limits: resq.ChildLimits{MaxJobs: 1 << 30}})
	})
}

// BenchmarkInProcess50 is BenchmarkInProcess at concurrency 50.
func BenchmarkInProcess50(b *testing.B) {
	benchWorkerAt(b, 50, func(w *resq.Worker) {
		resq.Handle(w, "Noop", func(ctx context.Context, a []int) error { return nil })
	})
}

// BenchmarkExec: the --exec mode, a new process (/bin/true) per job.
func BenchmarkExec(b *testing.B) {
	benchWorker(b, func(w *resq.Worker) {
		w.HandleCommand("Noop", resq.Command{Path: "/bin/true"})
	})
}

// BenchmarkExecLimited: --exec with rlimits, so every job also goes through
// the limit shim (one more exec, of this binary).
func BenchmarkExecLimited(b *testing.B) {
	benchWorker(b, func(w *resq.Worker) {
		w.HandleCommand("Noop", resq.Command{Path: "/bin/true", Limits: resq.ChildLimits{Memory: 256 << 20, Files: 256}})
	})
}

// setupBench is setup for a benchmark.
func setupBench(b *testing.B) *bundle {
	srv := pool.Get(b)
	ns := fmt.Sprintf("bench%d", nsCounter.Add(1))
	conn, err := resq.Open(resq.ConnConfig{URL: srv.URL(), Namespace: ns, Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return &bundle{srv: srv, ns: ns, conn: conn, client: testkit.Client(b, conn, resq.ClientConfig{}), admin: resq.NewAdmin(conn)}
}
