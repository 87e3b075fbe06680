package resq_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/resq-go/resq"
)

// TestPruneZombieWorker: a worker on this host that was killed but not yet
// reaped by its parent (a zombie: kill(pid, 0) still succeeds) is dead, and
// prune recovers its job at once rather than seeing a live worker.
func TestPruneZombieWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	child := exec.Command("/bin/true")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	pid := child.Process.Pid
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d never became a zombie", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("kill(%d, 0) on the zombie: %v", pid, err)
	}
	host, _ := os.Hostname()
	dead := host + ":" + strconv.Itoa(pid) + ":q"
	b.srv.Do(t, "SADD", b.key("workers"), dead)
	b.srv.Do(t, "SET", b.key("worker:"+dead), `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":{"class":"Work","args":[1]}}`)
	b.srv.Do(t, "HSET", b.key("workers:heartbeat"), dead, time.Now().Format(time.RFC3339))
	res, err := b.admin.Prune(ctx, 0, resq.RequeueDeadJobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Pruned) != 1 || res.Pruned[0] != dead || res.Requeued != 1 {
		t.Fatalf("prune with a zombie worker: %+v; want it pruned and its job requeued", res)
	}
	if n, _ := b.admin.QueueSize(ctx, "q"); n != 1 {
		t.Fatalf("queue q holds %d jobs", n)
	}
}
