package resq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// The delayed-job, retry, scheduler and recurring-schedule paths of each
// role, run under the role's generated user with and without @scripting;
// any denial in ACL LOG fails the test.
func TestACLRolesDelayed(t *testing.T) {
	t.Parallel()
	runACLRoles(t, map[string]func(*testing.T, bool){
		"producer": aclProducerDelayed, "worker": aclWorkerRetryScheduler, "scheduler": aclScheduler,
		"viewer": aclViewerDelayed, "admin": aclAdminDelayed,
	})
}

// aclRunScheduler runs a Scheduler on conn until the returned stop is
// called (or cleanup); stop returns Run's error.
func aclRunScheduler(t *testing.T, conn *resq.Conn, cfg resq.SchedulerConfig) (*resq.Scheduler, func() error) {
	t.Helper()
	s, err := resq.NewScheduler(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var stopped bool
	var res error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			res = <-done
		}
		return res
	}
	t.Cleanup(func() { stop() })
	return s, stop
}

// rawDelayed stores a delayed item as Ruby's delayed_push does.
func rawDelayed(t *testing.T, b *bundle, ts int64, item string) {
	t.Helper()
	s := fmt.Sprint(ts)
	b.srv.Do(t, "RPUSH", b.key("delayed:"+s), item)
	b.srv.Do(t, "SADD", b.key("timestamps:"+item), "delayed:"+s)
	b.srv.Do(t, "ZADD", b.key("delayed_queue_schedule"), s, s)
}

func aclProducerDelayed(t *testing.T, scripting bool) {
	b := setup(t)
	ctx := context.Background()
	conn, user := aclConn(t, b, resq.ACLProducer, scripting)
	cl := testkit.Client(t, conn, resq.ClientConfig{})
	at := time.Now().Add(time.Hour)
	if _, err := cl.EnqueueAt(ctx, at, "q", "Later", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.EnqueueIn(ctx, time.Hour, "q", "Later", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.EnqueueIn(ctx, time.Hour, "q", "Gone", 3); err != nil {
		t.Fatal(err)
	}
	res, err := cl.EnqueueBatch(ctx, []resq.EnqueueParams{{Queue: "q", Class: "Now"}, {Queue: "q", Class: "Later", Args: []any{4}, At: at}})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("batch: %v %+v", err, res)
	}
	if _, err := cl.EnqueueActiveJob(ctx, "q", "ArchiveJob", 44); err != nil {
		t.Fatal(err)
	}
	if n, err := cl.RemoveDelayed(ctx, "q", "Gone", 3); err != nil || n != 1 {
		t.Fatalf("RemoveDelayed = %d, %v", n, err)
	}
	checkNoDenials(t, b.srv, user, scripting)
	if st, _ := b.admin.DelayedCount(ctx); st.Jobs != 3 {
		t.Errorf("delayed jobs = %+v, want 3", st)
	}
	if n := b.srv.Do(t, "LLEN", b.key("queue:q")); n != "2" {
		t.Errorf("queue q holds %s jobs, want 2", n)
	}

	// A producer cannot take the master lock, move delayed jobs or read
	// the dashboard's delayed views.
	rawDelayed(t, b, time.Now().Add(-time.Minute).Unix(), `{"class":"Due","args":[],"queue":"q"}`)
	ps, err := resq.NewScheduler(conn, resq.SchedulerConfig{Name: "producer-sched", Refresh: 200 * time.Millisecond, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = ps.Run(sctx)
	if sctx.Err() != nil {
		t.Error("a scheduler on the producer's user still runs after 20 s")
	}
	mustNoperm(t, "producer running a scheduler", err)
	adm := resq.NewAdmin(conn)
	_, err = adm.EnqueueDelayedNow(ctx, resq.DelayedFilter{Class: "Due"}, nil)
	mustNoperm(t, "producer EnqueueDelayedNow", err)
	if v := b.srv.Do(t, "EXISTS", b.key(b.ns+":resque_scheduler_master_lock")); v != "0" {
		t.Error("the producer's scheduler holds the master lock")
	}
	if n := b.srv.Do(t, "LLEN", b.key("queue:q")); n != "2" {
		t.Errorf("queue q holds %s jobs after the producer's attempts, want 2 (the due job moved)", n)
	}
}

// The worker role includes the scheduler's rules, since resq work runs a
// scheduler in-process unless --no-scheduler: a worker with retries
// through the delayed queue and a Scheduler share one worker user.
func aclWorkerRetryScheduler(t *testing.T, scripting bool) {
	b := setup(t)
	ctx := context.Background()
	conn, user := aclConn(t, b, resq.ACLWorker, scripting)
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 2, Logger: testkit.Logger(t),
		HeartbeatInterval: 100 * time.Millisecond, PollInterval: 50 * time.Millisecond,
		Retry: resq.RetryConfig{Classes: map[string]resq.RetryPolicy{
			"Flaky":  {Limit: 3, Backoff: resq.Backoff{Delays: []time.Duration{time.Second}}},
			"Broken": {Limit: 1, Backoff: resq.Backoff{Delays: []time.Duration{time.Second}}},
			"Quick":  {Limit: 2},
		}}})
	if err != nil {
		t.Fatal(err)
	}
	var flaky, broken, quick atomic.Int32
	w.HandleFunc("Flaky", func(ctx context.Context, j *resq.Job) error {
		if flaky.Add(1) == 1 {
			return errors.New("temporary")
		}
		return nil
	})
	w.HandleFunc("Broken", func(ctx context.Context, j *resq.Job) error { broken.Add(1); return errors.New("always") })
	w.HandleFunc("Quick", func(ctx context.Context, j *resq.Job) error {
		if quick.Add(1) == 1 {
			return errors.New("once")
		}
		return nil
	})
	w.HandleFunc("Echo", func(ctx context.Context, j *resq.Job) error { return nil })
	stopW := testkit.RunWorker(t, w)
	s, stopS := aclRunScheduler(t, conn, resq.SchedulerConfig{Name: "worker-sched", LockTTL: 2 * time.Second, Refresh: 200 * time.Millisecond,
		Poll: 200 * time.Millisecond, Logger: testkit.Logger(t)})
	for _, c := range []string{"Flaky", "Broken", "Quick"} {
		if _, err := b.client.Enqueue(ctx, "q", c, "x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.client.EnqueueIn(ctx, 500*time.Millisecond, "q", "Echo", 1); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the retried jobs succeeded and Broken gave up", func() bool {
		return flaky.Load() == 2 && quick.Load() == 2 && b.srv.Do(t, "LLEN", b.key("failed")) == "1"
	})
	testkit.Eventually(t, "the delayed Echo ran", func() bool {
		st, _ := b.admin.Stats(ctx)
		return st.Processed >= 7 && b.srv.Do(t, "EXISTS", b.key("delayed_queue_schedule")) == "0"
	})
	if !s.Master() {
		t.Error("the worker's scheduler is not master")
	}
	stopW()
	if err := stopS(); err != nil {
		t.Errorf("scheduler: %v", err)
	}
	checkNoDenials(t, b.srv, user, scripting)
	if n := broken.Load(); n != 2 {
		t.Errorf("Broken ran %d times, want 2 (limit 1)", n)
	}
	if k := retryKeys(t, b); k != "" {
		t.Errorf("retry keys left: %s", k)
	}
}

func aclScheduler(t *testing.T, scripting bool) {
	b := setup(t)
	ctx := context.Background()
	conn, user := aclConn(t, b, resq.ACLScheduler, scripting)
	past := time.Now().Add(-10 * time.Second).Unix()
	rawDelayed(t, b, past, `{"class":"Echo","args":["ruby"],"queue":"q"}`)
	rawDelayed(t, b, past, `{"class":"Echo","args":["mapped"],"queue":null}`)
	rawDelayed(t, b, past, `{"class":"Unmapped","args":[],"queue":null}`)
	// A schedule member that is not an integer ("1705314600.5") is
	// rewritten before the move.
	early := fmt.Sprint(past - 5)
	item := `{"class":"Echo","args":["float"],"queue":"q"}`
	b.srv.Do(t, "RPUSH", b.key("delayed:"+early), item)
	b.srv.Do(t, "SADD", b.key("timestamps:"+item), "delayed:"+early)
	b.srv.Do(t, "ZADD", b.key("delayed_queue_schedule"), early, early+".5")
	if _, err := b.client.EnqueueIn(ctx, time.Second, "q", "Echo", "resq"); err != nil {
		t.Fatal(err)
	}
	static, err := resq.ParseSchedule([]byte("beat:\n  every: 1s\n  class: Beat\n  queue: beats\n  args: [1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.admin.SetSchedule(ctx, "persisted", resq.ScheduleConfig{Class: "Pers", Queue: "pq", Every: "1s"}); err != nil {
		t.Fatal(err)
	}
	cfg := resq.SchedulerConfig{Name: "acl-sched", LockTTL: 2 * time.Second, Refresh: 200 * time.Millisecond, Poll: 200 * time.Millisecond,
		ClassQueues: map[string]string{"Echo": "q"}, Schedule: static, Logger: testkit.Logger(t)}
	s, stop := aclRunScheduler(t, conn, cfg)
	testkit.Eventually(t, "master", s.Master)
	testkit.Eventually(t, "every delayed job moved", func() bool {
		return b.srv.Do(t, "EXISTS", b.key("delayed_queue_schedule")) == "0" && llen(t, b, "queue:q") == 4
	})
	testkit.Eventually(t, "both schedules fired", func() bool { return llen(t, b, "queue:beats") >= 1 && llen(t, b, "queue:pq") >= 1 })
	if n := llen(t, b, "failed"); n != 1 {
		t.Errorf("failed holds %d records, want 1 (the unmapped null-queue item)", n)
	}
	// A schedule changed while running is read again.
	if err := b.admin.SetSchedule(ctx, "added", resq.ScheduleConfig{Class: "Added", Queue: "aq", Every: "1s"}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the added schedule fired", func() bool { return llen(t, b, "queue:aq") >= 1 })

	// Another master takes the lock: this one stands by, then retakes it
	// when the lock is free.
	lock := b.key(b.ns + ":resque_scheduler_master_lock")
	b.srv.Do(t, "SET", lock, "other:1", "EX", "2")
	testkit.Eventually(t, "standing by", func() bool { return !s.Master() })
	testkit.Eventually(t, "master again", s.Master)
	if got := b.srv.Do(t, "GET", lock); got != "acl-sched" {
		t.Errorf("lock holds %q", got)
	}
	if err := stop(); err != nil {
		t.Errorf("scheduler: %v", err)
	}
	if v := b.srv.Do(t, "EXISTS", lock); v != "0" {
		t.Error("the stopped scheduler did not release the lock")
	}
	checkNoDenials(t, b.srv, user, scripting)
	if moved, failed := s.Moved(); moved != 4 || failed != 1 {
		t.Errorf("moved %d, failed %d; want 4, 1", moved, failed)
	}
}

// seedDelayedAdmin gives the delayed and schedule views something to show.
func seedDelayedAdmin(t *testing.T, b *bundle) (*resq.Schedule, time.Time) {
	t.Helper()
	ctx := context.Background()
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	for i := 0; i < 3; i++ {
		if _, err := b.client.EnqueueAt(ctx, at, "q", "Later", i); err != nil {
			t.Fatal(err)
		}
	}
	rawDelayed(t, b, at.Unix(), `{"class":"Ruby","args":[],"queue":null}`)
	if err := b.admin.SetSchedule(ctx, "persisted", resq.ScheduleConfig{Class: "Pers", Queue: "pq", Cron: "0 9 * * *"}); err != nil {
		t.Fatal(err)
	}
	b.srv.Do(t, "SET", b.key(b.ns+":resque_scheduler_master_lock"), "host:1")
	static, err := resq.ParseSchedule([]byte(scheduleYAML))
	if err != nil {
		t.Fatal(err)
	}
	return static, at
}

// delayedReads runs every Admin delayed and schedule read.
func delayedReads(ctx context.Context, a *resq.Admin, static *resq.Schedule, at time.Time) error {
	steps := []struct {
		name string
		fn   func() error
	}{
		{"DelayedCount", func() error { _, err := a.DelayedCount(ctx); return err }},
		{"DelayedTimestamps", func() error { _, err := a.DelayedTimestamps(ctx, resq.DelayedFilter{}, 0, 10); return err }},
		{"Delayed", func() error { _, err := a.Delayed(ctx, resq.DelayedFilter{From: at, To: at}, 0, -1); return err }},
		{"Delayed by class", func() error { _, err := a.Delayed(ctx, resq.DelayedFilter{Class: "Later"}, 0, 10); return err }},
		{"Schedules", func() error { _, err := a.Schedules(ctx, static); return err }},
		{"SchedulerMaster", func() error {
			m, err := a.SchedulerMaster(ctx, "")
			if err == nil && m != "host:1" {
				err = fmt.Errorf("master %q", m)
			}
			return err
		}},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func aclViewerDelayed(t *testing.T, scripting bool) {
	b := setup(t)
	ctx := context.Background()
	static, at := seedDelayedAdmin(t, b)
	conn, user := aclConn(t, b, resq.ACLViewer, scripting)
	a := resq.NewAdmin(conn)
	if err := delayedReads(ctx, a, static, at); err != nil {
		t.Error(err)
	}
	checkNoDenials(t, b.srv, user, scripting)

	_, err := a.RemoveDelayed(ctx, resq.DelayedFilter{Class: "Later"})
	mustNoperm(t, "viewer RemoveDelayed", err)
	vs, err := b.admin.Delayed(ctx, resq.DelayedFilter{From: at, To: at}, 0, 1)
	if err != nil || len(vs) != 1 {
		t.Fatalf("Delayed = %v, %v", vs, err)
	}
	_, err = a.RemoveDelayedItem(ctx, at, vs[0].Item)
	mustNoperm(t, "viewer RemoveDelayedItem", err)
	_, err = a.EnqueueDelayedNow(ctx, resq.DelayedFilter{Class: "Later"}, nil)
	mustNoperm(t, "viewer EnqueueDelayedNow", err)
	_, err = a.EnqueueDelayedItem(ctx, at, vs[0].Item, nil)
	mustNoperm(t, "viewer EnqueueDelayedItem", err)
	mustNoperm(t, "viewer SetSchedule", a.SetSchedule(ctx, "x", resq.ScheduleConfig{Class: "X", Queue: "q", Every: "1m"}))
	_, err = a.RemoveSchedule(ctx, "persisted")
	mustNoperm(t, "viewer RemoveSchedule", err)
	_, err = a.EnqueueScheduleNow(ctx, static, "persisted", nil, nil)
	mustNoperm(t, "viewer EnqueueScheduleNow", err)
	if st, _ := b.admin.DelayedCount(ctx); st.Jobs != 4 {
		t.Errorf("delayed jobs = %+v after the viewer's attempts, want 4", st)
	}
	if n := b.srv.Do(t, "HLEN", b.key("persistent_schedules")); n != "1" {
		t.Errorf("%s persistent schedules after the viewer's attempts, want 1", n)
	}
	if n := b.srv.Do(t, "EXISTS", b.key("queue:q"), b.key("queue:pq")); n != "0" {
		t.Error("the viewer enqueued a job")
	}
}

func aclAdminDelayed(t *testing.T, scripting bool) {
	b := setup(t)
	ctx := context.Background()
	static, at := seedDelayedAdmin(t, b)
	conn, user := aclConn(t, b, resq.ACLAdmin, scripting)
	a := resq.NewAdmin(conn)
	if err := delayedReads(ctx, a, static, at); err != nil {
		t.Error(err)
	}
	vs, err := a.Delayed(ctx, resq.DelayedFilter{From: at, To: at, Class: "Later"}, 0, -1)
	if err != nil || len(vs) != 3 {
		t.Fatalf("Delayed = %v, %v", vs, err)
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"EnqueueDelayedItem", func() error {
			ok, err := a.EnqueueDelayedItem(ctx, at, vs[0].Item, nil)
			if err == nil && !ok {
				err = errors.New("nothing moved")
			}
			return err
		}},
		{"RemoveDelayedItem", func() error { _, err := a.RemoveDelayedItem(ctx, at, vs[1].Item); return err }},
		{"EnqueueDelayedNow (null queue: a failure)", func() error { _, err := a.EnqueueDelayedNow(ctx, resq.DelayedFilter{Class: "Ruby"}, nil); return err }},
		{"RemoveDelayed", func() error { _, err := a.RemoveDelayed(ctx, resq.DelayedFilter{Class: "Later"}); return err }},
		{"SetSchedule", func() error {
			return a.SetSchedule(ctx, "x", resq.ScheduleConfig{Class: "X", Queue: "xq", Every: "1m"})
		}},
		{"EnqueueScheduleNow", func() error { _, err := a.EnqueueScheduleNow(ctx, static, "x", nil, nil); return err }},
		{"EnqueueScheduleNow static", func() error { _, err := a.EnqueueScheduleNow(ctx, static, "clear_cache", nil, nil); return err }},
		{"RemoveSchedule", func() error { _, err := a.RemoveSchedule(ctx, "persisted"); return err }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
	checkNoDenials(t, b.srv, user, scripting)
	if st, _ := b.admin.DelayedCount(ctx); st.Jobs != 0 {
		t.Errorf("delayed jobs left: %+v", st)
	}
	if got := strings.Join([]string{b.srv.Do(t, "LLEN", b.key("queue:q")), b.srv.Do(t, "LLEN", b.key("queue:xq")), b.srv.Do(t, "LLEN", b.key("queue:low")), b.srv.Do(t, "LLEN", b.key("failed"))}, ","); got != "1,1,1,1" {
		t.Errorf("q, xq, low, failed hold %s, want 1,1,1,1", got)
	}
	if n := b.srv.Do(t, "HKEYS", b.key("persistent_schedules")); n != "x" {
		t.Errorf("persistent schedules %q, want x", n)
	}
}
