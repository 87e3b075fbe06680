package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// --retry with an exit-code rule: a program exiting 2 (fatal-exit) runs
// once and is recorded with its attempt count; one exiting 75 once is
// retried and then succeeds, leaving no record.
func TestWorkRetryExitCodes(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	fatal := script(t, dir, "fatal.sh", `echo run >> "`+dir+`/fatal.runs"; echo "bad input" >&2; exit 2`)
	flaky := script(t, dir, "flaky.sh", `echo "run $RESQ_JOB_ATTEMPT" >> "`+dir+`/flaky.runs"
if [ ! -e "`+dir+`/flaky.once" ]; then touch "`+dir+`/flaky.once"; echo "try later" >&2; exit 75; fi`)
	f.ok("enqueue", "--queue", "jobs", "Fatal", `[1]`)
	f.ok("enqueue", "--queue", "jobs", "Flaky", `[2]`)
	b := f.start("work", "--queues", "jobs", "--concurrency", "1", "--poll", "0.05", "--no-scheduler",
		"--exec", "Fatal="+fatal, "--exec", "Flaky="+flaky, "--retry", "*=limit:3,fatal-exit:2")
	testkit.Eventually(t, "3 runs", func() bool { return f.stats().Processed == 3 })
	time.Sleep(200 * time.Millisecond)
	b.cancel()
	if code := b.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("work exit %d\n%s", code, b.stderr.String())
	}
	runs := func(name string) int {
		data, _ := os.ReadFile(filepath.Join(dir, name+".runs"))
		return strings.Count(string(data), "run")
	}
	if runs("fatal") != 1 || runs("flaky") != 2 {
		t.Errorf("fatal ran %d times, flaky %d; want 1, 2", runs("fatal"), runs("flaky"))
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "flaky.runs")); string(data) != "run 0\nrun 1\n" {
		t.Errorf("RESQ_JOB_ATTEMPT of the runs: %q", data)
	}
	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list")
	if len(fails) != 1 || fails[0].Job.Class != "Fatal" || !strings.Contains(fails[0].Error, "exit status 2") ||
		!strings.HasSuffix(fails[0].Error, "(1 attempt, not retried)") {
		t.Fatalf("failures %+v", fails)
	}
}

func TestRetryFlagErrors(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ flag, want string }{
		{"Mailer", "want CLASS=POLICY"},
		{"Mailer=limit:x", "want a number of retries"},
		{"Mailer=limit:3,jitter:2", "from 0 to 1"},
		{"Mailer=delay:soon", "want a duration"},
		{"Mailer=backoff:fibonacci", "want constant, exponential or resque"},
		{"Mailer=base:10s", "need backoff:exponential"},
		{"Mailer=fatal-exit:0", "from 1 to 255"},
		{"Mailer=colour:red", `unknown key "colour"`},
		{"Mailer=limit:1,limit:2", "given twice"},
		{"Mailer=backoff:exponential,base:1h,max:1m", "above max"},
	} {
		_, err := parseRetryFlags([]string{c.flag})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--retry %s: %v; want an error containing %q", c.flag, err, c.want)
		}
	}
	cfg, err := parseRetryFlags([]string{"SendEmail=limit:5,backoff:exponential,base:10s,max:1h,jitter:0.2", "*=limit:3,delays:10s;1m;10m", "Sync=backoff:resque"})
	if err != nil {
		t.Fatal(err)
	}
	se := cfg.Classes["SendEmail"]
	if se.Limit != 5 || se.Backoff.Base != 10*time.Second || se.Backoff.Max != time.Hour || se.Backoff.Jitter != 0.2 {
		t.Errorf("SendEmail %+v", se)
	}
	if d := cfg.Default; d == nil || d.Limit != 3 || len(d.Backoff.Delays) != 3 || d.Backoff.Delays[2] != 10*time.Minute {
		t.Errorf("default %+v", d)
	}
	if s := cfg.Classes["Sync"]; s.Limit != 6 || s.Backoff.Delay(5) != 6*time.Hour {
		t.Errorf("Sync %+v", s)
	}
}

// Workers SIGKILLed again and again while jobs fail and are retried lose
// no job: a retry is written in the same MULTI as the ack, so a killed
// worker's job is either in its in-flight record (requeued by the next
// worker) or already back in its queue. Every job ends done, none in the
// failed list, and no counter is left.
func TestSIGKILLDuringRetries(t *testing.T) {
	t.Parallel()
	f := setup(t)
	marks := t.TempDir()
	// Fails on attempts 0 and 1, succeeds from attempt 2 on after 50 ms,
	// so the 200 jobs need at least 2.5 s of wall time on 4 slots — longer
	// than the eight short-lived workers below live together, on any
	// machine (a faster one finished them all before the last kill).
	job := script(t, t.TempDir(), "job.sh", `if [ "$RESQ_JOB_ATTEMPT" -lt 2 ]; then exit 75; fi
sleep 0.05
echo done >> "`+marks+`/done-$RESQ_JOB_ID"`)
	const jobs = 200
	for i := range jobs {
		f.ok("enqueue", "--queue", "q", "Job", fmt.Sprintf("[%d]", i))
	}
	args := []string{"work", "--queues", "q", "--concurrency", "4", "--poll", "0.05", "--no-scheduler",
		"--exec", "Job=" + job, "--retry", "Job=limit:forever"}
	kills := 0
	for round := 0; round < 8; round++ {
		p := f.startBinary(args...)
		time.Sleep(time.Duration(80+round*37%60) * time.Millisecond)
		if err := p.Signal("KILL"); err != nil {
			t.Fatal(err)
		}
		p.Wait(10 * time.Second)
		kills++
	}
	if m, _ := filepath.Glob(marks + "/done-*"); len(m) == jobs {
		t.Fatal("every job was done before the last kill: the test proved nothing")
	} else {
		t.Logf("%d of %d jobs done after %d kills", len(m), jobs, kills)
	}
	p := f.startBinary(args...)
	testkit.Eventually(t, "the last worker started", func() bool { _, e := p.Output(); return strings.Contains(string(e), "resq work starting") })
	testkit.Eventually(t, "every job done", func() bool { m, _ := filepath.Glob(marks + "/done-*"); return len(m) == jobs })
	p.Signal("QUIT")
	if code, err := p.Wait(10 * time.Second); err != nil || code != 0 {
		out, errOut := p.Output()
		t.Fatalf("QUIT: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if n := f.srv.Do(t, "LLEN", f.key("failed")); n != "0" {
		t.Errorf("%s failure records, want none", n)
	}
	if m, _ := filepath.Glob(marks + "/done-*"); len(m) != jobs {
		t.Errorf("%d jobs done, want %d", len(m), jobs)
	}
	if k := f.srv.Do(t, "KEYS", f.key("*resque-retry*")); k != "" {
		t.Errorf("retry keys left after %d kills: %s", kills, k)
	}
	if n := f.srv.Do(t, "LLEN", f.key("queue:q")); n != "0" {
		t.Errorf("%s jobs left in the queue", n)
	}
}
