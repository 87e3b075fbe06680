package recurring_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/recurring"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/internal/wire"
)

var pool = redistest.NewPool(redistest.Options{})

// TestMain also fails the package when goroutines are left running.
func TestMain(m *testing.M) { testkit.Main(m, pool.Close) }

var bg = context.Background()

const lockKey = "resque:resque:resque_scheduler_master_lock"

func storeOn(t *testing.T, srv *redistest.Server, user string) *wire.Store {
	t.Helper()
	url := srv.URL()
	if user != "" {
		url = strings.Replace(url, "redis://", "redis://"+user+"@", 1)
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return wire.NewStore(rdb, "resque")
}

// clock is a settable NowFunc.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func engine(t *testing.T, st *wire.Store, lockValue, yaml string, c *clock, cfg recurring.Config) *recurring.Engine {
	t.Helper()
	static, err := recurring.LoadYAML([]byte(yaml), recurring.ParseOptions{Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	cfg.NowFunc, cfg.Logger = c.now, quiet
	cfg.Parse.Location = time.UTC
	return recurring.New(static, recurring.NewStoreBackend(st, wire.Lock{Key: lockKey, Value: lockValue}), cfg)
}

const hourly = `
report:
  cron: "0 * * * *"
  class: Report
  queue: reports
  args: {scope: all}
`

func fire(t *testing.T, e *recurring.Engine) recurring.Result {
	t.Helper()
	res, err := e.FireDue(bg)
	if err != nil {
		t.Fatalf("FireDue: %v", err)
	}
	return res
}

// Two schedulers fire the same ticks; each tick becomes one job, including
// across a master change (the new master's catch-up sees the tick as done,
// by last_enqueued_at and, where that was lost, by the tick key).
func TestTickOnceAcrossSchedulersAndMasterChange(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	st := storeOn(t, srv, "")
	c := &clock{t: utc("2024-01-15T09:59:00Z")}
	srv.Do(t, "SET", lockKey, "a:1")
	a := engine(t, st, "a:1", hourly, c, recurring.Config{})
	twin := engine(t, st, "a:1", hourly, c, recurring.Config{}) // same lock value: a split-brain twin
	for _, e := range []*recurring.Engine{a, twin} {
		if err := e.Load(bg); err != nil {
			t.Fatal(err)
		}
	}
	if next, ok := a.NextWake(); !ok || !next.Equal(utc("2024-01-15T10:00:00Z")) {
		t.Fatalf("NextWake = %v, %v", next, ok)
	}
	c.set(utc("2024-01-15T10:00:00Z"))
	var wg sync.WaitGroup
	results := make([]recurring.Result, 2)
	for i, e := range []*recurring.Engine{a, twin} {
		wg.Add(1)
		go func() { defer wg.Done(); results[i], _ = e.FireDue(bg) }()
	}
	wg.Wait()
	if n := len(results[0].Fired) + len(results[1].Fired); n != 1 || len(results[0].Already)+len(results[1].Already) != 1 {
		t.Fatalf("fired %d (results %+v), want exactly one", n, results)
	}
	if got := srv.Do(t, "LRANGE", "resque:queue:reports", "0", "-1"); got != `{"class":"Report","args":[{"scope":"all"}]}` {
		t.Fatalf("queue = %q", got)
	}
	// The master dies at 10:59:30; b takes over at 11:00:20 and loads:
	// catch-up finds 11:00 unfired and fires it; 10:00 stays done.
	c.set(utc("2024-01-15T11:00:20Z"))
	srv.Do(t, "SET", lockKey, "b:2")
	b := engine(t, st, "b:2", hourly, c, recurring.Config{})
	if err := b.Load(bg); err != nil {
		t.Fatal(err)
	}
	if res := fire(t, b); len(res.Fired) != 1 || !res.Fired[0].At.Equal(utc("2024-01-15T11:00:00Z")) {
		t.Fatalf("b fired %+v, want the 11:00 tick", res)
	}
	// The old master wakes up late and tries 11:00: fenced off.
	if _, err := a.FireDue(bg); !errors.Is(err, recurring.ErrNotMaster) {
		t.Fatalf("old master's FireDue: %v, want ErrNotMaster", err)
	}
	// A third scheduler takes over with last_enqueued_at lost (say a Ruby
	// tool cleared it) but the tick key still there: its catch-up cannot
	// use last_enqueued_at, so it starts fresh — and even a forced fire of
	// 11:00 is refused by the tick key.
	srv.Do(t, "SET", lockKey, "c:3")
	cc := engine(t, st, "c:3", hourly, c, recurring.Config{})
	if err := cc.Load(bg); err != nil {
		t.Fatal(err)
	}
	back := recurring.NewStoreBackend(st, wire.Lock{Key: lockKey, Value: "c:3"})
	fired, err := back.Fire(bg, recurring.FireRequest{Tick: recurring.Tick{Name: "report", At: utc("2024-01-15T11:00:00Z")}, Queue: "reports", Payload: []byte(`{}`), TTL: time.Hour, EnqueuedAt: c.now()})
	if err != nil || fired {
		t.Fatalf("refire of 11:00 = %v, %v", fired, err)
	}
	if n := srv.Do(t, "LLEN", "resque:queue:reports"); n != "2" {
		t.Fatalf("queue holds %s jobs, want 2", n)
	}
	want := wire.LastEnqueuedAtValue(utc("2024-01-15T11:00:20Z"))
	if got := srv.Do(t, "HGET", "resque:delayed:last_enqueued_at", "report"); got != want {
		t.Errorf("last_enqueued_at = %q, want %q", got, want)
	}
}

// A scheduler that does not hold the master lock pushes nothing; its ticks
// stay due and fire once it holds the lock (within the window).
func TestFenceWrongHolder(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	st := storeOn(t, srv, "")
	c := &clock{t: utc("2024-01-15T09:59:59Z")}
	srv.Do(t, "SET", lockKey, "ruby-host:12")
	e := engine(t, st, "me:1", hourly, c, recurring.Config{})
	if err := e.Load(bg); err != nil {
		t.Fatal(err)
	}
	c.set(utc("2024-01-15T10:00:01Z"))
	if _, err := e.FireDue(bg); !errors.Is(err, recurring.ErrNotMaster) {
		t.Fatalf("FireDue = %v, want ErrNotMaster", err)
	}
	if got := srv.Do(t, "KEYS", "*"); got != lockKey {
		t.Fatalf("keys after a fenced fire: %q", got)
	}
	if due := e.Due(c.now()); len(due) != 1 {
		t.Fatalf("due after the fenced fire = %v", due)
	}
	srv.Do(t, "SET", lockKey, "me:1")
	if res := fire(t, e); len(res.Fired) != 1 {
		t.Fatalf("fired %+v", res)
	}
}

// The catch-up policy at load.
func TestCatchUp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		last    string // delayed:last_enqueued_at, "" for none
		policy  recurring.CatchUp
		window  time.Duration
		fired   string // tick fired at load, "" for none
		skipped int
	}{
		{"latest missed fires once", "2024-01-15 09:00:02 +0000", recurring.CatchUpLatest, 2 * time.Hour, "2024-01-15T11:00:00Z", 1},
		{"ruby fired it already", "2024-01-15 11:00:01 +0000", recurring.CatchUpLatest, 0, "", 0},
		{"older than the window", "2024-01-15 09:00:02 +0000", recurring.CatchUpLatest, 20 * time.Minute, "", 0},
		{"new schedule", "", recurring.CatchUpLatest, 0, "", 0},
		{"policy none", "2024-01-15 09:00:02 +0000", recurring.CatchUpNone, 0, "", 0},
		{"other zone, default window", "2024-01-15 04:00:02 -0500", recurring.CatchUpLatest, 0, "2024-01-15T11:00:00Z", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			srv := pool.Get(t)
			st := storeOn(t, srv, "")
			srv.Do(t, "SET", lockKey, "me:1")
			if c.last != "" {
				srv.Do(t, "HSET", "resque:delayed:last_enqueued_at", "report", c.last)
			}
			clk := &clock{t: utc("2024-01-15T11:30:00Z")}
			e := engine(t, st, "me:1", hourly, clk, recurring.Config{CatchUp: c.policy, CatchUpWindow: c.window})
			if err := e.Load(bg); err != nil {
				t.Fatal(err)
			}
			res := fire(t, e)
			got := ""
			if len(res.Fired) == 1 {
				got = res.Fired[0].At.Format(time.RFC3339)
			}
			if got != c.fired || len(res.Fired) > 1 || res.Skipped != c.skipped {
				t.Errorf("fired %+v (skipped %d); want %q, skipped %d", res.Fired, res.Skipped, c.fired, c.skipped)
			}
			if next, _ := e.NextWake(); !next.Equal(utc("2024-01-15T12:00:00Z")) {
				t.Errorf("NextWake = %v, want 12:00", next)
			}
		})
	}
}

// A scheduler loop that stalls past several ticks fires only the latest,
// once; every schedules keep their grid.
func TestStallFiresLatestOnce(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	st := storeOn(t, srv, "")
	srv.Do(t, "SET", lockKey, "me:1")
	clk := &clock{t: utc("2024-01-15T10:00:05Z")}
	e := engine(t, st, "me:1", "tick:\n  every: [\"15m\", {first_in: \"1m\"}]\n  queue: q\n", clk, recurring.Config{})
	if err := e.Load(bg); err != nil {
		t.Fatal(err)
	}
	clk.set(utc("2024-01-15T10:50:00Z")) // 10:01, 10:16, 10:31, 10:46 passed
	res := fire(t, e)
	if len(res.Fired) != 1 || !res.Fired[0].At.Equal(utc("2024-01-15T10:46:00Z")) || res.Skipped != 3 {
		t.Fatalf("result %+v", res)
	}
	if next, _ := e.NextWake(); !next.Equal(utc("2024-01-15T11:01:00Z")) {
		t.Fatalf("NextWake = %v", next)
	}
	if got := srv.Do(t, "LRANGE", "resque:queue:q", "0", "-1"); got != `{"class":"tick","args":[]}` {
		t.Fatalf("queue = %q", got)
	}
}

// Dynamic schedules: a schedule set from Ruby (persistent_schedules +
// schedules_changed) fires; a persistent entry wins over the static one of
// the same name; removing it brings the static one back; the env filter
// keeps other environments' schedules from firing.
func TestDynamicSchedulesAndEnv(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	st := storeOn(t, srv, "")
	srv.Do(t, "SET", lockKey, "me:1")
	clk := &clock{t: utc("2024-01-15T09:59:30Z")}
	yaml := hourly + `
staging_only:
  cron: "0 * * * *"
  queue: q
  rails_env: staging
`
	e := engine(t, st, "me:1", yaml, clk, recurring.Config{Env: "production"})
	if err := e.Load(bg); err != nil {
		t.Fatal(err)
	}
	// Rails console: Resque.set_schedule("report", {...}, persist: true).
	srv.Do(t, "HSET", "resque:persistent_schedules", "report", `{"class":"Report2","cron":"30 * * * *","queue":"reports","args":[1]}`)
	srv.Do(t, "HSET", "resque:persistent_schedules", "console_job", `{"class":"Console","every":"1m","queue":"c"}`)
	srv.Do(t, "HSET", "resque:persistent_schedules", "broken", `{"cron":"99 * * * *","queue":"c"}`)
	srv.Do(t, "SADD", "resque:schedules_changed", "report", "console_job", "broken")
	names, err := e.Refresh(bg)
	if err != nil || len(names) != 3 {
		t.Fatalf("Refresh = %v, %v", names, err)
	}
	entries := e.Entries()
	if len(entries) != 4 {
		t.Fatalf("entries = %+v", entries)
	}
	for _, en := range entries {
		switch en.Schedule.Name {
		case "report":
			if en.Source != recurring.Persistent || en.Schedule.Class != "Report2" {
				t.Errorf("report = %+v", en)
			}
		case "broken":
			if en.Problem == "" || !strings.Contains(en.Problem, "minute field") {
				t.Errorf("broken = %+v", en)
			}
		case "staging_only":
			if en.Active {
				t.Errorf("staging_only active in production")
			}
		}
	}
	clk.set(utc("2024-01-15T10:00:00Z"))
	res := fire(t, e)
	if len(res.Fired) != 1 || res.Fired[0].Name != "console_job" {
		t.Fatalf("fired at 10:00: %+v", res)
	}
	clk.set(utc("2024-01-15T10:30:00Z"))
	res = fire(t, e)
	if len(res.Fired) != 2 { // console_job (10:30) and report (10:30)
		t.Fatalf("fired at 10:30: %+v", res)
	}
	if got := srv.Do(t, "LRANGE", "resque:queue:reports", "0", "-1"); got != `{"class":"Report2","args":[1]}` {
		t.Fatalf("reports queue = %q", got)
	}
	// Resque.remove_schedule("report"): the static one is back.
	if _, err := st.RemovePersistentSchedule(bg, "report"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Refresh(bg); err != nil {
		t.Fatal(err)
	}
	for _, en := range e.Entries() {
		if en.Schedule.Name == "report" && (en.Source != recurring.Static || !en.Next.Equal(utc("2024-01-15T11:00:00Z"))) {
			t.Errorf("report after remove = %+v", en)
		}
	}
	if got := srv.Do(t, "EXISTS", "resque:schedules_changed"); got != "0" {
		t.Errorf("schedules_changed left: %s", got)
	}
}

// Without Lua the engine fires through the WATCH/MULTI twin, fence and
// tick key included.
func TestEngineWithoutLua(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Do(t, "ACL", "SETUSER", "sched", "on", ">pw", "~*", "&*", "+@all", "-@scripting")
	st := storeOn(t, srv, "sched:pw")
	srv.Do(t, "SET", lockKey, "me:1")
	clk := &clock{t: utc("2024-01-15T09:59:59Z")}
	a := engine(t, st, "me:1", hourly, clk, recurring.Config{})
	b := engine(t, st, "me:1", hourly, clk, recurring.Config{})
	other := engine(t, st, "other:9", hourly, clk, recurring.Config{})
	for _, e := range []*recurring.Engine{a, b, other} {
		if err := e.Load(bg); err != nil {
			t.Fatal(err)
		}
	}
	clk.set(utc("2024-01-15T10:00:00Z"))
	if _, err := other.FireDue(bg); !errors.Is(err, recurring.ErrNotMaster) {
		t.Fatalf("fenced: %v", err)
	}
	ra, rb := fire(t, a), fire(t, b)
	if len(ra.Fired) != 1 || len(rb.Fired) != 0 || len(rb.Already) != 1 {
		t.Fatalf("a %+v b %+v", ra, rb)
	}
	if !st.PlainCommands() {
		t.Error("the store did not switch to plain commands")
	}
	if n := srv.Do(t, "LLEN", "resque:queue:reports"); n != "1" {
		t.Errorf("queue holds %s", n)
	}
}

// The payload hook and schedules without a queue.
func TestPayloadHookAndNoQueue(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	st := storeOn(t, srv, "")
	srv.Do(t, "SET", lockKey, "me:1")
	clk := &clock{t: utc("2024-01-15T09:59:59Z")}
	var seen []recurring.Job
	e := engine(t, st, "me:1", hourly+"noqueue:\n  cron: \"0 * * * *\"\n  class: NoQ\n", clk, recurring.Config{
		PayloadFunc: func(_ context.Context, j recurring.Job) ([]byte, error) {
			seen = append(seen, j)
			return []byte(`{"class":"` + j.Class + `","args":` + string(j.Args) + `,"sig":"x"}`), nil
		},
	})
	if err := e.Load(bg); err != nil {
		t.Fatal(err)
	}
	clk.set(utc("2024-01-15T10:00:00Z"))
	res := fire(t, e)
	if len(res.Fired) != 1 || res.Skipped != 1 || len(seen) != 1 || seen[0].Tick.ID() != "report@1705312800" {
		t.Fatalf("result %+v seen %+v", res, seen)
	}
	if got := srv.Do(t, "LRANGE", "resque:queue:reports", "0", "-1"); got != `{"class":"Report","args":[{"scope":"all"}],"sig":"x"}` {
		t.Fatalf("queue = %q", got)
	}
	if next, _ := e.NextWake(); !next.Equal(utc("2024-01-15T11:00:00Z")) {
		t.Errorf("NextWake = %v (the queue-less tick must not stay due)", next)
	}
}

// Load leaves schedules_changed to the master's Refresh, and a Refresh of
// an unchanged persistent config keeps its catch-up tick.
func TestLoadLeavesChangesAndRefreshKeepsState(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	st := storeOn(t, srv, "")
	srv.Do(t, "SET", lockKey, "me:1")
	srv.Do(t, "HSET", "resque:persistent_schedules", "p", `{"cron":"0 * * * *","queue":"q"}`)
	srv.Do(t, "HSET", "resque:delayed:last_enqueued_at", "p", "2024-01-15 10:00:01 +0000")
	srv.Do(t, "SADD", "resque:schedules_changed", "p")
	clk := &clock{t: utc("2024-01-15T11:10:00Z")}
	e := engine(t, st, "me:1", "", clk, recurring.Config{})
	if err := e.Load(bg); err != nil {
		t.Fatal(err)
	}
	if got := srv.Do(t, "SCARD", "resque:schedules_changed"); got != "1" {
		t.Fatalf("Load drained schedules_changed: %s left", got)
	}
	if names, err := e.Refresh(bg); err != nil || len(names) != 1 {
		t.Fatalf("Refresh = %v, %v", names, err)
	}
	if due := e.Due(clk.now()); len(due) != 1 || !due[0].At.Equal(utc("2024-01-15T11:00:00Z")) {
		t.Fatalf("due after Refresh = %v, want the 11:00 catch-up tick", due)
	}
}
