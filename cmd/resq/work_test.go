package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// script writes an executable bash script into dir.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/bash\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *fixture) stats() resq.Stats {
	f.t.Helper()
	var st resq.Stats
	f.okJSON(&st, "stats")
	return st
}

func TestWorkExecEndToEnd(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	// Records its stdin and job environment; fails for the second job.
	ok := script(t, dir, "record.sh", `cat > "`+dir+`/in-$RESQ_JOB_ID.json"
echo "$RESQ_JOB_CLASS $RESQ_JOB_QUEUE $RESQ_JOB_ID" > "`+dir+`/env-$RESQ_JOB_ID.txt"`)
	bad := script(t, dir, "bad.sh", `echo "starting" >&2
echo "disk is full" >&2
exit 3`)
	slow := script(t, dir, "slow.sh", `sleep 30`)

	var e struct{ ID string }
	f.okJSON(&e, "enqueue", "--queue", "jobs", "Record", `[{"user": 7, "token": "s3cret-token"}, "x"]`)
	okID := e.ID
	f.ok("enqueue", "--queue", "jobs", "Bad", `[1]`)
	f.ok("enqueue", "--queue", "jobs", "Slow")
	f.ok("enqueue", "--queue", "jobs", "Unregistered", `["s3cret-token"]`)

	b := f.start("work", "--queues", "jobs", "--concurrency", "3", "--poll", "0.05",
		"--exec", "Record="+ok, "--exec", "Bad="+bad, "--exec", "Slow="+slow, "--timeout", "1s")
	testkit.Eventually(t, "4 jobs processed", func() bool { return f.stats().Processed == 4 })
	b.cancel()
	if code := b.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("work exit %d\n%s", code, b.stderr.String())
	}

	// The program got the args on stdin and the job in its environment.
	in, err := os.ReadFile(filepath.Join(dir, "in-"+okID+".json"))
	if err != nil || compactJSON(in) != `[{"user":7,"token":"s3cret-token"},"x"]` {
		t.Fatalf("stdin of the job = %q, %v", in, err)
	}
	env, err := os.ReadFile(filepath.Join(dir, "env-"+okID+".txt"))
	if err != nil || strings.TrimSpace(string(env)) != "Record jobs "+okID {
		t.Fatalf("job environment = %q, %v", env, err)
	}

	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list")
	byClass := map[string]resq.FailureView{}
	for _, fv := range fails {
		byClass[fv.Job.Class] = fv
	}
	if len(fails) != 3 {
		t.Fatalf("want 3 failures, got %+v", fails)
	}
	if fv := byClass["Bad"]; fv.Exception != resq.ExceptionExecFailed || !strings.HasPrefix(fv.Error, "exit status 3: ") ||
		!strings.Contains(fv.Error, "disk is full") || fv.Queue != "jobs" {
		t.Errorf("Bad failure = %+v", fv)
	}
	if fv := byClass["Slow"]; fv.Exception != resq.ExceptionTimeout || !strings.HasPrefix(fv.Error, "timeout after 1s") {
		t.Errorf("Slow failure = exception %q error %q", fv.Exception, fv.Error)
	}
	if fv := byClass["Unregistered"]; fv.Exception != resq.ExceptionUnknownClass {
		t.Errorf("Unregistered failure = %+v", fv)
	}
	st := f.stats()
	if st.Processed != 4 || st.StatFailed != 3 || st.Workers != 0 || st.Pending != 0 {
		t.Errorf("stats after stop = %+v", st)
	}

	logs := b.stderr.String()
	mustContain(t, "work log", logs, `msg="resq work starting"`, "workers=3", "queues=jobs", "handlers=Record,Bad,Slow", "timeout=1s")
	if strings.Contains(logs, "s3cret-token") {
		t.Errorf("job arguments reached the log:\n%s", logs)
	}
}

func TestWorkSignals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	// Marks that it started, then takes a while.
	slowOK := script(t, dir, "slow-ok.sh", `touch "`+started+`-$RESQ_JOB_ID"; sleep 0.4`)
	hang := script(t, dir, "hang.sh", `touch "`+started+`-$RESQ_JOB_ID"; sleep 30`)
	running := func(id string) func() bool {
		return func() bool { _, err := os.Stat(started + "-" + id); return err == nil }
	}
	enqueue := func(f *fixture, class string) string {
		var e struct{ ID string }
		f.okJSON(&e, "enqueue", "--queue", "q", class)
		return e.ID
	}
	workArgs := []string{"work", "--queues", "q", "--concurrency", "2", "--poll", "0.02", "--stop-timeout", "2s",
		"--exec", "SlowOK=" + slowOK, "--exec", "Hang=" + hang}

	t.Run("QUIT finishes running jobs then exits 0", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		id := enqueue(f, "SlowOK")
		b := f.start(workArgs...)
		testkit.Eventually(t, "the job to start", running(id))
		b.signal(t, sigQuit)
		if code := b.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d\n%s", code, b.stderr.String())
		}
		if st := f.stats(); st.Processed != 1 || st.StatFailed != 0 || st.Pending != 0 || st.Workers != 0 {
			t.Fatalf("after QUIT: %+v", st)
		}
	})

	t.Run("TERM requeues running jobs and exits 0", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		id := enqueue(f, "Hang")
		b := f.start(workArgs...)
		testkit.Eventually(t, "the job to start", running(id))
		var ws []resq.WorkerView
		f.okJSON(&ws, "workers")
		busy := 0
		for _, w := range ws {
			if w.Working != nil && w.Working.Job.ID == id && w.Working.Queue == "q" {
				busy++
			}
		}
		if len(ws) != 2 || busy != 1 {
			t.Fatalf("workers while running: %+v", ws)
		}
		b.signal(t, sigTerm)
		if code := b.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d\n%s", code, b.stderr.String())
		}
		st := f.stats()
		if st.Processed != 0 || st.StatFailed != 0 || st.Pending != 1 || st.Workers != 0 {
			t.Fatalf("after TERM: %+v", st)
		}
		var jobs []resq.JobView
		f.okJSON(&jobs, "peek", "q")
		if len(jobs) != 1 || jobs[0].ID != id {
			t.Fatalf("requeued: %+v", jobs)
		}
	})

	t.Run("a second INT exits 1 at once", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		id := enqueue(f, "Hang")
		b := f.start(workArgs...)
		testkit.Eventually(t, "the job to start", running(id))
		b.signal(t, sigTerm)
		b.signal(t, os.Interrupt)
		if code := b.wait(t, 2*time.Second); code != 1 {
			t.Fatalf("exit %d, want 1\n%s", code, b.stderr.String())
		}
		mustContain(t, "log", b.stderr.String(), "second stop signal", "recovered by the next worker")
	})

	t.Run("USR2 pauses and CONT resumes", func(t *testing.T) {
		t.Parallel()
		f := setup(t)
		b := f.start(workArgs...)
		testkit.Eventually(t, "the worker to register", func() bool { return f.stats().Workers == 2 })
		b.signal(t, sigUSR2)
		b.signal(t, sigUSR2) // delivered after the first was acted on
		id := enqueue(f, "SlowOK")
		time.Sleep(300 * time.Millisecond) // a paused worker must leave the job alone
		if running(id)() || f.stats().Pending != 1 {
			t.Fatalf("a paused worker took a job")
		}
		b.signal(t, sigCont)
		testkit.Eventually(t, "the job to run after CONT", func() bool { return f.stats().Processed == 1 })
		b.signal(t, sigQuit)
		if code := b.wait(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d\n%s", code, b.stderr.String())
		}
	})
}

func TestWorkPollFromEnvironmentAndQueuesFromQUEUES(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	okScript := script(t, dir, "ok.sh", "exit 0")
	f.env = append(f.env, "QUEUES=a,b", "INTERVAL=0.05")
	f.ok("enqueue", "--queue", "b", "Job")
	b := f.start("work", "--concurrency", "1", "--exec", "Job="+okScript)
	testkit.Eventually(t, "the job from queue b", func() bool { return f.stats().Processed == 1 })
	var ws []resq.WorkerView
	f.okJSON(&ws, "workers")
	if len(ws) != 1 || ws[0].ID != ws[0].Host+":"+strconv.Itoa(ws[0].PID)+":a,b" {
		t.Fatalf("worker ids = %+v", ws)
	}
	b.signal(t, sigQuit)
	if code := b.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, b.stderr.String())
	}
}
