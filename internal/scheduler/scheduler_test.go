package scheduler_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/scheduler"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/internal/wire"
)

var pool = redistest.NewPool(redistest.Options{})

// TestMain also fails the package when goroutines are left running.
func TestMain(m *testing.M) { testkit.Main(m, pool.Close) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// client opens a go-redis client on srv, as user:pw when user is set.
func client(t *testing.T, srv *redistest.Server, user string) *redis.Client {
	t.Helper()
	url := srv.URL()
	if user != "" {
		url = strings.Replace(url, "redis://", "redis://"+user+":pw@", 1)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func lockFor(ns, name string) wire.Lock {
	return wire.Lock{Key: wire.NewKeys(ns).SchedulerMasterLock(""), Value: name}
}

func redisNow(t *testing.T, rdb *redis.Client) time.Time {
	t.Helper()
	now, err := rdb.Time(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return now
}

// A job due in the next seconds reaches its queue in its due second, not
// before (by Redis's clock); the wake channel wakes a master that sleeps
// on a later timestamp. The lateness is logged, not asserted.
func TestPunctual(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	rdb := client(t, srv, "")
	ns := "punct"
	store := wire.NewStore(rdb, ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A far timestamp first, so the master sleeps on it.
	now := redisNow(t, rdb)
	store.PushDelayed(ctx, []wire.DelayedPush{{TS: now.Unix() + 3600, Item: wire.RubyDelayedItem("Far", nil, "q")}})
	sch := scheduler.New(store, scheduler.Config{Lock: lockFor(ns, "h:1"), Poll: time.Hour, Refresh: time.Hour, LockTTL: 2 * time.Hour, Logger: quiet})
	done := make(chan error, 1)
	go func() { done <- sch.Run(ctx) }()
	time.Sleep(300 * time.Millisecond)
	var late []time.Duration
	for i := range 3 {
		now := redisNow(t, rdb)
		due := now.Unix() + 1
		store.PushDelayed(ctx, []wire.DelayedPush{{TS: due, Item: wire.RubyDelayedItem("Soon", json.RawMessage(fmt.Sprintf("[%d]", i)), "q")}})
		v, err := rdb.BLPop(ctx, 5*time.Second, wire.NewKeys(ns).Queue("q")).Result()
		if err != nil {
			t.Fatalf("job %d did not arrive: %v", i, err)
		}
		at := redisNow(t, rdb)
		if at.Unix() < due {
			t.Errorf("job %d arrived at %v, before its due second %d", i, at, due)
		}
		if v[1] != fmt.Sprintf(`{"class":"Soon","args":[%d]}`, i) {
			t.Errorf("payload %s", v[1])
		}
		late = append(late, at.Sub(time.Unix(due, 0)))
	}
	t.Logf("lateness after the due second (includes one TIME round trip): %v", late)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v, _ := rdb.Get(context.Background(), lockFor(ns, "").Key).Result(); v != "" {
		t.Errorf("lock left behind after a clean stop: %q", v)
	}
}

// A former master whose lock was lost moves nothing; a standby takes over.
func TestFenceAndTakeover(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	rdb := client(t, srv, "")
	ns := "fence"
	store := wire.NewStore(rdb, ns)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lock := lockFor(ns, "h:1")
	// Ruby holds the lock: resq stands by.
	rdb.SetNX(ctx, lock.Key, "rubyhost:42", 0)
	now := redisNow(t, rdb)
	store.PushDelayed(ctx, []wire.DelayedPush{{TS: now.Unix() - 5, Item: wire.RubyDelayedItem("J", nil, "q")}})
	var mu sync.Mutex
	var changes []bool
	sch := scheduler.New(store, scheduler.Config{Lock: lock, LockTTL: 2 * time.Second, Refresh: 200 * time.Millisecond, Logger: quiet,
		MasterFunc: func(m bool) { mu.Lock(); changes = append(changes, m); mu.Unlock() }})
	done := make(chan error, 1)
	go func() { done <- sch.Run(ctx) }()
	time.Sleep(time.Second)
	if n := rdb.LLen(ctx, wire.NewKeys(ns).Queue("q")).Val(); n != 0 {
		t.Fatalf("moved %d jobs while Ruby held the lock", n)
	}
	// Ruby's lock expires (Ruby died): resq takes over within a refresh.
	rdb.Del(ctx, lock.Key)
	start := time.Now()
	if _, err := rdb.BLPop(ctx, 5*time.Second, wire.NewKeys(ns).Queue("q")).Result(); err != nil {
		t.Fatalf("not moved after the lock was freed: %v", err)
	}
	t.Logf("takeover after the lock was freed: %v", time.Since(start))
	// The lock is taken from under the master (it expired and another
	// scheduler got it): the next due job is not moved by the former master.
	rdb.Set(ctx, lock.Key, "other:1", time.Hour)
	store.PushDelayed(ctx, []wire.DelayedPush{{TS: redisNow(t, rdb).Unix() - 1, Item: wire.RubyDelayedItem("K", nil, "q")}})
	time.Sleep(time.Second)
	if n := rdb.LLen(ctx, wire.NewKeys(ns).Queue("q")).Val(); n != 0 {
		t.Errorf("the former master moved %d jobs", n)
	}
	cancel()
	<-done
	if v := rdb.Get(context.Background(), lock.Key).Val(); v != "other:1" {
		t.Errorf("the former master released another's lock: %q", v)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(changes) != "[true false]" {
		t.Errorf("master changes = %v", changes)
	}
}

// Three schedulers with thousands of delayed jobs due over a few seconds;
// the master is killed (its connections closed under it, no release)
// again and again and a new scheduler started in its place. Every job
// reaches its queue exactly once. With and without Lua.
func TestKillStorm(t *testing.T) {
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprint("plain=", plain), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			user := ""
			if plain {
				srv.Do(t, "ACL", "SETUSER", "sched", "on", ">pw", "~*", "&*", "+@all", "-@scripting")
				user = "sched"
			}
			admin := client(t, srv, "")
			ns := "storm"
			keys := wire.NewKeys(ns)
			const n = 6000
			now := redisNow(t, admin)
			var push []wire.DelayedPush
			for i := range n {
				push = append(push, wire.DelayedPush{TS: now.Unix() - 2 + int64(i%12), Item: wire.RubyDelayedItem("J", json.RawMessage(strconv.Itoa(i)), "q")})
			}
			for _, err := range wire.NewStore(admin, ns).PushDelayed(context.Background(), push) {
				if err != nil {
					t.Fatal(err)
				}
			}
			type running struct {
				cancel context.CancelFunc
				rdb    *redis.Client
				done   chan error
				master bool
			}
			var mu sync.Mutex
			start := func(name string) *running {
				opt, _ := redis.ParseURL(strings.Replace(srv.URL(), "redis://", "redis://"+user+":pw@", 1))
				if user == "" {
					opt, _ = redis.ParseURL(srv.URL())
				}
				rdb := redis.NewClient(opt)
				ctx, cancel := context.WithCancel(context.Background())
				r := &running{cancel: cancel, rdb: rdb, done: make(chan error, 1)}
				sch := scheduler.New(wire.NewStore(rdb, ns), scheduler.Config{Lock: lockFor(ns, name), LockTTL: 1500 * time.Millisecond,
					Refresh: 300 * time.Millisecond, Batch: 5, Logger: quiet,
					MasterFunc: func(m bool) { mu.Lock(); r.master = m; mu.Unlock() }})
				go func() { r.done <- sch.Run(ctx) }()
				return r
			}
			scheds := []*running{start("h:1"), start("h:2"), start("h:3")}
			next := 4
			kills := 0
			deadline := time.Now().Add(60 * time.Second)
			for time.Now().Before(deadline) {
				time.Sleep(400 * time.Millisecond)
				moved := admin.LLen(context.Background(), keys.Queue("q")).Val()
				if moved >= n && admin.Exists(context.Background(), keys.DelayedSchedule()).Val() == 0 {
					break
				}
				mu.Lock()
				for i, r := range scheds {
					if r.master && kills < 8 {
						// Kill: the connections go away mid-whatever, the
						// lock is not released.
						r.rdb.Close()
						r.cancel()
						kills++
						scheds[i] = start(fmt.Sprintf("h:%d", next))
						next++
						break
					}
				}
				mu.Unlock()
			}
			for _, r := range scheds {
				r.cancel()
				if err := <-r.done; err != nil {
					t.Errorf("scheduler: %v", err)
				}
				r.rdb.Close()
			}
			got := admin.LRange(context.Background(), keys.Queue("q"), 0, -1).Val()
			count := map[string]int{}
			for _, g := range got {
				count[g]++
			}
			var dups []string
			for g, c := range count {
				if c > 1 {
					dups = append(dups, g)
				}
			}
			sort.Strings(dups)
			lost := 0
			for i := range n {
				if count[fmt.Sprintf(`{"class":"J","args":[%d]}`, i)] == 0 {
					lost++
				}
			}
			t.Logf("%d jobs, %d kills of the master: %d in the queue, %d lost, %d duplicated", n, kills, len(got), lost, len(dups))
			if lost != 0 || len(dups) != 0 || len(got) != n {
				t.Errorf("lost %d, duplicated %v", lost, dups)
			}
			if kills < 2 {
				t.Errorf("only %d kills happened; the storm did not test takeover", kills)
			}
			if left := admin.Keys(context.Background(), ns+":delayed*").Val(); len(left) != 0 {
				t.Errorf("delayed keys left: %v", left)
			}
		})
	}
}

// A refused permission is returned, not retried forever.
func TestPermanentErrorReturned(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Do(t, "ACL", "SETUSER", "narrow", "on", ">pw", "~other:*", "&*", "+@all")
	rdb := client(t, srv, "narrow")
	sch := scheduler.New(wire.NewStore(rdb, "perm"), scheduler.Config{Lock: lockFor("perm", "h:1"), Logger: quiet})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := sch.Run(ctx)
	if err == nil || !scheduler.Permanent(err) || !strings.Contains(err.Error(), "NOPERM") {
		t.Fatalf("Run = %v; want the NOPERM error", err)
	}
}
