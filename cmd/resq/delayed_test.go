package main

import (
	"fmt"
	"github.com/resq-go/resq/internal/testkit"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/isolate"
)

// resq enqueue --in/--at store resque-scheduler items; resq delayed counts,
// lists, removes and enqueues them now.
func TestEnqueueDelayedAndDelayedCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	out := f.ok("enqueue", "--in", "1h", "--queue", "mail", "Remind", `[42]`)
	mustContain(t, "enqueue --in", out, "delayed Remind for mail until ")
	var e struct {
		ID string    `json:"id"`
		At time.Time `json:"at"`
	}
	f.okJSON(&e, "enqueue", "--at", "2099-01-01T09:00:00Z", "--queue", "mail", "NewYear")
	if e.ID != "" || e.At.Unix() != 4070941200 {
		t.Errorf("enqueue --at --json = %+v", e)
	}
	if got := f.srv.Do(t, "LRANGE", f.key("delayed:4070941200"), "0", "-1"); got != `{"class":"NewYear","args":[],"queue":"mail"}` {
		t.Errorf("item = %s", got)
	}
	var st struct{ Timestamps, Jobs int64 }
	f.okJSON(&st, "delayed", "count")
	if st.Timestamps != 2 || st.Jobs != 2 {
		t.Errorf("count = %+v", st)
	}
	list := f.ok("delayed", "list")
	mustContain(t, "delayed list", list, "Remind", "[42]", "2099-01-01T09:00:00Z", "NewYear")
	var rows []struct {
		Queue string
		Job   struct{ Class string }
	}
	f.okJSON(&rows, "delayed", "list", "--class", "NewYear")
	if len(rows) != 1 || rows[0].Queue != "mail" {
		t.Errorf("list --class = %+v", rows)
	}
	mustContain(t, "enqueue-now", f.ok("delayed", "enqueue-now", "--class", "Remind"), "enqueued 1 delayed jobs")
	if got := f.srv.Do(t, "LRANGE", f.key("queue:mail"), "0", "-1"); got != `{"class":"Remind","args":[42]}` {
		t.Errorf("queue:mail = %s", got)
	}
	mustContain(t, "remove", f.ok("delayed", "remove", "--to", "2099-01-01T09:00:00Z"), "removed 1 delayed jobs")
	f.okJSON(&st, "delayed", "count")
	if st.Jobs != 0 {
		t.Errorf("jobs left: %+v", st)
	}
	f.usageErrors([]usageCase{
		{[]string{"enqueue", "--in", "1m", "--at", "2099-01-01T00:00:00Z", "--queue", "q", "X"}, "not both"},
		{[]string{"enqueue", "--at", "tomorrow", "--queue", "q", "X"}, "RFC 3339"},
		{[]string{"enqueue", "--in", "soon", "--queue", "q", "X"}, "not a duration"},
		{[]string{"delayed", "remove"}, "--all"},
		{[]string{"delayed", "list", "--args", "{"}, "JSON array"},
		{[]string{"delayed", "enqueue-now", "--all", "--class-queue", "X"}, "CLASS=QUEUE"},
		{[]string{"scheduler", "--lock-ttl", "2s", "--lock-refresh", "2s"}, "shorter than --lock-ttl"},
		{[]string{"work", "--queues", "q", "--exec", "X=/bin/true", "--no-scheduler", "--class-queue", "X=q"}, "--no-scheduler"},
	})
}

// resq work runs a scheduler by default: a job delayed by a second runs.
func TestWorkRunsScheduler(t *testing.T) {
	t.Parallel()
	f := setup(t)
	marks := t.TempDir()
	job := script(t, t.TempDir(), "job.sh", `touch "`+marks+`/ran"`)
	f.ok("enqueue", "--in", "1s", "--queue", "q", "Job", `[1]`)
	b := f.start("work", "--queues", "q", "--exec", "Job="+job, "--scheduler-name", "sched-"+f.ns)
	testkit.Eventually(t, "the delayed job ran", func() bool { _, err := os.Stat(filepath.Join(marks, "ran")); return err == nil })
	if v := f.srv.Do(t, "GET", f.ns+":"+f.ns+":resque_scheduler_master_lock"); v != "sched-"+f.ns {
		t.Errorf("master lock = %q", v)
	}
	b.signal(t, sigQuit)
	if code := b.wait(t, 15*time.Second); code != 0 {
		t.Errorf("exit %d\n%s", code, b.stderr.String())
	}
	if v := f.srv.Do(t, "EXISTS", f.ns+":"+f.ns+":resque_scheduler_master_lock"); v != "0" {
		t.Error("the lock was not released at a clean stop")
	}
}

// Three resq scheduler processes and thousands of delayed jobs; the master
// process is SIGKILLed again and again (and replaced). Every job reaches its
// queue exactly once, and a standby takes over within a few seconds.
func TestSIGKILLSchedulers(t *testing.T) {
	t.Parallel()
	f := setup(t)
	const n = 3000
	now, _ := strconv.ParseInt(strings.Split(f.srv.Do(t, "TIME"), "\n")[0], 10, 64)
	for lo := 0; lo < n; lo += 500 {
		args := []string{"EVAL", `for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local ts = tonumber(ARGV[3]) + (i % 15)
  local item = '{"class":"J","args":[' .. i .. '],"queue":"q"}'
  redis.call('RPUSH', ARGV[4] .. 'delayed:' .. ts, item)
  redis.call('SADD', ARGV[4] .. 'timestamps:' .. item, 'delayed:' .. ts)
  redis.call('ZADD', ARGV[4] .. 'delayed_queue_schedule', ts, ts)
end
return 1`, "0", strconv.Itoa(lo), strconv.Itoa(lo + 499), strconv.FormatInt(now-2, 10), f.ns + ":"}
		f.srv.Do(t, args...)
	}
	lock := f.ns + ":" + f.ns + ":resque_scheduler_master_lock"
	start := func() *isolate.Process {
		return f.startBinary("scheduler", "--lock-ttl", "2s", "--lock-refresh", "400ms", "--batch", "20")
	}
	procs := map[int]*isolate.Process{}
	for range 3 {
		p := start()
		procs[p.Pid()] = p
	}
	kills := 0
	var takeovers []time.Duration
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(700 * time.Millisecond)
		if kills >= 3 && f.srv.Do(t, "LLEN", f.key("queue:q")) == strconv.Itoa(n) && f.srv.Do(t, "EXISTS", f.key("delayed_queue_schedule")) == "0" {
			break
		}
		holder := f.srv.Do(t, "GET", lock)
		_, pidText, _ := strings.Cut(holder, ":")
		pid, _ := strconv.Atoi(pidText)
		p, ok := procs[pid]
		if !ok || kills >= 6 {
			continue
		}
		if err := p.Signal("KILL"); err != nil {
			t.Fatal(err)
		}
		p.Wait(5 * time.Second)
		delete(procs, pid)
		kills++
		killed := time.Now()
		for time.Since(killed) < 15*time.Second {
			if h := f.srv.Do(t, "GET", lock); h != holder && h != "" {
				takeovers = append(takeovers, time.Since(killed))
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		q := start()
		procs[q.Pid()] = q
	}
	for _, p := range procs {
		p.Signal("TERM")
		if code, err := p.Wait(10 * time.Second); err != nil || code != 0 {
			_, stderr := p.Output()
			t.Errorf("scheduler exit %d, %v\n%s", code, err, stderr)
		}
	}
	got := strings.Split(f.srv.Do(t, "LRANGE", f.key("queue:q"), "0", "-1"), "\n")
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	lost, dups := 0, 0
	for i := range n {
		switch count[fmt.Sprintf(`{"class":"J","args":[%d]}`, i)] {
		case 0:
			lost++
		case 1:
		default:
			dups++
		}
	}
	t.Logf("%d jobs, %d SIGKILLs of the master: %d queued, %d lost, %d duplicated; takeovers after %v", n, kills, len(got), lost, dups, takeovers)
	if lost != 0 || dups != 0 || len(got) != n {
		t.Errorf("lost %d, duplicated %d, queued %d of %d", lost, dups, len(got), n)
	}
	if kills < 3 {
		t.Errorf("only %d kills: the storm did not exercise takeover", kills)
	}
	for _, d := range takeovers {
		if d > 10*time.Second {
			t.Errorf("a standby took %v to take over (lock TTL 2s)", d)
		}
	}
}
