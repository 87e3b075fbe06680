package resq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/resq-go/resq/internal/testkit"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resq-go/resq"
)

// runScheduler starts a Scheduler on b and stops it at cleanup.
func runScheduler(t *testing.T, b *bundle, cfg resq.SchedulerConfig) *resq.Scheduler {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "test:" + b.ns
	}
	s, err := resq.NewScheduler(b.conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scheduler: %v", err)
		}
	})
	return s
}

// EnqueueAt stores Ruby's item byte for byte (TV-15) with no resq fields;
// a time in the current second or before enqueues now (as Ruby does).
func TestEnqueueAtStoresRubyItem(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	at := time.Now().Add(time.Hour).Truncate(time.Second).Add(300 * time.Millisecond)
	e, err := b.client.EnqueueAt(ctx, at, "email", "SendFollowUpEmail", map[string]any{"user_id": 42})
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "" || e.Queue != "email" {
		t.Errorf("Enqueued = %+v; an unsigned delayed job has no id", e)
	}
	ts := fmt.Sprint(at.Unix())
	item := `{"class":"SendFollowUpEmail","args":[{"user_id":42}],"queue":"email"}`
	if got := b.srv.Do(t, "LRANGE", b.key("delayed:"+ts), "0", "-1"); got != item {
		t.Errorf("item = %s, want %s", got, item)
	}
	if got := b.srv.Do(t, "SMEMBERS", b.key("timestamps:"+item)); got != "delayed:"+ts {
		t.Errorf("reverse index = %q", got)
	}
	if got := b.srv.Do(t, "ZRANGE", b.key("delayed_queue_schedule"), "0", "-1", "WITHSCORES"); got != ts+"\n"+ts {
		t.Errorf("schedule = %q", got)
	}
	if got := b.srv.Do(t, "EXISTS", b.key("queue:email"), b.key("queues")); got != "0" {
		t.Errorf("the delayed job was also enqueued now")
	}
	// Now (this second) and the past: enqueued at once, with resq's id.
	for _, when := range []time.Time{time.Now(), time.Now().Add(-time.Hour)} {
		e, err := b.client.EnqueueAt(ctx, when, "now", "X", 1)
		if err != nil || e.ID == "" {
			t.Fatalf("EnqueueAt(now) = %+v, %v", e, err)
		}
	}
	if _, err := b.client.EnqueueIn(ctx, 0, "now", "X", 2); err != nil {
		t.Fatal(err)
	}
	if got := b.srv.Do(t, "LLEN", b.key("queue:now")); got != "3" {
		t.Errorf("queue:now has %s jobs, want 3", got)
	}
	if _, err := b.client.EnqueueAt(ctx, time.Time{}, "q", "X"); err == nil {
		t.Error("EnqueueAt with a zero time did not fail")
	}
	if _, err := b.client.EnqueueIn(ctx, time.Hour, "", "X"); err == nil || !strings.Contains(err.Error(), "NoQueueError") {
		t.Errorf("no queue: %v", err)
	}
}

// Delayed jobs from resq (single and batch), from Ruby (raw items as Ruby
// writes them: enqueue_at_with_queue, ActiveJob's set(wait:), a null queue
// resolved by ClassQueues) and in node-resque's key order are moved by the
// Scheduler and run by a worker; a null queue without a mapping becomes a
// failure record.
func TestDelayedJobsRun(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	past := fmt.Sprint(time.Now().Add(-10 * time.Second).Unix())
	raw := func(ts, item string) {
		b.srv.Do(t, "RPUSH", b.key("delayed:"+ts), item)
		b.srv.Do(t, "SADD", b.key("timestamps:"+item), "delayed:"+ts)
		b.srv.Do(t, "ZADD", b.key("delayed_queue_schedule"), ts, ts)
	}
	raw(past, `{"class":"Echo","args":["ruby"],"queue":"q"}`)
	raw(past, `{"class":"Echo","queue":"q","args":["node"]}`)
	raw(past, `{"class":"Echo","args":["mapped"],"queue":null}`)
	raw(past, `{"class":"Unmapped","args":[],"queue":null}`)
	aj := `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"ArchiveJob","job_id":"5b1f","arguments":[44],"executions":0}],"queue":"q"}`
	raw(past, aj)
	if _, err := b.client.EnqueueIn(ctx, 1500*time.Millisecond, "q", "Echo", "resq-in"); err != nil {
		t.Fatal(err)
	}
	res, err := b.client.EnqueueBatch(ctx, []resq.EnqueueParams{
		{Queue: "q", Class: "Echo", Args: []any{"batch-now"}},
		{Queue: "q", Class: "Echo", Args: []any{"batch-later"}, At: time.Now().Add(time.Second)},
	})
	if err != nil || res[0].Job.ID == "" || res[1].Job.ID != "" {
		t.Fatalf("batch = %+v, %v", res, err)
	}
	var mu sync.Mutex
	ran := map[string]int{}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 2})
	resq.Handle(w, "Echo", func(ctx context.Context, s string) error { mu.Lock(); ran[s]++; mu.Unlock(); return nil })
	resq.Handle(w, "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper", func(ctx context.Context, m map[string]any) error {
		mu.Lock()
		ran["aj:"+fmt.Sprint(m["job_class"])]++
		mu.Unlock()
		return nil
	})
	testkit.RunWorker(t, w)
	s := runScheduler(t, b, resq.SchedulerConfig{ClassQueues: map[string]string{"Echo": "q"}})
	want := map[string]int{"ruby": 1, "node": 1, "mapped": 1, "resq-in": 1, "batch-now": 1, "batch-later": 1, "aj:ArchiveJob": 1}
	testkit.Eventually(t, "every delayed job run", func() bool { mu.Lock(); defer mu.Unlock(); return fmt.Sprint(ran) == fmt.Sprint(want) })
	testkit.Eventually(t, "the schedule emptied", func() bool { return b.srv.Do(t, "EXISTS", b.key("delayed_queue_schedule")) == "0" })
	if !s.Master() {
		t.Error("the only scheduler is not master")
	}
	if moved, failed := s.Moved(); moved != 6 || failed != 1 {
		t.Errorf("moved %d, failed %d; want 6, 1", moved, failed)
	}
	fails, err := b.admin.Failures(ctx, 0, 10)
	if err != nil || len(fails) != 1 || fails[0].Exception != "Resque::NoQueueError" || fails[0].Job.Class != "Unmapped" {
		t.Errorf("failures = %+v, %v", fails, err)
	}
	if m, _ := b.admin.SchedulerMaster(ctx, ""); m != "test:"+b.ns {
		t.Errorf("master = %q", m)
	}
}

// Signed and encrypted delayed jobs keep their envelope; after the move
// the payload is what Enqueue pushes, so the worker verifies and decrypts
// it. The signature covers the target queue and the due time.
func TestDelayedSignedEncrypted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	k, _ := keyring(t, resq.KeyHMAC)
	signer := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: k})
	sealer := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: k, EncryptAll: true})
	at := time.Now().Add(1200 * time.Millisecond)
	e1, err := signer.EnqueueAt(ctx, at, "q", "Echo", "signed")
	if err != nil || e1.ID == "" {
		t.Fatalf("signed: %+v, %v", e1, err)
	}
	e2, err := sealer.EnqueueAt(ctx, at, "q", "Echo", "sealed")
	if err != nil || e2.ID == "" {
		t.Fatal(err)
	}
	items := strings.Split(b.srv.Do(t, "LRANGE", b.key(fmt.Sprint("delayed:", at.Unix())), "0", "-1"), "\n")
	if len(items) != 2 || !strings.HasPrefix(items[0], `{"class":"Echo","args":["signed"],"queue":"q","id":"`+e1.ID+`","enqueued_at":`+fmt.Sprint(at.Unix())+`,"kid":`) ||
		!strings.HasPrefix(items[1], `{"class":"Echo","args":[],"queue":"q","id":"`+e2.ID+`"`) || !strings.Contains(items[1], `"enc":{`) {
		t.Fatalf("items = %q", items)
	}
	if strings.Contains(items[1], "sealed") {
		t.Error("the encrypted item shows its args")
	}
	var mu sync.Mutex
	got := map[string]string{}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Keyring: k})
	w.HandleFunc("Echo", func(ctx context.Context, j *resq.Job) error {
		var a []string
		json.Unmarshal(j.Args, &a)
		mu.Lock()
		got[j.ID] = fmt.Sprint(a, j.Signed, j.Encrypted)
		mu.Unlock()
		return nil
	})
	testkit.RunWorker(t, w)
	runScheduler(t, b, resq.SchedulerConfig{})
	testkit.Eventually(t, "both run", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	if got[e1.ID] != "[signed] true false" || got[e2.ID] != "[sealed] true true" {
		t.Errorf("ran %v", got)
	}
	if n, _ := b.admin.FailureCount(ctx); n != 0 {
		fs, _ := b.admin.Failures(ctx, 0, 5)
		t.Errorf("failures: %+v", fs)
	}
}

// Admin: count, list (paging, filters), remove (Ruby's exact remove_delayed
// through the reverse index, and by filter), enqueue-now.
func TestDelayedAdmin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	base := time.Now().Add(time.Hour).Truncate(time.Second)
	for i := range 5 {
		if _, err := b.client.EnqueueAt(ctx, base.Add(time.Duration(i/2)*time.Minute), "q", "A", i); err != nil {
			t.Fatal(err)
		}
	}
	b.client.EnqueueAt(ctx, base, "other", "B", "x")
	st, err := b.admin.DelayedCount(ctx)
	if err != nil || st.Timestamps != 3 || st.Jobs != 6 {
		t.Errorf("count = %+v, %v", st, err)
	}
	tss, err := b.admin.DelayedTimestamps(ctx, resq.DelayedFilter{}, 1, 5)
	if err != nil || len(tss) != 2 || tss[0].Jobs != 2 || !tss[0].At.Equal(base.Add(time.Minute)) {
		t.Errorf("timestamps = %+v, %v", tss, err)
	}
	page, err := b.admin.Delayed(ctx, resq.DelayedFilter{}, 3, 2)
	if err != nil || len(page) != 2 || string(page[0].Job.Args) != "[2]" || string(page[1].Job.Args) != "[3]" || page[1].Queue != "q" {
		t.Errorf("page = %+v, %v", page, err)
	}
	only, err := b.admin.Delayed(ctx, resq.DelayedFilter{Class: "A", Args: json.RawMessage(`[ 3 ]`)}, 0, -1)
	if err != nil || len(only) != 1 || !only[0].At.Equal(base.Add(time.Minute)) {
		t.Errorf("find = %+v, %v", only, err)
	}
	n, err := b.client.RemoveDelayed(ctx, "q", "A", 0)
	if err != nil || n != 1 {
		t.Errorf("RemoveDelayed = %d, %v", n, err)
	}
	n, err = b.admin.RemoveDelayed(ctx, resq.DelayedFilter{Class: "A", From: base.Add(2 * time.Minute)})
	if err != nil || n != 1 {
		t.Errorf("Admin.RemoveDelayed = %d, %v", n, err)
	}
	moved, err := b.admin.EnqueueDelayedNow(ctx, resq.DelayedFilter{Queue: "other"}, nil)
	if err != nil || moved != 1 {
		t.Errorf("EnqueueDelayedNow = %d, %v", moved, err)
	}
	if got := b.srv.Do(t, "LRANGE", b.key("queue:other"), "0", "-1"); got != `{"class":"B","args":["x"]}` {
		t.Errorf("queue:other = %s", got)
	}
	st, _ = b.admin.DelayedCount(ctx)
	if st.Jobs != 3 {
		t.Errorf("jobs left = %d, want 3", st.Jobs)
	}
}

// Without Lua (a Redis user without @scripting) delayed jobs are stored,
// moved and run the same way.
func TestDelayedNoScripts(t *testing.T) {
	t.Parallel()
	b := noScriptsBundle(t)
	ctx := context.Background()
	if _, err := b.client.EnqueueIn(ctx, time.Second, "q", "Echo", "plain"); err != nil {
		t.Fatal(err)
	}
	ran := make(chan string, 1)
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	resq.Handle(w, "Echo", func(ctx context.Context, s string) error { ran <- s; return nil })
	testkit.RunWorker(t, w)
	runScheduler(t, b, resq.SchedulerConfig{})
	select {
	case s := <-ran:
		if s != "plain" {
			t.Errorf("ran %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the delayed job did not run without Lua")
	}
}

func TestSchedulerConfigErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []resq.SchedulerConfig{
		{LockTTL: 2 * time.Second, Refresh: 2 * time.Second},
		{LockTTL: 100 * time.Millisecond, Refresh: 10 * time.Millisecond},
		{ClassQueues: map[string]string{"A": ""}},
	} {
		if _, err := resq.NewScheduler(b.conn, c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
