package resq_test

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
)

// retryKeys lists the namespace's resque-retry counters and failure keys.
func retryKeys(t *testing.T, b *bundle) string {
	t.Helper()
	return b.srv.Do(t, "KEYS", b.key("*resque-retry*"))
}

// A job failing twice then succeeding runs three times, with attempts 0, 1
// and 2, and leaves no failure record and no retry key; with and without
// Lua.
func TestRetryFailTwiceThenSucceed(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"lua", "plain"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var b *bundle
			if mode == "lua" {
				b = setup(t)
			} else {
				b = noScriptsBundle(t)
			}
			ctx := context.Background()
			w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1,
				Retry: resq.RetryConfig{Classes: map[string]resq.RetryPolicy{"Flaky": {Limit: 3}}}})
			var mu sync.Mutex
			var attempts []int
			w.HandleFunc("Flaky", func(ctx context.Context, j *resq.Job) error {
				mu.Lock()
				defer mu.Unlock()
				attempts = append(attempts, j.Attempt)
				if len(attempts) <= 2 {
					return errors.New("temporary")
				}
				return nil
			})
			testkit.RunWorker(t, w)
			if _, err := b.client.Enqueue(ctx, "q", "Flaky", "a", 1); err != nil {
				t.Fatal(err)
			}
			testkit.Eventually(t, "three runs", func() bool {
				st, err := b.admin.Stats(ctx)
				return err == nil && st.Processed == 3 && st.Working == 0
			})
			mu.Lock()
			got := fmt.Sprint(attempts)
			mu.Unlock()
			if got != "[0 1 2]" {
				t.Errorf("attempts %s, want [0 1 2]", got)
			}
			if n := b.srv.Do(t, "LLEN", b.key("failed")); n != "0" {
				t.Errorf("%s failure records, want none", n)
			}
			if k := retryKeys(t, b); k != "" {
				t.Errorf("retry keys left: %s", k)
			}
		})
	}
}

// A job exceeding its limit leaves exactly one failure record, with the
// number of attempts, and no retry key.
func TestRetryLimitExceeded(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Retry: resq.RetryConfig{Default: &resq.RetryPolicy{Limit: 2}}})
	var runs atomic.Int32
	w.HandleFunc("Broken", func(ctx context.Context, j *resq.Job) error { runs.Add(1); return errors.New("always") })
	testkit.RunWorker(t, w)
	if _, err := b.client.Enqueue(ctx, "q", "Broken"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "one failure record", func() bool { return b.srv.Do(t, "LLEN", b.key("failed")) == "1" })
	time.Sleep(200 * time.Millisecond) // a further run would show now
	if n := runs.Load(); n != 3 {
		t.Errorf("ran %d times, want 3 (limit 2 = two retries)", n)
	}
	var rec struct {
		Error    string `json:"error"`
		Attempts int    `json:"attempts"`
	}
	if err := json.Unmarshal([]byte(b.srv.Do(t, "LINDEX", b.key("failed"), "0")), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Attempts != 3 || !strings.HasSuffix(rec.Error, "always (gave up after 3 attempts)") {
		t.Errorf("record = %+v", rec)
	}
	if n := b.srv.Do(t, "LLEN", b.key("failed")); n != "1" {
		t.Errorf("%s failure records, want 1", n)
	}
	if k := retryKeys(t, b); k != "" {
		t.Errorf("retry keys left: %s", k)
	}
	if st, _ := b.admin.Stats(ctx); st.StatFailed != 3 || st.Processed != 3 {
		t.Errorf("stat:failed %d, processed %d; want 3, 3 (Ruby counts every failed run)", st.StatFailed, st.Processed)
	}
}

var errFatal = errors.New("bad input")

// Fatal errors, NoRetry, RetryOn and RetryIfFunc stop retries at once;
// RetryIn overrides the backoff.
func TestRetryFatalErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	errTransient := errors.New("transient")
	pol := resq.RetryPolicy{Limit: 5, Fatal: []error{errFatal}, Backoff: resq.Backoff{Delays: []time.Duration{time.Hour}}}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Retry: resq.RetryConfig{Default: &pol}})
	var mu sync.Mutex
	runs := map[string]int{}
	fail := func(class string, err error) {
		w.HandleFunc(class, func(ctx context.Context, j *resq.Job) error {
			mu.Lock()
			runs[class]++
			mu.Unlock()
			return err
		})
	}
	fail("Fatal", fmt.Errorf("wrapped: %w", errFatal))
	fail("NoRetry", resq.NoRetry(errTransient))
	only := resq.RetryPolicy{Limit: 5, RetryOn: []error{errTransient}}
	w.HandleFunc("NotListed", func(ctx context.Context, j *resq.Job) error {
		mu.Lock()
		runs["NotListed"]++
		mu.Unlock()
		return errFatal
	},
		resq.HandlerOptions{Retry: &only})
	pred := resq.RetryPolicy{Limit: 5, RetryIfFunc: func(err error) bool { return !strings.Contains(err.Error(), "permanent") }}
	w.HandleFunc("Pred", func(ctx context.Context, j *resq.Job) error {
		mu.Lock()
		runs["Pred"]++
		mu.Unlock()
		return errors.New("permanent")
	},
		resq.HandlerOptions{Retry: &pred})
	var retryInRuns atomic.Int32
	w.HandleFunc("RetryIn", func(ctx context.Context, j *resq.Job) error {
		if retryInRuns.Add(1) == 1 {
			return resq.RetryIn(0, errTransient) // at once, not in an hour
		}
		return nil
	})
	testkit.RunWorker(t, w)
	for _, c := range []string{"Fatal", "NoRetry", "NotListed", "Pred", "RetryIn"} {
		if _, err := b.client.Enqueue(ctx, "q", c); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, "four failures, RetryIn done", func() bool {
		return b.srv.Do(t, "LLEN", b.key("failed")) == "4" && retryInRuns.Load() == 2
	})
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(runs) != "map[Fatal:1 NoRetry:1 NotListed:1 Pred:1]" {
		t.Errorf("runs %v, want one each", runs)
	}
	if n := b.srv.Do(t, "ZCARD", b.key("delayed_queue_schedule")); n != "0" {
		t.Errorf("%s delayed timestamps, want none", n)
	}
	if k := retryKeys(t, b); k != "" {
		t.Errorf("retry keys left: %s", k)
	}
}

// A retry is a delayed item on resque-scheduler's keys at the due second,
// in Ruby's item format for a Ruby job, with resque-retry's failure record
// beside it; the Scheduler moves it and the job then succeeds.
func TestRetryThroughDelayedQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const delay = 2 * time.Second
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Retry: resq.RetryConfig{Classes: map[string]resq.RetryPolicy{
		"Mailer": {Limit: 3, Backoff: resq.Backoff{Delays: []time.Duration{delay}}}}}})
	var runs atomic.Int32
	failedAt := make(chan time.Time, 1)
	w.HandleFunc("Mailer", func(ctx context.Context, j *resq.Job) error {
		if runs.Add(1) == 1 {
			failedAt <- time.Now()
			return errors.New("smtp down")
		}
		return nil
	})
	// As Ruby's Resque.enqueue writes it.
	b.srv.Do(t, "SADD", b.key("queues"), "q")
	b.srv.Do(t, "RPUSH", b.key("queue:q"), `{"class":"Mailer","args":["x@example.com",7]}`)
	testkit.RunWorker(t, w)
	at := <-failedAt
	testkit.Eventually(t, "the retry in the schedule", func() bool { return b.srv.Do(t, "ZCARD", b.key("delayed_queue_schedule")) == "1" })
	ts, _ := strconv.ParseInt(b.srv.Do(t, "ZRANGE", b.key("delayed_queue_schedule"), "0", "0"), 10, 64)
	if want := at.Add(delay).Unix(); ts < want-1 || ts > want+1 {
		t.Errorf("due %d, want %d±1", ts, want)
	}
	item := `{"class":"Mailer","args":["x@example.com",7],"queue":"q"}`
	if got := b.srv.Do(t, "LRANGE", b.key("delayed:"+strconv.FormatInt(ts, 10)), "0", "-1"); got != item {
		t.Errorf("delayed item %s, want %s", got, item)
	}
	if got := b.srv.Do(t, "SMEMBERS", b.key("timestamps:"+item)); got != "delayed:"+strconv.FormatInt(ts, 10) {
		t.Errorf("timestamps index %s", got)
	}
	// Ruby: "x@example.com-7", SHA-1 by hand (printf 'x@example.com-7' | sha1sum).
	key := b.key("resque-retry:Mailer:f1c557a801fd2cdaceb7d1c3ca9a5e55a7a7a808")
	if b.srv.Do(t, "GET", key) != "0" {
		t.Errorf("counter %s = %s, want 0 (the first run)", key, b.srv.Do(t, "GET", key))
	}
	fkey := b.key("failure-resque-retry:Mailer:f1c557a801fd2cdaceb7d1c3ca9a5e55a7a7a808")
	if ttl, _ := strconv.Atoi(b.srv.Do(t, "TTL", fkey)); ttl < 2 || ttl > 4 {
		t.Errorf("failure key TTL %d, want about twice the delay", ttl)
	}
	if rec := b.srv.Do(t, "GET", fkey); !strings.Contains(rec, `"error":"smtp down"`) || !strings.Contains(rec, `"payload":{"class":"Mailer"`) {
		t.Errorf("failure-resque-retry record %s", rec)
	}
	if b.srv.Do(t, "LLEN", b.key("failed")) != "0" {
		t.Error("a failure was recorded for a job being retried")
	}
	runScheduler(t, b, resq.SchedulerConfig{})
	testkit.Eventually(t, "the retry ran", func() bool { return runs.Load() == 2 })
	testkit.Eventually(t, "no retry keys", func() bool { return retryKeys(t, b) == "" })
	if n := b.srv.Do(t, "LLEN", b.key("failed")); n != "0" {
		t.Errorf("%s failure records after the retry succeeded", n)
	}
}

// A counter left by Ruby's resque-retry is continued: the job's next run
// is attempt 3, and with limit 3 its failure is the last.
func TestRetryContinuesRubyCounter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// Ruby: [42, "x"].join('-') = "42-x"; SHA-1 computed with sha1sum.
	key := b.key("resque-retry:Charge:51aff26e6c51e232060faacfb4a29176e370f5cf")
	b.srv.Do(t, "SET", key, "2")
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Retry: resq.RetryConfig{Default: &resq.RetryPolicy{Limit: 3}}})
	got := make(chan int, 2)
	w.HandleFunc("Charge", func(ctx context.Context, j *resq.Job) error { got <- j.Attempt; return errors.New("declined") })
	testkit.RunWorker(t, w)
	if _, err := b.client.Enqueue(ctx, "q", "Charge", 42, "x"); err != nil {
		t.Fatal(err)
	}
	if a := <-got; a != 3 {
		t.Errorf("attempt %d, want 3", a)
	}
	testkit.Eventually(t, "the failure recorded", func() bool { return b.srv.Do(t, "LLEN", b.key("failed")) == "1" })
	if rec := b.srv.Do(t, "LINDEX", b.key("failed"), "0"); !strings.Contains(rec, `"attempts":4`) {
		t.Errorf("record %s", rec)
	}
	if b.srv.Do(t, "EXISTS", key) != "0" {
		t.Error("the counter was not deleted on give-up")
	}
}

// A worker stopped with Redis down while writing a retry loses nothing:
// the retry and the clearing of the in-flight record are one MULTI, so the
// job is still in flight, and the next worker runs it (as attempt 1).
func TestRetryStoppedMidRetryLosesNothing(t *testing.T) {
	t.Parallel()
	b := setupOn(t, redistest.StartWith(t, redistest.Options{AppendOnly: true}))
	ctx := context.Background()
	pol := resq.RetryConfig{Default: &resq.RetryPolicy{Limit: 5, Backoff: resq.Backoff{Delays: []time.Duration{time.Hour}}}}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, PID: 999998, StopTimeout: 300 * time.Millisecond, Retry: pol})
	started, release := make(chan struct{}), make(chan struct{})
	w.HandleFunc("Work", func(ctx context.Context, j *resq.Job) error {
		close(started)
		<-release
		return errors.New("fails while Redis is down")
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
	close(release)
	sctx, scancel := context.WithTimeout(ctx, 15*time.Second)
	defer scancel()
	if err := w.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b.srv.Restart(t)
	if st, err := b.admin.Stats(ctx); err != nil || st.Working != 1 || b.srv.Do(t, "ZCARD", b.key("delayed_queue_schedule")) != "0" {
		t.Fatalf("after the stop: %+v, %v; want the job in flight and no retry written", st, err)
	}
	w2 := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Retry: pol})
	got := make(chan *resq.Job, 2)
	w2.HandleFunc("Work", func(ctx context.Context, j *resq.Job) error { got <- j; return nil })
	testkit.RunWorker(t, w2)
	select {
	case j := <-got:
		if j.ID != e.ID || j.Attempt != 1 {
			t.Fatalf("recovered job %s attempt %d, want %s attempt 1", j.ID, j.Attempt, e.ID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the job was lost")
	}
	testkit.Eventually(t, "no retry keys", func() bool { return retryKeys(t, b) == "" })
	if n := b.srv.Do(t, "LLEN", b.key("failed")); n != "0" {
		t.Errorf("%s failure records", n)
	}
}

// An ack carrying retries whose reply is lost is not written twice: every
// job's retry is in the delayed queue exactly once.
func TestRetryLostAckReplyWritesOnce(t *testing.T) {
	t.Parallel()
	b := setupPrivate(t)
	proxy, conn := connThroughDropReplyProxy(t, b)
	ctx := context.Background()
	const jobs = 40
	for i := range jobs {
		if _, err := b.client.Enqueue(ctx, "q", "Work", i); err != nil {
			t.Fatal(err)
		}
	}
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 3, Logger: testkit.Logger(t),
		Retry: resq.RetryConfig{Default: &resq.RetryPolicy{Limit: 1, Backoff: resq.Backoff{Delays: []time.Duration{time.Hour}}}}})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("Work", func(ctx context.Context, j *resq.Job) error { time.Sleep(time.Millisecond); return errors.New("later") })
	testkit.RunWorker(t, w)
	testkit.Eventually(t, "every job retried", func() bool {
		st, err := b.admin.Stats(ctx)
		return err == nil && st.Processed >= jobs && st.Working == 0 && st.Pending == 0
	})
	time.Sleep(100 * time.Millisecond)
	if !proxy.dropped.Load() {
		t.Fatal("the proxy never dropped an ack reply: the test proved nothing")
	}
	total := 0
	for _, ts := range strings.Fields(b.srv.Do(t, "ZRANGE", b.key("delayed_queue_schedule"), "0", "-1")) {
		n, _ := strconv.Atoi(b.srv.Do(t, "LLEN", b.key("delayed:"+ts)))
		total += n
	}
	if total != jobs {
		t.Fatalf("%d delayed retries, want %d (one per job)", total, jobs)
	}
	if st, _ := b.admin.Stats(ctx); st.Processed != jobs {
		t.Fatalf("processed %d, want %d", st.Processed, jobs)
	}
}

// A signed job's retry keeps its id and signature: after the move it
// verifies, and the replay window does not refuse it.
func TestRetrySignedKeepsID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	kr, _ := keyring(t, resq.KeyHMAC)
	c := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: kr})
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Keyring: kr, ReplayWindow: time.Hour,
		Retry: resq.RetryConfig{Default: &resq.RetryPolicy{Limit: 2, Backoff: resq.Backoff{Delays: []time.Duration{time.Second}}}}})
	ids := make(chan string, 3)
	var runs atomic.Int32
	w.HandleFunc("Signed", func(ctx context.Context, j *resq.Job) error {
		ids <- j.ID
		if runs.Add(1) == 1 {
			return errors.New("once")
		}
		if !j.Signed {
			return resq.NoRetry(errors.New("retry not signed"))
		}
		return nil
	})
	testkit.RunWorker(t, w)
	runScheduler(t, b, resq.SchedulerConfig{})
	e, err := c.Enqueue(ctx, "q", "Signed", "v")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		select {
		case id := <-ids:
			if id != e.ID {
				t.Errorf("run %d id %s, want %s", i, id, e.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("run %d did not happen", i)
		}
	}
	testkit.Eventually(t, "no retry keys", func() bool { return retryKeys(t, b) == "" })
	if n := b.srv.Do(t, "LLEN", b.key("failed")); n != "0" {
		t.Errorf("%s failure records: %s", n, b.srv.Do(t, "LINDEX", b.key("failed"), "0"))
	}
}

func TestRetryConfigErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, p := range []resq.RetryPolicy{
		{Limit: 1, Backoff: resq.Backoff{Jitter: 2}},
		{Limit: 1, Backoff: resq.Backoff{Base: time.Hour, Max: time.Second}},
		{Limit: 1, Backoff: resq.Backoff{Delays: []time.Duration{-time.Second}}},
	} {
		if _, err := resq.NewWorker(b.conn, resq.WorkerConfig{Retry: resq.RetryConfig{Classes: map[string]resq.RetryPolicy{"X": p}}}); err == nil {
			t.Errorf("policy %+v accepted", p)
		}
		w := newWorker(t, b, resq.WorkerConfig{})
		w.HandleFunc("X", func(ctx context.Context, j *resq.Job) error { return nil }, resq.HandlerOptions{Retry: &p})
		if err := w.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "retry policy of class X") {
			t.Errorf("Run with handler policy %+v: %v", p, err)
		}
	}
}

func TestBackoffDelay(t *testing.T) {
	t.Parallel()
	exp := resq.Backoff{Base: 10 * time.Second, Max: time.Minute}
	var got []time.Duration
	for n := 0; n < 5; n++ {
		got = append(got, exp.Delay(n))
	}
	if fmt.Sprint(got) != "[10s 20s 40s 1m0s 1m0s]" {
		t.Errorf("exponential %v", got)
	}
	r := resq.ResqueBackoff()
	if r.Delay(0) != 0 || r.Delay(2) != 10*time.Minute || r.Delay(99) != 6*time.Hour {
		t.Errorf("resque strategy %v %v %v", r.Delay(0), r.Delay(2), r.Delay(99))
	}
}

// An encrypted job's retry stays encrypted, and its counter is keyed by
// its id, not by a hash of its secret args.
func TestRetryEncryptedKeyedByID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	kr, _ := keyring(t, resq.KeyHMAC)
	sealer := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: kr, EncryptAll: true})
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Keyring: kr,
		Retry: resq.RetryConfig{Default: &resq.RetryPolicy{Limit: 2, Backoff: resq.Backoff{Delays: []time.Duration{time.Hour}}}}})
	ran := make(chan string, 2)
	w.HandleFunc("Secret", func(ctx context.Context, j *resq.Job) error { ran <- string(j.Args); return errors.New("later") })
	testkit.RunWorker(t, w)
	e, err := sealer.Enqueue(ctx, "q", "Secret", "card-4242")
	if err != nil {
		t.Fatal(err)
	}
	if a := <-ran; a != `["card-4242"]` {
		t.Fatalf("args %s", a)
	}
	testkit.Eventually(t, "the retry delayed", func() bool { return b.srv.Do(t, "ZCARD", b.key("delayed_queue_schedule")) == "1" })
	ts := b.srv.Do(t, "ZRANGE", b.key("delayed_queue_schedule"), "0", "0")
	item := b.srv.Do(t, "LINDEX", b.key("delayed:"+ts), "0")
	if strings.Contains(item, "card-4242") || !strings.Contains(item, `"enc":{`) || !strings.Contains(item, `"id":"`+e.ID+`"`) {
		t.Errorf("retry item %s", item)
	}
	want := b.key("resque-retry:Secret:" + wireSHA1("id-"+e.ID))
	if keys := retryKeys(t, b); !strings.Contains(keys, want) || strings.Contains(b.srv.Do(t, "GET", b.key("failure-resque-retry:Secret:"+wireSHA1("id-"+e.ID))), "card-4242") {
		t.Errorf("retry keys %s, want %s and a record without the args", keys, want)
	}
}

func wireSHA1(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// A counter that is not an integer fails the job without running it, with
// a record that says why (nothing loops, nothing is lost).
func TestRetryBadCounter(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.srv.Do(t, "SET", b.key("resque-retry:Job:"+wireSHA1("1")), "not-a-number")
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Retry: resq.RetryConfig{Default: &resq.RetryPolicy{Limit: 3}}})
	var runs atomic.Int32
	w.HandleFunc("Job", func(ctx context.Context, j *resq.Job) error { runs.Add(1); return nil })
	testkit.RunWorker(t, w)
	if _, err := b.client.Enqueue(ctx, "q", "Job", 1); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the failure recorded", func() bool { return b.srv.Do(t, "LLEN", b.key("failed")) == "1" })
	if rec := b.srv.Do(t, "LINDEX", b.key("failed"), "0"); !strings.Contains(rec, `"exception":"`+resq.ExceptionRetryCount+`"`) || !strings.Contains(rec, "the job was not run") {
		t.Errorf("record %s", rec)
	}
	if runs.Load() != 0 {
		t.Error("the job ran")
	}
}
