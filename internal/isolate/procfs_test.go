package isolate

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// TestProcessAliveZombie: a child that has exited but was not reaped still
// answers kill(pid, 0), yet it is not a live process (a dead worker whose
// parent has not reaped it must be pruned).
func TestProcessAliveZombie(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if st, ok := processState(pid); ok && st == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d never became a zombie", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("kill(%d, 0) on the zombie: %v (the test needs an unreaped child)", pid, err)
	}
	if ProcessAlive(pid) {
		t.Errorf("ProcessAlive(%d) = true for a zombie", pid)
	}
	if !ProcessAlive(os.Getpid()) {
		t.Error("ProcessAlive(self) = false")
	}
	_ = cmd.Wait()
	if ProcessAlive(pid) {
		t.Errorf("ProcessAlive(%d) = true after it was reaped", pid)
	}
}
