package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/wire"
)

func TestRecurringKeys(t *testing.T) {
	t.Parallel()
	k := wire.NewKeys("resque")
	for got, want := range map[string]string{
		k.PersistentSchedules():                               "resque:persistent_schedules",
		k.SchedulesChanged():                                  "resque:schedules_changed",
		k.LastEnqueuedAt():                                    "resque:delayed:last_enqueued_at",
		k.ScheduleTick("clear:cache", 1705314225):             "resque:resq:tick:clear:cache:1705314225",
		k.SchedulerMasterLock(""):                             "resque:resque:resque_scheduler_master_lock",
		k.SchedulerMasterLock("MyApp"):                        "resque:resque:MyApp:resque_scheduler_master_lock",
		wire.NewKeys("resque:GitHub").SchedulerMasterLock(""): "resque:GitHub:resque:GitHub:resque_scheduler_master_lock",
	} {
		if got != want {
			t.Errorf("key %q, want %q", got, want)
		}
	}
}

// Setting and removing a persistent schedule writes exactly what Ruby's
// set_schedule(persist: true) / remove_schedule write, and the master's
// SPOP drains schedules_changed.
func TestPersistentSchedules(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	cfg := `{"class":"ClearCache","every":"1h","queue":"low","args":[]}`
	if err := s.SetPersistentSchedule(bg, "clear_cache", []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPersistentSchedule(bg, "bad", []byte(`[1]`)); err == nil {
		t.Error("a non-object config was stored")
	}
	expect(t, srv, cfg, "HGET", "resque:persistent_schedules", "clear_cache")
	expect(t, srv, "clear_cache", "SMEMBERS", "resque:schedules_changed")
	srv.Do(t, "HSET", "resque:persistent_schedules", "ruby_one", `{"cron":"0 5 * * *","class":"X"}`)
	all, err := s.PersistentSchedules(bg)
	if err != nil || len(all) != 2 || all["clear_cache"] != cfg {
		t.Fatalf("PersistentSchedules = %v, %v", all, err)
	}
	had, err := s.RemovePersistentSchedule(bg, "ruby_one")
	if err != nil || !had {
		t.Fatalf("Remove = %v, %v", had, err)
	}
	had, err = s.RemovePersistentSchedule(bg, "never_there")
	if err != nil || had {
		t.Fatalf("Remove of a missing schedule = %v, %v", had, err)
	}
	expect(t, srv, "0", "HEXISTS", "resque:persistent_schedules", "ruby_one")
	for i := range 150 {
		srv.Do(t, "SADD", "resque:schedules_changed", fmt.Sprintf("n%d", i))
	}
	names, err := s.PopChangedSchedules(bg)
	if err != nil || len(names) != 153 {
		t.Fatalf("PopChangedSchedules = %d names, %v", len(names), err)
	}
	expect(t, srv, "0", "EXISTS", "resque:schedules_changed")
	if names, err := s.PopChangedSchedules(bg); err != nil || len(names) != 0 {
		t.Fatalf("second pop = %v, %v", names, err)
	}
}

const tickLockKey = "resque:resque:resque_scheduler_master_lock"

func tick(at time.Time, owner string) wire.ScheduleTick {
	return wire.ScheduleTick{
		Lock: wire.Lock{Key: tickLockKey, Value: owner}, Name: "clear_cache", At: at, TTL: time.Hour,
		Queue: "low", Payload: wire.EncodeScheduledJob("ClearCache", json.RawMessage(`[{"all":true}]`)),
		EnqueuedAt: at.Add(2 * time.Second),
	}
}

// A tick fires once: a second call, and any number of concurrent callers
// holding the lock, push nothing more; the job, queues and
// delayed:last_enqueued_at are written as Ruby writes them.
func TestFireScheduleTickOnce(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		srv.Do(t, "SET", tickLockKey, "sched1:77", "EX", "180")
		fired, err := s.FireScheduleTick(bg, tick(specInstant, "sched1:77"))
		if err != nil || !fired {
			t.Fatalf("first fire = %v, %v", fired, err)
		}
		expect(t, srv, `{"class":"ClearCache","args":[{"all":true}]}`, "LRANGE", "resque:queue:low", "0", "-1")
		expect(t, srv, "low", "SMEMBERS", "resque:queues")
		expect(t, srv, wire.LastEnqueuedAtValue(specInstant.Add(2*time.Second)), "HGET", "resque:delayed:last_enqueued_at", "clear_cache")
		expect(t, srv, "sched1:77", "GET", "resque:resq:tick:clear_cache:1705314225")
		if ttl := srv.Do(t, "PTTL", "resque:resq:tick:clear_cache:1705314225"); ttl < "3500000" || len(ttl) != 7 {
			t.Errorf("tick PTTL = %s, want about an hour", ttl)
		}
		// Two "schedulers" (both believing they hold the lock) race on the
		// same tick, many times over.
		var wg sync.WaitGroup
		var mu sync.Mutex
		count := 0
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f, err := s.FireScheduleTick(bg, tick(specInstant.Add(time.Minute), "sched1:77"))
				if err != nil {
					t.Error(err)
				}
				if f {
					mu.Lock()
					count++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if count != 1 {
			t.Errorf("%d concurrent fires of one tick enqueued, want 1", count)
		}
		if fired, err := s.FireScheduleTick(bg, tick(specInstant, "sched1:77")); err != nil || fired {
			t.Errorf("repeat fire = %v, %v; want false, nil", fired, err)
		}
		expect(t, srv, "2", "LLEN", "resque:queue:low")
	})
}

// The fence: a scheduler whose value is not in the master lock (another
// holds it, or it expired) enqueues nothing and writes no tick key, so the
// real master can still fire the tick.
func TestFireScheduleTickFence(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		if _, err := s.FireScheduleTick(bg, tick(specInstant, "sched1:77")); !errors.Is(err, wire.ErrNotMaster) {
			t.Errorf("fire without a lock: %v, want ErrNotMaster", err)
		}
		srv.Do(t, "SET", tickLockKey, "ruby-host:12", "EX", "180")
		if _, err := s.FireScheduleTick(bg, tick(specInstant, "sched1:77")); !errors.Is(err, wire.ErrNotMaster) {
			t.Errorf("fire with another's lock: %v, want ErrNotMaster", err)
		}
		keys := srv.Do(t, "KEYS", "*")
		if keys != tickLockKey {
			t.Errorf("keys after fenced fires: %q", keys)
		}
		if fired, err := s.FireScheduleTick(bg, tick(specInstant, "ruby-host:12")); err != nil || !fired {
			t.Errorf("the holder's fire = %v, %v", fired, err)
		}
	})
}

// With a Redis user that may not run scripts, the Store notices the refusal
// and fires through WATCH/MULTI with the same results.
func TestFireScheduleTickLuaDenied(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Do(t, "ACL", "SETUSER", "sched", "on", ">pw", "~*", "&*", "+@all", "-@scripting")
	opt, err := redis.ParseURL(strings.Replace(srv.URL(), "redis://", "redis://sched:pw@", 1))
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	s := wire.NewStore(rdb, "resque")
	srv.Do(t, "SET", tickLockKey, "sched1:77")
	if _, err := s.FireScheduleTick(bg, tick(specInstant, "other:1")); !errors.Is(err, wire.ErrNotMaster) {
		t.Errorf("fenced fire: %v", err)
	}
	if !s.PlainCommands() {
		t.Fatal("the Store did not switch to plain commands")
	}
	for i := range 3 {
		fired, err := s.FireScheduleTick(bg, tick(specInstant, "sched1:77"))
		if err != nil || fired != (i == 0) {
			t.Errorf("fire %d = %v, %v", i, fired, err)
		}
	}
	expect(t, srv, "1", "LLEN", "resque:queue:low")
	expect(t, srv, "sched1:77", "GET", "resque:resq:tick:clear_cache:1705314225")
}

func TestEncodeScheduledJobAndRubyFloat(t *testing.T) {
	t.Parallel()
	if got := string(wire.EncodeScheduledJob("A/<b>", nil)); got != `{"class":"A/<b>","args":[]}` {
		t.Errorf("EncodeScheduledJob = %s", got)
	}
	for f, want := range map[float64]string{
		1: "1.0", 1.5: "1.5", -2.25: "-2.25", 1e20: "1.0e+20", 1e15: "1000000000000000.0", 1e16: "1.0e+16",
		0.0001: "0.0001", 0.00001: "1.0e-05", 123456.789: "123456.789", 1.5e-7: "1.5e-07", 0: "0.0", 2.5e100: "2.5e+100",
	} {
		got, err := wire.AppendRubyFloat(nil, f)
		if err != nil || string(got) != want {
			t.Errorf("AppendRubyFloat(%v) = %s, %v; want %s", f, got, err, want)
		}
	}
}
