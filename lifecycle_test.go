package resq_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

func newWorker(t *testing.T, b *bundle, cfg resq.WorkerConfig) *resq.Worker {
	t.Helper()
	if cfg.Queues == nil {
		cfg.Queues = []string{"q"}
	}
	w, err := resq.NewWorker(b.conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A fast stop (ctx cancelled, as on TERM) requeues a job whose handler
// ignores cancellation, at the head of its queue, and counts nothing.
func TestFastStopRequeuesRunningJob(t *testing.T) {
	t.Parallel()
	assertFastStopRequeues(t, setup(t))
}

// assertFastStopRequeues runs a job whose handler ignores cancellation,
// stops the worker fast, and checks that the job is back at the head of its
// queue and nothing was counted.
func assertFastStopRequeues(t *testing.T, b *bundle) {
	t.Helper()
	ctx := context.Background()
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, StopTimeout: 200 * time.Millisecond})
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	defer close(release)
	w.HandleFunc("Stubborn", func(ctx context.Context, j *resq.Job) error {
		started <- struct{}{}
		<-release // ignores ctx
		return nil
	})
	e, err := b.client.Enqueue(ctx, "q", "Stubborn", 7)
	if err != nil {
		t.Fatal(err)
	}
	b.client.Enqueue(ctx, "q", "Later")
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	<-started
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	jobs, err := b.admin.Peek(ctx, "q", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].ID != e.ID || jobs[0].Class != "Stubborn" {
		t.Fatalf("queue after fast stop = %+v; want the interrupted job first", jobs)
	}
	st, _ := b.admin.Stats(ctx)
	if st.Processed != 0 || st.Workers != 0 || st.Working != 0 {
		t.Fatalf("stats after fast stop = %+v", st)
	}
}

// A cooperative handler that returns ctx.Err() on a fast stop is requeued
// too, not recorded as a failure.
func TestFastStopRequeuesCooperativeJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	started := make(chan struct{}, 1)
	w.HandleFunc("Polite", func(ctx context.Context, j *resq.Job) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	b.client.Enqueue(ctx, "q", "Polite")
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	<-started
	cancel()
	<-done
	if n, _ := b.admin.QueueSize(ctx, "q"); n != 1 {
		t.Fatalf("queue size = %d, want 1", n)
	}
	if n, _ := b.admin.FailureCount(ctx); n != 0 {
		t.Fatalf("failures = %d, want 0", n)
	}
}

// Shutdown (QUIT) lets the running job finish and takes no new one.
func TestShutdownFinishesRunningJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	started := make(chan struct{}, 1)
	var finished atomic.Bool
	w.HandleFunc("Slow", func(ctx context.Context, j *resq.Job) error {
		started <- struct{}{}
		time.Sleep(150 * time.Millisecond)
		finished.Store(true)
		return nil
	})
	b.client.Enqueue(ctx, "q", "Slow")
	b.client.Enqueue(ctx, "q", "Slow")
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-started
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	if !finished.Load() {
		t.Fatal("Shutdown returned before the running job finished")
	}
	st, _ := b.admin.Stats(ctx)
	if st.Processed != 1 || st.Pending != 1 || st.Workers != 0 {
		t.Fatalf("stats = %+v; want 1 processed, 1 pending, no workers", st)
	}
}

// Pause stops fetching; Resume starts again. pause-all-workers pauses too.
func TestPauseResume(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, PollInterval: 20 * time.Millisecond})
	var ran atomic.Int64
	w.HandleFunc("Tick", func(ctx context.Context, j *resq.Job) error { ran.Add(1); return nil })
	w.Pause()
	testkit.RunWorker(t, w)
	b.client.Enqueue(ctx, "q", "Tick")
	time.Sleep(100 * time.Millisecond)
	if ran.Load() != 0 {
		t.Fatal("a paused worker ran a job")
	}
	w.Resume()
	testkit.Eventually(t, "job after resume", func() bool { return ran.Load() == 1 })

	b.srv.Do(t, "SET", b.key("pause-all-workers"), " TRUE ")
	b.client.Enqueue(ctx, "q", "Tick")
	time.Sleep(100 * time.Millisecond)
	if ran.Load() != 1 {
		t.Fatal("pause-all-workers did not pause")
	}
	b.srv.Do(t, "DEL", b.key("pause-all-workers"))
	testkit.Eventually(t, "job after pause-all-workers removed", func() bool { return ran.Load() == 2 })
}

// A worker that died mid-job on this host (its pid is gone) has its job
// requeued by the next worker at start-up, and its ids removed.
func TestDeadSameHostWorkerJobIsRequeued(t *testing.T) {
	t.Parallel()
	assertDeadSameHostJobRequeued(t, setup(t))
}

// assertDeadSameHostJobRequeued registers a dead worker on this host holding
// a job, runs a worker, and checks that the job runs first and the dead
// worker's keys are gone.
func assertDeadSameHostJobRequeued(t *testing.T, b *bundle) {
	t.Helper()
	host, _ := os.Hostname()
	dead := host + ":999999:q:3" // pid 999999 is above pid_max on Linux
	payload := `{"class":"Work","args":[1],"id":"abc"}`
	b.srv.Do(t, "SADD", b.key("workers"), dead)
	b.srv.Do(t, "SET", b.key("worker:"+dead), `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":`+payload+`}`)
	b.srv.Do(t, "SET", b.key("worker:"+dead+":started"), "2024-01-15 10:23:45 +0000")
	b.srv.Do(t, "HSET", b.key("workers:heartbeat"), dead, time.Now().Format(time.RFC3339))
	b.srv.Do(t, "RPUSH", b.key("queue:q"), `{"class":"Work","args":[2]}`)

	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	got := make(chan string, 2)
	w.HandleFunc("Work", func(ctx context.Context, j *resq.Job) error { got <- string(j.Args); return nil })
	testkit.RunWorker(t, w)
	if first, second := <-got, <-got; first != "[1]" || second != "[2]" {
		t.Fatalf("ran %s then %s; want the recovered job [1] first", first, second)
	}
	for _, k := range []string{"worker:" + dead, "worker:" + dead + ":started"} {
		if v := b.srv.Do(t, "EXISTS", b.key(k)); v != "0" {
			t.Errorf("%s still exists", k)
		}
	}
	if v := b.srv.Do(t, "SISMEMBER", b.key("workers"), dead); v != "0" {
		t.Error("dead id still registered")
	}
	if v := b.srv.Do(t, "HEXISTS", b.key("workers:heartbeat"), dead); v != "0" {
		t.Error("dead heartbeat still present")
	}
}

// A worker on another host whose heartbeat is stale is pruned; with
// FailDeadJobs its job becomes Ruby's PruneDeadWorkerDirtyExit failure and
// stat:failed is not incremented.
func TestStaleRemoteWorkerFailedAsRubyDoes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	dead := "web2:777:file_serve"
	fresh := "web3:778:file_serve"
	rec := `{"queue":"file_serve","run_at":"2024-01-15T10:17:30Z","payload":{"class":"Archive","args":[44,"masterbrew"]}}`
	b.srv.Do(t, "SADD", b.key("workers"), dead, fresh)
	b.srv.Do(t, "SET", b.key("worker:"+dead), rec)
	b.srv.Do(t, "HSET", b.key("workers:heartbeat"), dead, time.Now().Add(-301*time.Second).Format(time.RFC3339))
	b.srv.Do(t, "HSET", b.key("workers:heartbeat"), fresh, time.Now().Add(-200*time.Second).Format(time.RFC3339))

	res, err := b.admin.Prune(ctx, 0, resq.FailDeadJobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pruned) != 1 || res.Pruned[0] != dead || res.Failed != 1 {
		t.Fatalf("prune = %+v", res)
	}
	fs, _ := b.admin.Failures(ctx, 0, 5)
	if len(fs) != 1 {
		t.Fatalf("failures = %d", len(fs))
	}
	f := fs[0]
	if f.Exception != "Resque::PruneDeadWorkerDirtyExit" ||
		f.Error != "Worker web2:777:file_serve did not gracefully exit while processing Archive" ||
		f.Worker != dead || f.Queue != "file_serve" || len(f.Backtrace) != 0 {
		t.Fatalf("failure = %+v", f)
	}
	if !strings.Contains(string(f.Raw), `"payload":{"class":"Archive","args":[44,"masterbrew"]}`) {
		t.Fatalf("record = %s", f.Raw)
	}
	if v := b.srv.Do(t, "GET", b.key("stat:failed")); v != "(nil)" {
		t.Fatalf("stat:failed = %s; Ruby does not count dirty exits", v)
	}
	if v := b.srv.Do(t, "SISMEMBER", b.key("workers"), fresh); v != "1" {
		t.Fatal("a worker with a fresh heartbeat was pruned")
	}
}

// A panicking handler becomes a Resq::Panic failure with a backtrace, and the
// worker keeps serving.
func TestPanicBecomesFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	var ok atomic.Bool
	w.HandleFunc("Panic", func(ctx context.Context, j *resq.Job) error { panic("kaboom") })
	w.HandleFunc("Fine", func(ctx context.Context, j *resq.Job) error { ok.Store(true); return nil })
	b.client.Enqueue(ctx, "q", "Panic")
	b.client.Enqueue(ctx, "q", "Fine")
	testkit.RunWorker(t, w)
	testkit.Eventually(t, "job after panic", ok.Load)
	fs, _ := b.admin.Failures(ctx, 0, 1)
	if len(fs) != 1 || fs[0].Exception != resq.ExceptionPanic || fs[0].Error != "panic: kaboom" || len(fs[0].Backtrace) == 0 {
		t.Fatalf("failures = %+v", fs)
	}
}

// The job timeout cancels the handler's context and records a timeout.
func TestJobTimeout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	w.HandleFunc("Hang", func(ctx context.Context, j *resq.Job) error {
		<-ctx.Done()
		return ctx.Err()
	}, resq.HandlerOptions{Timeout: 50 * time.Millisecond})
	b.client.Enqueue(ctx, "q", "Hang")
	testkit.RunWorker(t, w)
	testkit.Eventually(t, "timeout failure", func() bool { n, _ := b.admin.FailureCount(ctx); return n == 1 })
	fs, _ := b.admin.Failures(ctx, 0, 1)
	if fs[0].Exception != resq.ExceptionTimeout || !strings.Contains(fs[0].Error, "timeout after 50ms") {
		t.Fatalf("failure = %+v", fs[0])
	}
}

// Middleware runs outermost first, can skip a job (DontPerform: processed,
// not failed) and sees failures (on_failure).
func TestMiddleware(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var trace []string
	var failures atomic.Int64
	mw := func(name string) resq.Middleware {
		return func(next resq.HandlerFunc) resq.HandlerFunc {
			return func(ctx context.Context, j *resq.Job) error {
				trace = append(trace, name+">")
				if name == "outer" && j.Class == "Skip" {
					return resq.ErrDontPerform
				}
				err := next(ctx, j)
				if err != nil && name == "outer" {
					failures.Add(1)
				}
				trace = append(trace, "<"+name)
				return err
			}
		}
	}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Middleware: []resq.Middleware{mw("outer"), mw("inner")}})
	w.HandleFunc("Run", func(ctx context.Context, j *resq.Job) error { trace = append(trace, "run"); return nil })
	w.HandleFunc("Skip", func(ctx context.Context, j *resq.Job) error { t.Error("skipped job ran"); return nil })
	w.HandleFunc("Bad", func(ctx context.Context, j *resq.Job) error { return errors.New("bad") })
	b.client.Enqueue(ctx, "q", "Run")
	b.client.Enqueue(ctx, "q", "Skip")
	b.client.Enqueue(ctx, "q", "Bad")
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "3 processed", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == 3 })
	stop()
	if got := strings.Join(trace[:5], " "); got != "outer> inner> run <inner <outer" {
		t.Fatalf("trace = %s", got)
	}
	st, _ := b.admin.Stats(ctx)
	if st.StatFailed != 1 || failures.Load() != 1 {
		t.Fatalf("failed = %d, on_failure saw %d; want 1 and 1", st.StatFailed, failures.Load())
	}
}

// Enqueue middleware can veto a push.
func TestEnqueueMiddlewareVeto(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	c := testkit.Client(t, b.conn, resq.ClientConfig{Middleware: []resq.EnqueueMiddleware{
		func(next resq.EnqueueFunc) resq.EnqueueFunc {
			return func(ctx context.Context, j *resq.Job) error {
				if j.Class == "Nope" {
					return resq.ErrDontEnqueue
				}
				return next(ctx, j)
			}
		},
	}})
	if _, err := c.Enqueue(ctx, "q", "Nope"); !errors.Is(err, resq.ErrDontEnqueue) {
		t.Fatalf("err = %v", err)
	}
	if _, err := c.Enqueue(ctx, "q", "Yes"); err != nil {
		t.Fatal(err)
	}
	if n, _ := b.admin.QueueSize(ctx, "q"); n != 1 {
		t.Fatalf("queue size %d, want 1", n)
	}
}

type validated struct {
	Email string `json:"email"`
}

func (v validated) Validate() error {
	if !strings.Contains(v.Email, "@") {
		return errors.New("email must contain @")
	}
	return nil
}

// Validate runs at enqueue (refused) and again before perform; wrong types
// and unknown fields are refused with a clear reason.
func TestStrictArgs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.client.Enqueue(ctx, "q", "Mail", validated{Email: "nope"}); !errors.Is(err, resq.ErrInvalidArgs) {
		t.Fatalf("enqueue of invalid args: err = %v", err)
	}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	resq.Handle(w, "Mail", func(ctx context.Context, v validated) error { return nil })
	for _, p := range []string{
		`{"class":"Mail","args":[{"email":"bad"}]}`,
		`{"class":"Mail","args":[{"email":5}]}`,
		`{"class":"Mail","args":[{"email":"a@b","admin":true}]}`,
		`{"class":"Mail","args":[]}`,
		`{"class":"Mail","args":[{"email":"a@b"}]}`,
	} {
		b.srv.Do(t, "RPUSH", b.key("queue:q"), p)
	}
	testkit.RunWorker(t, w)
	testkit.Eventually(t, "5 processed", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == 5 })
	fs, _ := b.admin.Failures(ctx, 0, 10)
	if len(fs) != 4 {
		t.Fatalf("failures = %d, want 4", len(fs))
	}
	wants := []string{"email must contain @", "cannot be decoded into string", `unknown field "admin"`, "expected 1 argument"}
	for i, f := range fs {
		if f.Exception != resq.ExceptionInvalidArgs || !strings.Contains(f.Error, wants[i]) {
			t.Errorf("failure %d = %s: %s; want %q", i, f.Exception, f.Error, wants[i])
		}
	}
}

// Redis going away: the worker retries and carries on after a restart; an
// enqueue while Redis is down returns an error.
func TestRedisRestartDuringRun(t *testing.T) {
	t.Parallel()
	b := setupPrivate(t)
	ctx := context.Background()
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 2, PollInterval: 20 * time.Millisecond})
	var ran atomic.Int64
	w.HandleFunc("Job", func(ctx context.Context, j *resq.Job) error { ran.Add(1); return nil })
	b.client.Enqueue(ctx, "q", "Job")
	testkit.RunWorker(t, w)
	testkit.Eventually(t, "first job", func() bool { return ran.Load() == 1 })
	b.srv.Kill(t)
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err := b.client.Enqueue(tctx, "q", "Job")
	cancel()
	if err == nil {
		t.Fatal("enqueue with Redis down returned no error")
	}
	time.Sleep(300 * time.Millisecond) // the worker sees the outage
	b.srv.Restart(t)                   // no persistence: registration is gone too
	if _, err := b.client.Enqueue(ctx, "q", "Job"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "job after restart", func() bool { return ran.Load() == 2 })
	// The worker registers itself again after the restart wiped its ids.
	testkit.Eventually(t, "re-registration", func() bool {
		st, _ := b.admin.Stats(ctx)
		return st.Workers == 2
	})
}

// An idle worker is woken by a job pushed to an empty queue through its
// blocking pickup, not by polling: with an hour-long poll interval it still
// runs the job.
func TestBlockingPickupWakesIdleWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w := newWorker(t, b, resq.WorkerConfig{Queues: []string{"hi", "lo"}, Concurrency: 2, PollInterval: time.Hour})
	got := make(chan string, 4)
	w.HandleFunc("Job", func(ctx context.Context, j *resq.Job) error { got <- j.Queue; return nil })
	testkit.RunWorker(t, w)
	time.Sleep(200 * time.Millisecond) // the worker has polled, found nothing, and waits
	for _, q := range []string{"lo", "hi"} {
		if _, err := b.client.Enqueue(ctx, q, "Job"); err != nil {
			t.Fatal(err)
		}
		select {
		case g := <-got:
			if g != q {
				t.Fatalf("ran a job from %s, want %s", g, q)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("idle worker did not pick up a job pushed to %s", q)
		}
	}
	if v := b.srv.Do(t, "KEYS", b.key("resq:pickup:*")); v != "" {
		t.Fatalf("pickup lists left: %s", v)
	}
}

// Jobs parked in a dead worker's pickup list go back to the head of their
// queue.
func TestDeadWorkersPickupListIsReturned(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	host, _ := os.Hostname()
	dead := host + ":999998:q"
	b.srv.Do(t, "SADD", b.key("workers"), dead)
	b.srv.Do(t, "RPUSH", b.key("resq:pickup:"+host+":999998:q"), `{"class":"Job","args":["parked"]}`)
	b.srv.Do(t, "RPUSH", b.key("queue:q"), `{"class":"Job","args":["queued"]}`)
	res, err := b.admin.Prune(ctx, 0, resq.RequeueDeadJobs)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requeued != 1 || len(res.Pruned) != 1 {
		t.Fatalf("prune = %+v", res)
	}
	if v := b.srv.Do(t, "LRANGE", b.key("queue:q"), "0", "-1"); v != "{\"class\":\"Job\",\"args\":[\"parked\"]}\n{\"class\":\"Job\",\"args\":[\"queued\"]}" {
		t.Fatalf("queue = %q", v)
	}
}

// A record already on one of this process's own slot ids (a crashed process
// that had the same pid, or a fetch whose reply was lost) is run, not
// overwritten by the slot's first fetch; then the slot takes the queue's jobs.
func TestHeldRecordOnOwnSlotRuns(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 2})
	ids := w.IDs()
	b.srv.Do(t, "SET", b.key("worker:"+ids[1]), `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":{"class":"Work","args":[1],"id":"held"}}`)
	b.srv.Do(t, "RPUSH", b.key("queue:q"), `{"class":"Work","args":[2]}`, `{"class":"Work","args":[3]}`)
	got := make(chan string, 3)
	w.HandleFunc("Work", func(ctx context.Context, j *resq.Job) error { got <- string(j.Args); return nil })
	testkit.RunWorker(t, w)
	seen := map[string]bool{}
	for range 3 {
		select {
		case a := <-got:
			seen[a] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("ran only %v", seen)
		}
	}
	if !seen["[1]"] || !seen["[2]"] || !seen["[3]"] {
		t.Fatalf("ran %v; want [1], [2] and [3]", seen)
	}
	testkit.Eventually(t, "records cleared", func() bool {
		return b.srv.Do(t, "EXISTS", b.key("worker:"+ids[0]), b.key("worker:"+ids[1])) == "0"
	})
	if v := b.srv.Do(t, "GET", b.key("stat:processed")); v != "3" {
		t.Errorf("stat:processed = %s, want 3", v)
	}
}

// A typed handler decodes the Args it is given: middleware that replaces
// them is honoured (the worker's own split of the original args is not reused).
func TestMiddlewareReplacesArgs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	rewrite := func(next resq.HandlerFunc) resq.HandlerFunc {
		return func(ctx context.Context, j *resq.Job) error {
			j.Args = json.RawMessage(`[{"n":2}]`)
			return next(ctx, j)
		}
	}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Middleware: []resq.Middleware{rewrite}})
	got := make(chan int, 2)
	type arg struct {
		N int `json:"n"`
	}
	resq.Handle(w, "Typed", func(ctx context.Context, a arg) error { got <- a.N; return nil })
	if _, err := b.client.Enqueue(ctx, "q", "Typed", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}
	testkit.RunWorker(t, w)
	select {
	case n := <-got:
		if n != 2 {
			t.Fatalf("handler got n=%d; want the middleware's 2", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not run")
	}
}
