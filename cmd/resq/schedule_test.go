package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/testkit"
)

// resq schedule set (flags and JSON), list (text and --json, with a
// static file), enqueue-now and remove, and clear errors for bad schedules
// in set and in resq scheduler --schedule.
func TestScheduleCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "schedule.yml")
	os.WriteFile(file, []byte("nightly:\n  cron: \"0 3 * * * UTC\"\n  class: Nightly\n  queue: low\n  description: Nightly cleanup\n"), 0o644)

	mustContain(t, "set", f.ok("schedule", "set", "report", "--cron", "0 9 * * *", "--class", "Report", "--queue", "reports", "--args", `["pdf"]`), "schedule report set")
	if got := f.srv.Do(t, "HGET", f.key("persistent_schedules"), "report"); got != `{"class":"Report","queue":"reports","cron":"0 9 * * *","args":["pdf"]}` {
		t.Errorf("stored %s", got)
	}
	var setOut map[string]any
	f.okJSON(&setOut, "schedule", "set", "beat", `{"every":"30s","class":"Beat","queue":"beats"}`)
	if setOut["set"] != true {
		t.Errorf("set --json: %v", setOut)
	}
	// The documented spelling: --json before the config.
	f.ok("schedule", "set", "beat2", "--json", `{"every":"1m","class":"Beat","queue":"beats"}`)
	if f.srv.Do(t, "SISMEMBER", f.key("schedules_changed"), "beat2") != "1" {
		t.Error("schedules_changed not written")
	}

	list := f.ok("schedule", "list", "--schedule", file)
	mustContain(t, "list", list, "report", "0 9 * * *", "Report", "reports", "persistent", "nightly", "static", "Nightly cleanup", "every 30s")
	var views []struct {
		Name, Source, Cron, Every, Class, Queue string
		Next                                    time.Time `json:"next_run"`
	}
	f.okJSON(&views, "schedule", "list", "--schedule", file)
	if len(views) != 4 || views[2].Name != "nightly" || views[2].Source != "static" || views[2].Next.Hour() != 3 || views[2].Next.Location() != time.UTC {
		t.Errorf("list --json: %+v", views)
	}

	mustContain(t, "enqueue-now", f.ok("schedule", "enqueue-now", "report"), "enqueued Report on reports")
	if got := f.srv.Do(t, "LPOP", f.key("queue:reports")); !strings.Contains(got, `"class":"Report","args":["pdf"]`) {
		t.Errorf("job %s", got)
	}
	f.ok("schedule", "enqueue-now", "nightly", "--schedule", file)
	if f.srv.Do(t, "LLEN", f.key("queue:low")) != "1" {
		t.Error("static enqueue-now")
	}

	mustContain(t, "remove", f.ok("schedule", "remove", "report"), "schedule report removed")
	var rm map[string]any
	f.okJSON(&rm, "schedule", "remove", "report")
	if rm["removed"] != false {
		t.Errorf("remove twice: %v", rm)
	}
	if r := f.run("schedule", "remove", "report"); r.code == 0 || !strings.Contains(r.stderr, "no persistent schedule") {
		t.Errorf("remove missing: %+v", r)
	}

	bad := filepath.Join(dir, "bad.yml")
	os.WriteFile(bad, []byte("broken:\n  cron: \"0 25 * * *\"\n  class: X\n  queue: q\n"), 0o644)
	f.usageErrors([]usageCase{
		{[]string{"schedule", "set", "x", "--cron", "99 * * * *", "--class", "X"}, `schedule "x", field "cron"`},
		{[]string{"schedule", "set", "x", "--every", "often", "--class", "X"}, `field "every"`},
		{[]string{"schedule", "set", "x"}, "give the config"},
		{[]string{"schedule", "set", "x", "{", "--class", "X"}, "not both"},
		{[]string{"schedule", "set", "x", "{nope"}, "not valid JSON"},
		{[]string{"schedule", "enqueue-now", "nope"}, "no such schedule"},
		{[]string{"scheduler", "--schedule", bad}, `schedule "broken", field "cron"`},
		{[]string{"scheduler", "--schedule", filepath.Join(dir, "missing.yml")}, "missing.yml"},
		{[]string{"scheduler", "--catch-up", "all"}, "latest or none"},
		{[]string{"work", "--queues", "q", "--exec", "X=/bin/true", "--schedule", bad}, `schedule "broken"`},
		{[]string{"work", "--queues", "q", "--exec", "X=/bin/true", "--no-scheduler", "--schedule", file}, "--no-scheduler"},
	})
}

// Three resq scheduler processes fire an every-2s schedule file, signed;
// the master process is SIGKILLed again and again (and replaced). Every
// tick is enqueued at most once, and a tick is missing only if it fell due
// between a kill and the takeover and was not the latest such tick (the
// catch-up policy fires that one).
func TestSIGKILLRecurringSchedulers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	kr := filepath.Join(dir, "keys.json")
	f.ok("keys", "new", "--out", kr, "--type", "hmac-sha256")
	file := filepath.Join(dir, "schedule.yml")
	os.WriteFile(file, []byte("beat:\n  every: 2s\n  class: Beat\n  queue: beats\n"), 0o644)
	lock := f.ns + ":" + f.ns + ":resque_scheduler_master_lock"
	start := func() *isolate.Process {
		return f.startBinary("scheduler", "--schedule", file, "--keyring", kr, "--lock-ttl", "2s", "--lock-refresh", "400ms")
	}
	procs := map[int]*isolate.Process{}
	for range 3 {
		p := start()
		procs[p.Pid()] = p
	}
	type outage struct{ killed, taken int64 }
	var outages []outage
	began := time.Now()
	for len(outages) < 3 && time.Since(began) < 60*time.Second {
		time.Sleep(3100 * time.Millisecond)
		holder := f.srv.Do(t, "GET", lock)
		_, pidText, _ := strings.Cut(holder, ":")
		pid, _ := strconv.Atoi(pidText)
		p, ok := procs[pid]
		if !ok {
			continue
		}
		killed := time.Now()
		if err := p.Signal("KILL"); err != nil {
			t.Fatal(err)
		}
		p.Wait(5 * time.Second)
		delete(procs, pid)
		for time.Since(killed) < 15*time.Second {
			if h := f.srv.Do(t, "GET", lock); h != holder && h != "" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		outages = append(outages, outage{killed.Unix(), time.Now().Unix() + 1})
		q := start()
		procs[q.Pid()] = q
	}
	// A full outage: every scheduler SIGKILLed, none for 7 s. The ticks
	// missed meanwhile are not replayed: only the latest is caught up.
	for pid, p := range procs {
		p.Signal("KILL")
		p.Wait(5 * time.Second)
		delete(procs, pid)
	}
	allKilled := time.Now()
	time.Sleep(7 * time.Second)
	for range 2 {
		p := start()
		procs[p.Pid()] = p
	}
	for f.srv.Do(t, "GET", lock) == "" || f.srv.Do(t, "PTTL", lock) == "-2" {
		if time.Since(allKilled) > 30*time.Second {
			t.Fatal("no scheduler took the lock after the full outage")
		}
		time.Sleep(20 * time.Millisecond)
	}
	takenAt := time.Now()
	full := outage{allKilled.Unix(), takenAt.Unix() + 1}
	outages = append(outages, full)
	latest := takenAt.Add(-time.Second).Unix() &^ 1 // an even tick surely before the new master loaded
	time.Sleep(4500 * time.Millisecond)
	for _, p := range procs {
		p.Signal("TERM")
		if code, err := p.Wait(10 * time.Second); err != nil || code != 0 {
			_, stderr := p.Output()
			t.Errorf("scheduler exit %d, %v\n%s", code, err, stderr)
		}
	}
	jobs := strings.Split(f.srv.Do(t, "LRANGE", f.key("queue:beats"), "0", "-1"), "\n")
	perTick := map[int64]int{}
	lo, hi := int64(1<<62), int64(0)
	for _, j := range jobs {
		var p struct {
			Class      string
			EnqueuedAt json.Number `json:"enqueued_at"`
			Sig        any         `json:"sig"`
		}
		if err := json.Unmarshal([]byte(j), &p); err != nil || p.Class != "Beat" || p.Sig == nil {
			t.Fatalf("job %s: want a signed Beat (%v)", j, err)
		}
		fl, _ := p.EnqueuedAt.Float64()
		tk := int64(fl)
		perTick[tk]++
		lo, hi = min(lo, tk), max(hi, tk)
	}
	dups, missing, unexplained := 0, 0, 0
	for tk := lo; tk <= hi; tk += 2 {
		switch n := perTick[tk]; {
		case n > 1:
			dups++
		case n == 0:
			missing++
			explained := false
			for _, o := range outages {
				// Skipped by the policy: due in the outage, and a later
				// tick also due in it (the latest one is caught up).
				if tk >= o.killed && tk+2 <= o.taken {
					explained = true
				}
			}
			if !explained {
				// Only a stall of the master longer than the period
				// (a loaded machine) skips a tick outside an outage.
				unexplained++
				t.Logf("tick %d missing outside any outage %v", tk, outages)
			}
		}
	}
	t.Logf("%d ticks (%d..%d), %d outages (master SIGKILLed; the last one a full outage) %v: %d duplicated, %d missing (%d unexplained)", len(jobs), lo, hi, len(outages), outages, dups, missing, unexplained)
	skipped := 0
	for tk := (full.killed + 2) &^ 1; tk < latest; tk += 2 {
		if perTick[tk] != 0 {
			t.Errorf("tick %d of the full outage was replayed; the policy catches up the latest only", tk)
		}
		skipped++
	}
	if perTick[latest]+perTick[latest+2] == 0 {
		t.Errorf("the latest tick missed in the full outage (%d or %d) was not caught up", latest, latest+2)
	}
	if skipped < 2 {
		t.Errorf("the full outage skipped %d ticks; want at least 2", skipped)
	}
	if dups != 0 {
		t.Errorf("%d ticks enqueued more than once", dups)
	}
	if unexplained > 1 {
		t.Errorf("%d ticks missing outside the outages", unexplained)
	}
	if len(outages) < 4 {
		t.Errorf("only %d kills", len(outages))
	}
	if len(jobs) < 8 {
		t.Errorf("only %d ticks", len(jobs))
	}
}

// resq work --schedule fires the file's schedules through its own
// scheduler, signed with the worker's keyring, which the worker verifies.
func TestWorkFiresSchedule(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	kr := filepath.Join(dir, "keys.json")
	f.ok("keys", "new", "--out", kr, "--type", "hmac-sha256")
	file := filepath.Join(dir, "schedule.yml")
	os.WriteFile(file, []byte("beat:\n  every: 1s\n  class: Beat\n  queue: beats\n  args: [7]\nprod_only:\n  every: 1s\n  class: Beat\n  queue: beats\n  args: [8]\n  rails_env: production\n"), 0o644)
	marks := t.TempDir()
	job := script(t, t.TempDir(), "job.sh", `cat > "`+marks+`/$(date +%s%N)"`)
	b := f.start("work", "--queues", "beats", "--exec", "Beat="+job, "--keyring", kr, "--schedule", file, "--env", "staging", "--scheduler-name", "w-"+f.ns)
	testkit.Eventually(t, "two ticks ran", func() bool { es, _ := os.ReadDir(marks); return len(es) >= 2 })
	b.signal(t, sigQuit)
	if code := b.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit %d\n%s", code, b.stderr.String())
	}
	es, _ := os.ReadDir(marks)
	for _, e := range es {
		data, _ := os.ReadFile(filepath.Join(marks, e.Name()))
		if string(data) != "[7]" {
			t.Errorf("a job ran with args %s; want only the beat schedule's [7] (prod_only is for production)", data)
		}
	}
	if n := f.stats().Failed; n != 0 {
		t.Errorf("%d failures (unsigned ticks refused?)", n)
	}
}
