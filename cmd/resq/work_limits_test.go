package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/testkit"
)

// scriptDir is a directory for job scripts that any uid can read, run and
// write to, as /tmp (jobs under a process limit run as a dedicated uid when
// the worker is root).
func scriptDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "resq-limits-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// noJobProcesses fails if a process of one of the jobs is still alive.
func noJobProcesses(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if pids := isolate.ProcessesWithEnv("RESQ_JOB_ID=" + id); len(pids) > 0 {
			isolate.KillProcessesWithEnv("RESQ_JOB_ID=" + id)
			t.Errorf("processes of job %s survived: %v", id, pids)
		}
	}
}

// TestWorkLimitsHostileJobs runs hostile --exec programs under resq work's
// limits: each is killed (or refused) within its limit and recorded as a
// failure naming the limit, the normal job behind them runs, the worker
// stays small, and no job process is left.
func TestWorkLimitsHostileJobs(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := scriptDir(t)
	bomb := script(t, dir, "membomb.sh", `x=a; for i in $(seq 30); do x=$x$x; done; echo ${#x}`) // 1 GiB
	fds := script(t, dir, "fds.sh", `for i in $(seq 10000); do exec {fd}</dev/null || exit 1; done; echo opened`)
	flood := script(t, dir, "flood.sh", `exec yes`)
	ok := script(t, dir, "ok.sh", `cat > /dev/null; echo fine`)

	ids := map[string]string{}
	for _, class := range []string{"MemBomb", "FDs", "Flood", "OK"} {
		var e struct{ ID string }
		f.okJSON(&e, "enqueue", "--queue", "hostile", class)
		ids[class] = e.ID
	}
	start := time.Now()
	b := f.start("work", "--queues", "hostile", "--concurrency", "1", "--poll", "0.02",
		"--timeout", "60s", "--memory", "256MiB", "--max-files", "256",
		"--max-output", "4KiB", "--max-output-total", "4MiB",
		"--exec", "MemBomb="+bomb, "--exec", "FDs="+fds,
		"--exec", "Flood="+flood, "--exec", "OK="+ok)
	deadline := time.Now().Add(60 * time.Second)
	for f.stats().Processed < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("processed %d of 4\n%s", f.stats().Processed, b.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	rss := isolate.RSS()
	if rss > 400<<20 {
		t.Errorf("worker RSS %s", isolate.FormatBytes(rss))
	}
	b.cancel()
	if code := b.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("work exit %d\n%s", code, b.stderr.String())
	}
	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list")
	byClass := map[string]resq.FailureView{}
	for _, fv := range fails {
		byClass[fv.Job.Class] = fv
	}
	want := map[string]struct{ exception, prefix string }{
		"MemBomb": {resq.ExceptionResourceLimit, "memory limit 256 MiB exceeded (" + bomb + ", exit status "},
		"FDs":     {resq.ExceptionResourceLimit, "open-file limit (256) reached (" + fds + ", exit status 1)"},
		"Flood":   {resq.ExceptionResourceLimit, "output limit: the job wrote more than 4 MiB and was killed (" + flood + ", killed by signal killed) (output truncated: "},
	}
	for class, w := range want {
		fv, found := byClass[class]
		if !found || fv.Exception != w.exception || !strings.HasPrefix(fv.Error, w.prefix) {
			t.Errorf("%s failure = %q %q\nwant %q %q…", class, fv.Exception, fv.Error, w.exception, w.prefix)
		}
	}
	if _, failed := byClass["OK"]; failed || len(fails) != 3 {
		t.Errorf("failures: %+v", fails)
	}
	logs := b.stderr.String()
	mustContain(t, "work log", logs, `msg="job isolation"`, "class=MemBomb", "mode=command",
		"RLIMIT_DATA", `job_limits="memory 256 MiB, open files 256, output kept 4 KiB per stream, killed over 4 MiB written"`)
	noJobProcesses(t, ids["MemBomb"], ids["FDs"], ids["Flood"], ids["OK"])
	t.Logf("4 jobs (3 hostile) in %s; worker (test process) RSS %s", took.Round(time.Millisecond), isolate.FormatBytes(rss))
}

// TestWorkTimeoutIgnoringTERM: a busy loop that ignores SIGTERM is killed
// at its timeout plus the 2 s grace, and the job behind it runs.
func TestWorkTimeoutIgnoringTERM(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := scriptDir(t)
	loop := script(t, dir, "loop.sh", `trap '' TERM; while :; do :; done`)
	var e struct{ ID string }
	f.okJSON(&e, "enqueue", "--queue", "loop", "Loop")
	f.ok("enqueue", "--queue", "loop", "OK")
	start := time.Now()
	b := f.start("work", "--queues", "loop", "--concurrency", "1", "--poll", "0.02", "--timeout", "1s",
		"--exec", "Loop="+loop, "--exec", "OK="+script(t, dir, "ok.sh", "true"))
	testkit.Eventually(t, "2 jobs", func() bool { return f.stats().Processed == 2 })
	took := time.Since(start)
	b.cancel()
	b.wait(t, 10*time.Second)
	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list")
	if len(fails) != 1 || fails[0].Exception != resq.ExceptionTimeout || fails[0].Error != "timeout after 1s: "+loop+" killed" {
		t.Fatalf("failures: %+v", fails)
	}
	if took > 8*time.Second {
		t.Errorf("the loop was killed after %s; its limit is 1s + 2s grace", took)
	}
	noJobProcesses(t, e.ID)
}

// TestWorkCPULimit: a busy loop is killed when it has used its CPU time,
// long before its wall-clock timeout.
func TestWorkCPULimit(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := scriptDir(t)
	spin := script(t, dir, "spin.sh", `while :; do :; done`)
	var e struct{ ID string }
	f.okJSON(&e, "enqueue", "--queue", "cpu", "Spin")
	f.ok("enqueue", "--queue", "cpu", "OK")
	b := f.start("work", "--queues", "cpu", "--concurrency", "1", "--poll", "0.02", "--timeout", "60s", "--cpu", "1s",
		"--exec", "Spin="+spin, "--exec", "OK="+script(t, dir, "ok.sh", "true"))
	start := time.Now()
	testkit.Eventually(t, "2 jobs", func() bool { return f.stats().Processed == 2 })
	took := time.Since(start)
	b.cancel()
	b.wait(t, 10*time.Second)
	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list")
	if len(fails) != 1 || fails[0].Exception != resq.ExceptionResourceLimit ||
		!strings.HasPrefix(fails[0].Error, "CPU time limit 1s exceeded ("+spin+", killed by signal ") {
		t.Fatalf("failures: %+v", fails)
	}
	mustContain(t, "work log", b.stderr.String(), "CPU 1s by RLIMIT_CPU per process")
	noJobProcesses(t, e.ID)
	t.Logf("spin killed, next job done, after %s", took.Round(time.Millisecond))
}

// TestWorkForkBomb runs a fork bomb under --max-procs, after a harmless job
// that shows the limit holds. Where no mechanism can bound a job's
// processes (not root, no delegated cgroup v2) the worker must refuse to
// start, and in CI that fails the test rather than letting a bomb loose.
func TestWorkForkBomb(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := scriptDir(t)
	caps := isolate.Probe()
	if err := caps.Check(isolate.Limits{Procs: 32}); err != nil {
		r := f.run("work", "--queues", "q", "--max-procs", "32", "--exec", "X="+script(t, dir, "x.sh", "true"))
		if r.code == 0 || !strings.Contains(r.stderr, "a process limit cannot be enforced here") {
			t.Fatalf("resq work accepted a process limit it cannot enforce: %v", r)
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("this CI machine cannot bound a job's processes: %v", err)
		}
		t.Skipf("cannot bound a job's processes here: %v", err)
	}
	t.Logf("process limit: %s", caps.Describe(isolate.Limits{Procs: 32}))
	sleeps := script(t, dir, "sleeps.sh", `for i in $(seq 100); do sleep 30 & echo $i > `+dir+`/count; done; wait`)
	bomb := script(t, dir, "bomb.sh", `:(){ :|:& };:`)
	ok := script(t, dir, "ok.sh", `echo fine`)
	var e struct{ ID string }
	f.okJSON(&e, "enqueue", "--queue", "procs", "Sleeps")
	sleepsID := e.ID
	b := f.start("work", "--queues", "procs", "--concurrency", "1", "--poll", "0.02", "--timeout", "10s",
		"--max-procs", "32", "--exec", "Sleeps="+sleeps, "--exec", "Bomb="+bomb, "--exec", "OK="+ok)
	testkit.Eventually(t, "the sleeps job", func() bool { return f.stats().Processed == 1 })
	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list")
	count, _ := os.ReadFile(filepath.Join(dir, "count"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(count)))
	if len(fails) != 1 || fails[0].Exception != resq.ExceptionResourceLimit || !strings.HasPrefix(fails[0].Error, "process limit (32) reached") {
		t.Fatalf("sleeps job: %+v", fails)
	}
	if n < 1 || n >= 32 {
		t.Fatalf("%d sleeps started under a limit of 32 processes", n)
	}
	noJobProcesses(t, sleepsID)

	// The limit holds: now the bomb, then a normal job behind it.
	f.okJSON(&e, "enqueue", "--queue", "procs", "Bomb")
	bombID := e.ID
	f.ok("enqueue", "--queue", "procs", "OK")
	testkit.Eventually(t, "bomb and ok", func() bool { return f.stats().Processed == 3 })
	b.cancel()
	if code := b.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("work exit %d\n%s", code, b.stderr.String())
	}
	f.okJSON(&fails, "failed", "list")
	if len(fails) != 2 || fails[1].Job.Class != "Bomb" || fails[1].Exception != resq.ExceptionResourceLimit || !strings.Contains(fails[1].Error, "process") {
		t.Fatalf("failures: %+v", fails)
	}
	noJobProcesses(t, bombID)
	t.Logf("%d sleeps started; bomb: %s", n, fails[1].Error)
}

func TestWorkLimitFlagErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	x := "X=" + script(t, dir, "x.sh", "true")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--memory", "100"}, "memory limit 100 B is below 1 MiB"},
		{[]string{"--cpu", "10ms"}, "CPU-time limit 10ms is below 1s"},
		{[]string{"--max-procs", "1"}, "process limit 1 leaves no room"},
		{[]string{"--max-files", "-3"}, "open-file limit -3 is negative"},
		{[]string{"--class-concurrency", "X=0"}, "want CLASS=N with N at least 1"},
		{[]string{"--class-concurrency", "X"}, "want CLASS=N"},
	} {
		r := f.run(append([]string{"work", "--queues", "q", "--exec", x}, c.args...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("work %v: %v\nwant %q", c.args, r, c.want)
		}
	}
}

func TestEnqueueMaxQueueLength(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.ok("enqueue", "--queue", "capped", "--max-queue-length", "2", "Job", "[1]")
	f.ok("enqueue", "--queue", "capped", "--max-queue-length", "2", "Job", "[2]")
	r := f.run("enqueue", "--queue", "capped", "--max-queue-length", "2", "Job", "[3]")
	if r.code != exitFailure || !strings.Contains(r.stderr, "queue capped is full (2 jobs, cap 2); the job was NOT enqueued") {
		t.Fatalf("third enqueue: %v", r)
	}
	if got := f.srv.Do(t, "LLEN", f.key("queue:capped")); got != "2" {
		t.Fatalf("queue length %s", got)
	}
	// Without the flag there is no cap.
	f.ok("enqueue", "--queue", "capped", "Job", "[4]")
	if r := f.run("enqueue", "--queue", "capped", "--max-queue-length", "-1", "Job"); r.code != exitUsage {
		t.Fatalf("negative cap: %v", r)
	}
}
