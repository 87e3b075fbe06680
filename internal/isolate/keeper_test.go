package isolate

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitPidFile waits for a job to write a pid to path.
func waitPidFile(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

// waitGone waits up to d for pid to be gone (a zombie counts as gone).
func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !ProcessAlive(pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return !ProcessAlive(pid)
}

// TestKeeperKillsJobsWhenWorkerDies: the keeper of a Sandbox ends what a
// job started (in its process group, and out of it with setsid) when the
// worker's end of its pipe closes, as the kernel closes it when the worker
// is SIGKILLed. Simulated here by closing the pipe.
func TestKeeperKillsJobsWhenWorkerDies(t *testing.T) {
	dir := t.TempDir()
	s := NewSandbox(Capabilities{})
	defer s.Close()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(context.Background(), Command{Path: "/bin/sh", Args: []string{"-c",
			"sleep 60 & echo $! > " + in + "; setsid sleep 61 & echo $! > " + out + "; wait"}, Timeout: time.Minute})
		done <- err
	}()
	inPid, outPid := waitPidFile(t, in), waitPidFile(t, out)
	k := s.keeperFor()
	if k == nil {
		t.Fatal("a Sandbox from NewSandbox has no keeper")
	}
	keeperPid := k.cmd.Process.Pid
	k.mu.Lock()
	k.w.Close() // what the kernel does when the worker dies
	k.dead = true
	k.mu.Unlock()
	if !waitGone(inPid, 2*time.Second) || !waitGone(outPid, 2*time.Second) {
		t.Fatalf("job processes survived the worker's death: in-group %v, setsid %v", ProcessAlive(inPid), ProcessAlive(outPid))
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the job did not end")
	}
	if !waitGone(keeperPid, 2*time.Second) {
		t.Error("the keeper did not exit")
	}
}

// TestKeeperForgetsEndedJobs: a job that ended is forgotten, and a worker
// that stops normally leaves nothing killed (a process that reused the
// job's pid is not touched) and no keeper running.
func TestKeeperForgetsEndedJobs(t *testing.T) {
	s := NewSandbox(Capabilities{})
	res, err := s.Run(context.Background(), Command{Path: "/bin/true"})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	keeperPid := s.keeperFor().cmd.Process.Pid
	bystander := exec.Command("sleep", "30")
	bystander.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = bystander.Process.Kill(); _ = bystander.Wait() }()
	s.Close()
	if ProcessAlive(keeperPid) {
		t.Error("the keeper outlived Close")
	}
	if !ProcessAlive(bystander.Process.Pid) {
		t.Error("Close killed an unrelated process")
	}
}

// TestKillJobsOfDeadOwner: processes marked with a dead worker's pid are
// killed; those of a live worker (this process) are not, nor those of a
// process that merely reuses a dead worker's pid (another start time).
func TestKillJobsOfDeadOwner(t *testing.T) {
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := gone.Process.Pid
	start := func(owner string) *exec.Cmd {
		c := exec.Command("sleep", "30")
		c.Env = []string{owner}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = c.Wait() }()
		return c
	}
	orphan := start(ownerEnv + "=" + strconv.Itoa(dead) + ".12345")
	mine := start(ownerMark())
	reused := start(ownerEnv + "=" + strconv.Itoa(os.Getpid()) + ".1") // this pid, another start time
	defer mine.Process.Kill()
	time.Sleep(50 * time.Millisecond) // let them exec
	if n := KillJobsOfDeadOwner(dead); n != 1 {
		t.Errorf("killed %d processes of the dead owner, want 1", n)
	}
	if !waitGone(orphan.Process.Pid, 2*time.Second) {
		t.Error("the dead owner's job process survived")
	}
	if n := KillJobsOfDeadOwner(os.Getpid()); n != 1 {
		t.Errorf("killed %d processes for a live owner, want 1 (the one with another start time)", n)
	}
	if !ProcessAlive(mine.Process.Pid) {
		t.Error("a live owner's job process was killed")
	}
	if !waitGone(reused.Process.Pid, 2*time.Second) {
		t.Error("a process marked by an earlier owner of this pid survived")
	}
}
