package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/testkit"
)

// readPid waits for a job to write a pid to path.
func readPid(t *testing.T, path string) int {
	t.Helper()
	var pid int
	testkit.Eventually(t, "pid in "+filepath.Base(path), func() bool {
		b, _ := os.ReadFile(path)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return pid > 0
	})
	return pid
}

// goneWithin reports whether pid is gone (or a zombie) within d.
func goneWithin(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !isolate.ProcessAlive(pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// keeperOf returns the pid of the job keeper the worker pid started.
func keeperOf(t *testing.T, worker int) int {
	t.Helper()
	var found int
	testkit.Eventually(t, "the worker's job keeper", func() bool {
		names, _ := filepath.Glob("/proc/[0-9]*/stat")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				continue
			}
			i := strings.LastIndexByte(string(b), ')')
			if fs := strings.Fields(string(b[i+1:])); len(fs) > 1 && fs[1] == strconv.Itoa(worker) {
				dir := filepath.Dir(n)
				cmdline, _ := os.ReadFile(dir + "/cmdline")
				if strings.Contains(string(cmdline), "\x00keeper\x00") {
					found, _ = strconv.Atoi(filepath.Base(dir))
					return true
				}
			}
		}
		return false
	})
	return found
}

// TestSIGKILLedWorkerLeavesNoJobProcess: an --exec job that started
// `sleep 60 &` does not leave it running when the worker is SIGKILLed
// (the worker's keeper kills the job's tree), and the next worker runs the
// recovered job with nothing of the first run left.
func TestSIGKILLedWorkerLeavesNoJobProcess(t *testing.T) {
	t.Parallel()
	f := setup(t)
	marks := scriptDir(t)
	job := script(t, marks, "bg.sh", `if [ -e "`+marks+`/ran-$RESQ_JOB_ID" ]; then touch "`+marks+`/again"; exit 0; fi
touch "`+marks+`/ran-$RESQ_JOB_ID"; sleep 60 & echo $! > "`+marks+`/pid"; setsid sleep 61 & echo $! > "`+marks+`/setsid"; wait`)
	f.ok("enqueue", "--queue", "q", "Job")
	p := f.startBinary("work", "--queues", "q", "--concurrency", "1", "--exec", "Job="+job)
	bg, escaped := readPid(t, marks+"/pid"), readPid(t, marks+"/setsid")
	if err := p.Signal("KILL"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if !goneWithin(bg, 2*time.Second) || !goneWithin(escaped, 2*time.Second) {
		t.Fatalf("after SIGKILL of the worker its job's processes are still running: sleep 60 & alive=%v, setsid sleep alive=%v",
			isolate.ProcessAlive(bg), isolate.ProcessAlive(escaped))
	}
	t.Logf("the job's background processes were gone %s after the worker's SIGKILL", time.Since(killed).Round(time.Millisecond))
	p2 := f.startBinary("work", "--queues", "q", "--concurrency", "1", "--exec", "Job="+job)
	testkit.Eventually(t, "recovered job ran again", func() bool { _, err := os.Stat(marks + "/again"); return err == nil })
	p2.Signal("QUIT")
	if code, err := p2.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("QUIT: exit %d, %v", code, err)
	}
}

// TestPruneKillsWhatTheKeeperMissed: when the keeper is gone too (killed
// first), the job's background process survives the worker's SIGKILL, and
// resq prune on the same host kills it before it requeues the job.
func TestPruneKillsWhatTheKeeperMissed(t *testing.T) {
	t.Parallel()
	f := setup(t)
	marks := scriptDir(t)
	job := script(t, marks, "bg.sh", `sleep 60 & echo $! > "`+marks+`/pid"; wait`)
	f.ok("enqueue", "--queue", "q", "Job")
	p := f.startBinary("work", "--queues", "q", "--concurrency", "1", "--exec", "Job="+job)
	bg := readPid(t, marks+"/pid")
	keeper := keeperOf(t, p.Pid())
	if err := (&os.Process{Pid: keeper}).Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	p.Signal("KILL")
	p.Wait(10 * time.Second)
	if goneWithin(bg, 300*time.Millisecond) {
		t.Fatal("the background process died without keeper: this test no longer shows the prune sweep")
	}
	out := f.ok("prune")
	if !strings.Contains(out, "pruned 1 dead worker") {
		t.Fatalf("prune: %s", out)
	}
	if !goneWithin(bg, 2*time.Second) {
		_ = (&os.Process{Pid: bg}).Kill()
		t.Fatal("resq prune requeued the dead worker's job and left its background process running")
	}
	if n := f.srv.Do(t, "LLEN", f.key("queue:q")); n != "1" {
		t.Fatalf("the job was not requeued: LLEN %s", n)
	}
}
