package resq_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

const scheduleYAML = `
clear_cache:
  cron: "0 9 * * * UTC"
  class: ClearCache
  queue: low
  args:
    - all
  description: Clears the cache
heartbeat:
  every: 2s
  class: Heartbeat
  queue: beats
staging_only:
  every: 1h
  class: StagingJob
  queue: low
  rails_env: staging
`

func TestParseScheduleErrors(t *testing.T) {
	t.Parallel()
	s, err := resq.ParseSchedule([]byte(scheduleYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Names(), ","); got != "clear_cache,heartbeat,staging_only" {
		t.Fatalf("names %q", got)
	}
	s, err = resq.ParseSchedule([]byte("good:\n  every: 1m\n  class: A\n  queue: q\nbad:\n  cron: \"61 * * * *\"\n  class: B\n"))
	if !errors.Is(err, resq.ErrInvalidSchedule) || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), "cron") {
		t.Fatalf("error %v", err)
	}
	if s.Len() != 1 {
		t.Fatalf("good schedules kept: %d", s.Len())
	}
	if _, err := resq.LoadScheduleFile(t.TempDir() + "/missing.yml"); err == nil || !strings.Contains(err.Error(), "missing.yml") {
		t.Fatalf("missing file: %v", err)
	}
}

// Admin's schedule calls: set (stored as Ruby's set_schedule persist: true
// stores it), list (static and persistent, next and last run), enqueue now
// (no tick key, no last run), remove.
func TestAdminSchedules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	static, err := resq.ParseSchedule([]byte(scheduleYAML))
	if err != nil {
		t.Fatal(err)
	}
	err = b.admin.SetSchedule(ctx, "report", resq.ScheduleConfig{Class: "Report", Queue: "reports", Cron: "0 9 * * *", Args: json.RawMessage(`[1,"x"]`), Description: "daily"})
	if err != nil {
		t.Fatal(err)
	}
	raw := b.srv.Do(t, "HGET", b.key("persistent_schedules"), "report")
	if raw != `{"class":"Report","queue":"reports","cron":"0 9 * * *","args":[1,"x"],"description":"daily"}` {
		t.Fatalf("stored %v", raw)
	}
	if n := b.srv.Do(t, "SISMEMBER", b.key("schedules_changed"), "report"); n != "1" {
		t.Fatalf("schedules_changed: %v", n)
	}
	if err := b.admin.SetSchedule(ctx, "bad", resq.ScheduleConfig{Class: "X", Cron: "* * *"}); !errors.Is(err, resq.ErrInvalidSchedule) {
		t.Fatalf("bad cron: %v", err)
	}
	if err := b.admin.SetScheduleJSON(ctx, "json_one", []byte(`{"every":"5m","class":"J","queue":"q","persist":true}`)); err != nil {
		t.Fatal(err)
	}
	if raw := b.srv.Do(t, "HGET", b.key("persistent_schedules"), "json_one"); raw != `{"every":"5m","class":"J","queue":"q"}` {
		t.Fatalf("persist kept: %v", raw)
	}
	// A persistent schedule overrides the static one of the same name.
	if err := b.admin.SetScheduleJSON(ctx, "heartbeat", []byte(`{"every":"1m","class":"Beat2","queue":"beats"}`)); err != nil {
		t.Fatal(err)
	}
	b.srv.Do(t, "HSET", b.key("persistent_schedules"), "broken", `{"cron":"nope","class":"B"}`)
	b.srv.Do(t, "HSET", b.key("delayed:last_enqueued_at"), "clear_cache", "2024-01-15 10:23:45 +0000")

	views, err := b.admin.Schedules(ctx, static)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]resq.ScheduleView{}
	var names []string
	for _, v := range views {
		byName[v.Name] = v
		names = append(names, v.Name)
	}
	if got := strings.Join(names, ","); got != "broken,clear_cache,heartbeat,json_one,report,staging_only" {
		t.Fatalf("names %s", got)
	}
	cc := byName["clear_cache"]
	if cc.Source != "static" || cc.Class != "ClearCache" || cc.Queue != "low" || cc.Cron != "0 9 * * * UTC" || cc.ArgsSize != len(`["all"]`) || cc.Description != "Clears the cache" {
		t.Fatalf("clear_cache %+v", cc)
	}
	if cc.Next.UTC().Hour() != 9 || !cc.Next.After(time.Now()) || cc.LastRun.Unix() != time.Date(2024, 1, 15, 10, 23, 45, 0, time.UTC).Unix() {
		t.Fatalf("clear_cache times %+v", cc)
	}
	if hb := byName["heartbeat"]; hb.Source != "persistent" || hb.Class != "Beat2" || hb.Every != "1m" {
		t.Fatalf("heartbeat %+v", hb)
	}
	if br := byName["broken"]; br.Problem == "" || br.Source != "persistent" {
		t.Fatalf("broken %+v", br)
	}
	if so := byName["staging_only"]; len(so.Envs) != 1 || so.Envs[0] != "staging" {
		t.Fatalf("staging_only %+v", so)
	}

	// Enqueue now: the job, no tick key, no last run.
	e, err := b.admin.EnqueueScheduleNow(ctx, static, "report", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Class != "Report" || e.Queue != "reports" {
		t.Fatalf("enqueued %+v", e)
	}
	job := b.srv.Do(t, "LPOP", b.key("queue:reports"))
	if !strings.Contains(job, `"class":"Report","args":[1,"x"]`) {
		t.Fatalf("job %s", job)
	}
	if _, err := b.admin.EnqueueScheduleNow(ctx, static, "clear_cache", nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := b.srv.Do(t, "LLEN", b.key("queue:low")); n != "1" {
		t.Fatalf("static enqueue now: %v", n)
	}
	if keys := b.srv.Do(t, "KEYS", b.key("resq:tick:*")); keys != "" {
		t.Fatalf("tick keys written: %v", keys)
	}
	if v := b.srv.Do(t, "HGET", b.key("delayed:last_enqueued_at"), "report"); v != "(nil)" {
		t.Fatalf("last run written: %v", v)
	}
	if _, err := b.admin.EnqueueScheduleNow(ctx, static, "nope", nil, nil); !errors.Is(err, resq.ErrNoSuchSchedule) {
		t.Fatalf("unknown: %v", err)
	}
	if err := b.admin.SetScheduleJSON(ctx, "noqueue", []byte(`{"every":"5m","class":"NoQ"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.admin.EnqueueScheduleNow(ctx, nil, "noqueue", nil, nil); err == nil || !strings.Contains(err.Error(), "no queue") {
		t.Fatalf("no queue: %v", err)
	}
	if e, err := b.admin.EnqueueScheduleNow(ctx, nil, "noqueue", nil, map[string]string{"NoQ": "nq"}); err != nil || e.Queue != "nq" {
		t.Fatalf("class queue: %+v %v", e, err)
	}

	ok, err := b.admin.RemoveSchedule(ctx, "report")
	if err != nil || !ok {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if ok, _ := b.admin.RemoveSchedule(ctx, "report"); ok {
		t.Fatal("removed twice")
	}
	if v := b.srv.Do(t, "HEXISTS", b.key("persistent_schedules"), "report"); v != "0" {
		t.Fatalf("still stored: %v", v)
	}
}

// tickOf reads the tick a signed tick job names: its enqueued_at.
func tickOf(t *testing.T, payload string) int64 {
	t.Helper()
	var p struct {
		EnqueuedAt json.Number `json:"enqueued_at"`
	}
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		t.Fatalf("job %s: %v", payload, err)
	}
	f, err := p.EnqueuedAt.Float64()
	if err != nil {
		t.Fatalf("job %s: enqueued_at %v", payload, err)
	}
	return int64(f)
}

func startScheduler(t *testing.T, b *bundle, cfg resq.SchedulerConfig) (*resq.Scheduler, func()) {
	t.Helper()
	s, err := resq.NewScheduler(b.conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var stopped bool
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scheduler: %v", err)
		}
	}
	t.Cleanup(stop)
	return s, stop
}

// Three Schedulers on one every-2s schedule, the master stopped half-way:
// every tick is enqueued exactly once (no duplicate, no gap: the standby
// that takes over fires the tick missed during the handover), and each job
// is signed with the tick's second as its enqueued_at.
func TestSchedulersFireEachTickOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	k, _ := keyring(t, resq.KeyHMAC)
	static, err := resq.ParseSchedule([]byte("beat:\n  every: 2s\n  class: Beat\n  queue: beats\n  args: [1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	scheds := map[string]*resq.Scheduler{}
	stops := map[string]func(){}
	for _, n := range []string{"s1", "s2", "s3"} {
		scheds[n], stops[n] = startScheduler(t, b, resq.SchedulerConfig{Name: n, LockTTL: 2 * time.Second, Refresh: 300 * time.Millisecond, Schedule: static, Keyring: k})
	}
	time.Sleep(5 * time.Second)
	master := b.srv.Do(t, "GET", b.key(b.ns+":resque_scheduler_master_lock"))
	if stops[master] == nil {
		t.Fatalf("master lock holds %q", master)
	}
	stops[master]()
	time.Sleep(6 * time.Second)
	for _, s := range stops {
		s()
	}
	jobs := strings.Split(b.srv.Do(t, "LRANGE", b.key("queue:beats"), "0", "-1"), "\n")
	perTick := map[int64]int{}
	lo, hi := int64(1<<62), int64(0)
	for _, j := range jobs {
		if !strings.HasPrefix(j, `{"class":"Beat","args":[1],"id":"`) || !strings.Contains(j, `"sig":`) {
			t.Fatalf("job %s: want a signed Beat", j)
		}
		tk := tickOf(t, j)
		perTick[tk]++
		lo, hi = min(lo, tk), max(hi, tk)
	}
	missing := 0
	for tk := lo; tk <= hi; tk += 2 {
		switch perTick[tk] {
		case 1:
		case 0:
			// Only a stall of the whole process for longer than the
			// period skips a tick (the policy then fires the latest).
			missing++
			t.Logf("tick %d missing", tk)
		default:
			t.Errorf("tick %d enqueued %d times", tk, perTick[tk])
		}
	}
	if missing > 1 {
		t.Errorf("%d ticks missing", missing)
	}
	if lo%2 != 0 || len(perTick) != len(jobs) || len(jobs) < 4 {
		t.Errorf("ticks %v (%d jobs): want one per even second", perTick, len(jobs))
	}
	var fired int64
	for _, s := range scheds {
		fired += s.Fired()
	}
	if fired != int64(len(jobs)) {
		t.Errorf("Fired() sums to %d, %d jobs", fired, len(jobs))
	}
	t.Logf("%d ticks from %d to %d, master %s stopped half-way", len(jobs), lo, hi, master)
}

// A schedule written as Ruby's Resque.set_schedule(name, config, persist:
// true) writes it (HSET persistent_schedules + SADD schedules_changed)
// fires in a running Scheduler, unsigned jobs in Ruby's bytes; removing it
// as Ruby's remove_schedule does stops it. A schedule without a queue uses
// ClassQueues; one with neither is skipped (logged) without stopping the
// others.
func TestPersistentScheduleWithoutRestart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s, _ := startScheduler(t, b, resq.SchedulerConfig{Name: "p1", Refresh: 300 * time.Millisecond, ClassQueues: map[string]string{"Mapped": "mq"}})
	testkit.Eventually(t, "master", s.Master)
	b.srv.Do(t, "HSET", b.key("persistent_schedules"), "ruby_set", `{"every":"1s","class":"RubySet","queue":"rq","args":[1,{"a":"b"}]}`)
	b.srv.Do(t, "HSET", b.key("persistent_schedules"), "mapped", `{"every":"1s","class":"Mapped"}`)
	b.srv.Do(t, "HSET", b.key("persistent_schedules"), "lost", `{"every":"1s","class":"NoQueueAnywhere"}`)
	b.srv.Do(t, "SADD", b.key("schedules_changed"), "ruby_set", "mapped", "lost")
	testkit.Eventually(t, "the persistent schedule fires", func() bool { return llen(t, b, "queue:rq") >= 2 })
	if got := b.srv.Do(t, "LINDEX", b.key("queue:rq"), "0"); got != `{"class":"RubySet","args":[1,{"a":"b"}]}` {
		t.Errorf("job %s", got)
	}
	if got := b.srv.Do(t, "HGET", b.key("delayed:last_enqueued_at"), "ruby_set"); !strings.Contains(got, ":") {
		t.Errorf("last_enqueued_at %q", got)
	}
	testkit.Eventually(t, "the mapped schedule fires", func() bool { return llen(t, b, "queue:mq") >= 1 })
	b.srv.Do(t, "HDEL", b.key("persistent_schedules"), "ruby_set")
	b.srv.Do(t, "SADD", b.key("schedules_changed"), "ruby_set")
	// The master pops the name and applies the removal before it fires
	// again.
	testkit.Eventually(t, "the removal read", func() bool { return b.srv.Do(t, "SCARD", b.key("schedules_changed")) == "0" })
	n := b.srv.Do(t, "LLEN", b.key("queue:rq"))
	time.Sleep(2500 * time.Millisecond)
	if m := b.srv.Do(t, "LLEN", b.key("queue:rq")); m != n {
		t.Errorf("removed schedule still fires: %s then %s jobs", n, m)
	}
	if b.srv.Do(t, "SCARD", b.key("schedules_changed")) != "0" {
		t.Error("schedules_changed not drained by the master")
	}
	if keys := b.srv.Do(t, "KEYS", b.key("queue:*")); strings.Contains(keys, "NoQueue") || strings.Count(keys, "\n") != 1 {
		t.Errorf("queues %q", keys)
	}
	if !s.Master() {
		t.Error("the scheduler lost mastership")
	}
}

// Catch-up: a schedule that fired before (delayed:last_enqueued_at) and
// missed ticks fires its latest missed tick once at start; with
// CatchUpNone it does not; a schedule that never fired waits for its next
// tick.
func TestScheduleCatchUp(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		policy resq.CatchUpPolicy
		want   string
	}{{resq.CatchUpLatest, "1"}, {resq.CatchUpNone, "0"}} {
		b := setup(t)
		static, err := resq.ParseSchedule([]byte("hourly:\n  every: 1h\n  class: H\n  queue: h\nnew_one:\n  every: 1h\n  class: N\n  queue: n\n"))
		if err != nil {
			t.Fatal(err)
		}
		b.srv.Do(t, "HSET", b.key("delayed:last_enqueued_at"), "hourly", time.Now().Add(-5*time.Hour).Format("2006-01-02 15:04:05 -0700"))
		s, stop := startScheduler(t, b, resq.SchedulerConfig{Name: "c", Schedule: static, CatchUp: c.policy})
		testkit.Eventually(t, "master", s.Master)
		if c.policy == resq.CatchUpLatest {
			testkit.Eventually(t, "the catch-up tick", func() bool { return llen(t, b, "queue:h") >= 1 })
		}
		time.Sleep(1500 * time.Millisecond)
		stop()
		if got := b.srv.Do(t, "LLEN", b.key("queue:h")); got != c.want {
			t.Errorf("policy %d: %s catch-up jobs, want %s", c.policy, got, c.want)
		}
		if got := b.srv.Do(t, "LLEN", b.key("queue:n")); got != "0" {
			t.Errorf("policy %d: a never-fired schedule fired at start", c.policy)
		}
	}
}

// A Scheduler with a signing keyring pushes signed tick jobs, which a
// worker that requires signatures verifies and runs.
func TestScheduleTicksSignedVerify(t *testing.T) {
	t.Parallel()
	b := setup(t)
	k, _ := keyring(t, resq.KeyEd25519)
	static, _ := resq.ParseSchedule([]byte("signed:\n  every: 1s\n  class: Tick\n  queue: q\n"))
	var ran, signed atomic.Int64
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Keyring: k})
	w.HandleFunc("Tick", func(ctx context.Context, j *resq.Job) error {
		ran.Add(1)
		if j.Signed {
			signed.Add(1)
		}
		return nil
	})
	testkit.RunWorker(t, w)
	startScheduler(t, b, resq.SchedulerConfig{Name: "sig", Schedule: static, Keyring: k})
	testkit.Eventually(t, "two ticks ran", func() bool { return ran.Load() >= 2 })
	if signed.Load() != ran.Load() {
		t.Errorf("%d of %d tick jobs signed", signed.Load(), ran.Load())
	}
	if n, _ := b.admin.FailureCount(context.Background()); n != 0 {
		fs, _ := b.admin.Failures(context.Background(), 0, 5)
		t.Errorf("failures: %+v", fs)
	}
}

// Without Lua the ticks fire through the WATCH/MULTI twin, once each.
func TestScheduleNoScripts(t *testing.T) {
	t.Parallel()
	b := noScriptsBundle(t)
	k, _ := keyring(t, resq.KeyHMAC)
	static, _ := resq.ParseSchedule([]byte("plain:\n  every: 1s\n  class: P\n  queue: p\n"))
	for _, n := range []string{"n1", "n2"} {
		startScheduler(t, b, resq.SchedulerConfig{Name: n, Schedule: static, Keyring: k, Refresh: 300 * time.Millisecond})
	}
	testkit.Eventually(t, "three ticks", func() bool { return llen(t, b, "queue:p") >= 3 })
	jobs := strings.Split(b.srv.Do(t, "LRANGE", b.key("queue:p"), "0", "-1"), "\n")
	seen := map[int64]bool{}
	for _, j := range jobs {
		tk := tickOf(t, j)
		if seen[tk] {
			t.Errorf("tick %d enqueued twice", tk)
		}
		seen[tk] = true
	}
	if keys := b.srv.Do(t, "KEYS", b.key("resq:tick:plain:*")); keys == "" {
		t.Error("no tick keys")
	}
}

func llen(t *testing.T, b *bundle, key string) int {
	t.Helper()
	n, err := strconv.Atoi(b.srv.Do(t, "LLEN", b.key(key)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A schedule whose job cannot be built (over the payload limit) is logged
// and retried, and holds up neither the other schedules' ticks nor
// mastership: with a poll of an hour, the retry waits for the poll, the
// other schedule still fires every second.
func TestScheduleBadJobDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	k, _ := keyring(t, resq.KeyHMAC)
	huge := strings.Repeat("x", 600<<10)
	static, err := resq.ParseSchedule([]byte("huge:\n  every: 1s\n  class: Huge\n  queue: h\n  args: [\"" + huge + "\"]\nbeat:\n  every: 1s\n  class: Beat\n  queue: beats\n"))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := startScheduler(t, b, resq.SchedulerConfig{Name: "bad", Schedule: static, Keyring: k, Poll: time.Hour})
	testkit.Eventually(t, "five beats", func() bool { return llen(t, b, "queue:beats") >= 5 })
	jobs := strings.Split(b.srv.Do(t, "LRANGE", b.key("queue:beats"), "0", "-1"), "\n")
	for i := 1; i < len(jobs); i++ {
		if d := tickOf(t, jobs[i]) - tickOf(t, jobs[i-1]); d < 1 {
			t.Errorf("beat ticks %d and %d are %ds apart", i-1, i, d)
		}
	}
	if n := llen(t, b, "queue:h"); n != 0 {
		t.Errorf("%d huge jobs enqueued", n)
	}
	if !s.Master() {
		t.Error("not master")
	}
}
