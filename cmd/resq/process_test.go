package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/testkit"
)

// These tests run the real resq binary as a separate process and signal it,
// as an operator (or a crash) would.

// resqBinary is the real resq program, built once per test binary.
func resqBinary(t *testing.T) string { return testkit.BuildResq(t) }

func (f *fixture) startBinary(args ...string) *isolate.Process {
	f.t.Helper()
	p, err := isolate.Start(isolate.Command{Path: resqBinary(f.t), Args: args, Env: f.env})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(p.Kill)
	return p
}

// A worker killed with SIGKILL in the middle of a job leaves the job in its
// in-flight record; the next worker on this host requeues it at once and
// runs it. Nothing is lost, nothing runs twice to completion.
func TestSIGKILLMidJobIsRecovered(t *testing.T) {
	t.Parallel()
	f := setup(t)
	marks := t.TempDir()
	slow := script(t, t.TempDir(), "slow.sh", `id="$RESQ_JOB_ID"; touch "`+marks+`/started-$id"; sleep 30; touch "`+marks+`/done-$id"`)
	fast := script(t, t.TempDir(), "fast.sh", `touch "`+marks+`/done-$RESQ_JOB_ID"`)
	f.ok("enqueue", "--queue", "q", "Job", `[1]`)

	p := f.startBinary("work", "--queues", "q", "--concurrency", "1", "--exec", "Job="+slow)
	testkit.Eventually(t, "job started", func() bool { m, _ := filepath.Glob(marks + "/started-*"); return len(m) == 1 })
	if v := f.srv.Do(t, "KEYS", f.key("worker:*")); !strings.Contains(v, ":q") {
		t.Fatalf("no in-flight record while the job runs: %q", v)
	}
	if err := p.Signal("KILL"); err != nil {
		t.Fatal(err)
	}
	p.Wait(10 * time.Second)
	if n := f.srv.Do(t, "LLEN", f.key("queue:q")); n != "0" {
		t.Fatalf("queue length %s right after the kill; the job should be in the dead worker's record", n)
	}

	p2 := f.startBinary("work", "--queues", "q", "--concurrency", "1", "--exec", "Job="+fast)
	testkit.Eventually(t, "recovered job done", func() bool { m, _ := filepath.Glob(marks + "/done-*"); return len(m) == 1 })
	p2.Signal("QUIT")
	if code, err := p2.Wait(10 * time.Second); err != nil || code != 0 {
		out, errOut := p2.Output()
		t.Fatalf("QUIT: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	var st struct {
		Processed, Failed, Workers, Pending int64
	}
	f.okJSON(&st, "stats")
	if st.Processed != 1 || st.Failed != 0 || st.Workers != 0 || st.Pending != 0 {
		t.Fatalf("stats after recovery = %+v", st)
	}
}

// QUIT lets the running job finish; TERM stops at once and requeues it.
func TestQUITAndTERM(t *testing.T) {
	t.Parallel()
	f := setup(t)
	marks := t.TempDir()
	job := script(t, t.TempDir(), "job.sh", `touch "`+marks+`/started-$RESQ_JOB_ID"; sleep 1; touch "`+marks+`/done-$RESQ_JOB_ID"`)

	f.ok("enqueue", "--queue", "q", "Job")
	p := f.startBinary("work", "--queues", "q", "--concurrency", "1", "--exec", "Job="+job)
	testkit.Eventually(t, "first job started", func() bool { m, _ := filepath.Glob(marks + "/started-*"); return len(m) == 1 })
	p.Signal("QUIT")
	if code, err := p.Wait(15 * time.Second); err != nil || code != 0 {
		t.Fatalf("QUIT: exit %d, %v", code, err)
	}
	if m, _ := filepath.Glob(marks + "/done-*"); len(m) != 1 {
		t.Fatal("QUIT did not let the running job finish")
	}

	f.ok("enqueue", "--queue", "q", "Job")
	p = f.startBinary("work", "--queues", "q", "--concurrency", "1", "--stop-timeout", "200ms", "--exec", "Job="+job)
	testkit.Eventually(t, "second job started", func() bool { m, _ := filepath.Glob(marks + "/started-*"); return len(m) == 2 })
	p.Signal("TERM")
	if code, err := p.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("TERM: exit %d, %v", code, err)
	}
	if n := f.srv.Do(t, "LLEN", f.key("queue:q")); n != "1" {
		t.Fatalf("after TERM the interrupted job should be back in the queue; LLEN = %s", n)
	}
	if v := f.srv.Do(t, "SCARD", f.key("workers")); v != "0" {
		t.Fatalf("workers still registered after TERM: %s", v)
	}
}
