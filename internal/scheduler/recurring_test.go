package scheduler_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/recurring"
	"github.com/resq-go/resq/internal/scheduler"
	"github.com/resq-go/resq/internal/wire"
)

// The master fires recurring ticks on their second, fenced by the lock
// value that fences its moves: once the lock is taken from under it, it
// fires nothing more (it learns from the tick script, long before its next
// refresh) and stands by; a Ruby scheduler holding the lock keeps it from
// firing at all.
func TestRecurringFencedByTheMoveLock(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	rdb := client(t, srv, "")
	ns := "recfence"
	store := wire.NewStore(rdb, ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	static, err := recurring.LoadYAML([]byte("beat:\n  every: 1s\n  class: Beat\n  queue: beats\n"), recurring.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lock := lockFor(ns, "h:1")
	var mu sync.Mutex
	var fired []recurring.Tick
	var changes []bool
	sch := scheduler.New(store, scheduler.Config{Lock: lock, LockTTL: time.Hour, Refresh: 20 * time.Minute, Logger: quiet, Schedules: static,
		Recurring:  recurring.Config{Logger: quiet},
		FiredFunc:  func(r recurring.Result) { mu.Lock(); fired = append(fired, r.Fired...); mu.Unlock() },
		MasterFunc: func(m bool) { mu.Lock(); changes = append(changes, m); mu.Unlock() }})
	done := make(chan error, 1)
	go func() { done <- sch.Run(ctx) }()
	queue := wire.NewKeys(ns).Queue("beats")
	for i := range 2 {
		v, err := rdb.BLPop(ctx, 3*time.Second, queue).Result()
		if err != nil {
			t.Fatalf("tick %d did not arrive: %v", i, err)
		}
		if v[1] != `{"class":"Beat","args":[]}` {
			t.Errorf("tick job %s", v[1])
		}
		at := redisNow(t, rdb)
		if at.Nanosecond() > int(500*time.Millisecond) {
			t.Logf("tick %d arrived %v into its second", i, time.Duration(at.Nanosecond()))
		}
	}
	// Another scheduler (Ruby's, say) holds the lock now; ours still
	// believes it is master until it fires.
	rdb.Set(ctx, lock.Key, "rubyhost:42", 0)
	slipped := rdb.LLen(ctx, queue).Val() // a tick fired just before the SET
	time.Sleep(2500 * time.Millisecond)
	if n := rdb.LLen(ctx, queue).Val(); n != slipped {
		t.Errorf("%d ticks fired after the lock was taken", n-slipped)
	}
	mu.Lock()
	if len(changes) != 2 || !changes[0] || changes[1] {
		t.Errorf("master changes %v; want [true false] (demoted by the fenced tick, not by a refresh)", changes)
	}
	if len(fired) != 2+int(slipped) || fired[1].At.Sub(fired[0].At) != time.Second {
		t.Errorf("fired %v", fired)
	}
	mu.Unlock()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := rdb.Get(context.Background(), lock.Key).Val(); v != "rubyhost:42" {
		t.Errorf("the former master released another's lock: %q", v)
	}
}
