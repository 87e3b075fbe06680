package interop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/resq-go/resq/internal/testkit"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
)

func runScheduler(t *testing.T, conn *resq.Conn) {
	t.Helper()
	s, err := resq.NewScheduler(conn, resq.SchedulerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("scheduler: %v", err)
		}
	})
}

// node-resque's enqueueIn (node's key order, its rounded due second) is
// moved by resq's scheduler and run by a resq worker.
func TestNodeDelaysResqSchedules(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	lines := p.run("enqueue-in.js", "--queue", "jobs", "--class", "Later", "--args", `[7,"x"]`, "--in-ms", "1200")
	var ev struct {
		Timestamp int64 `json:"timestamp"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &ev); err != nil || ev.Timestamp == 0 {
		t.Fatalf("enqueue-in.js said %v", lines)
	}
	item := `{"class":"Later","queue":"jobs","args":[7,"x"]}`
	if got := p.srv.Do(t, "LRANGE", fmt.Sprintf("%s:delayed:%d", p.ns, ev.Timestamp), "0", "-1"); got != item {
		t.Fatalf("node's item = %s, want %s", got, item)
	}
	admin := resq.NewAdmin(p.conn)
	if vs, err := admin.Delayed(context.Background(), resq.DelayedFilter{Class: "Later"}, 0, -1); err != nil || len(vs) != 1 || vs[0].Queue != "jobs" || string(vs[0].Job.Args) != `[7,"x"]` {
		t.Fatalf("resq's view of node's delayed job: %+v, %v", vs, err)
	}
	got := make(chan string, 1)
	w := p.worker(resq.WorkerConfig{Queues: []string{"jobs"}, Concurrency: 1})
	w.HandleFunc("Later", func(ctx context.Context, j *resq.Job) error { got <- string(j.Args); return nil })
	testkit.RunWorker(t, w)
	runScheduler(t, p.conn)
	select {
	case s := <-got:
		if s != `[7,"x"]` {
			t.Fatalf("ran with %s", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("resq did not run node-resque's delayed job")
	}
}

// resq's delayed job is moved by node-resque's scheduler (which reads the
// item's queue) and run by a resq worker.
func TestResqDelaysNodeSchedules(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	ctx := context.Background()
	c := testkit.Client(t, p.conn, resq.ClientConfig{})
	if _, err := c.EnqueueIn(ctx, time.Second, "jobs", "Later", 1, map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	lines := p.run("scheduler.js", "--expect", "1", "--timeout-ms", "15000")
	if !strings.Contains(strings.Join(lines, "\n"), `"event":"transferred"`) {
		t.Fatalf("node's scheduler: %v", lines)
	}
	if got := p.srv.Do(t, "LRANGE", p.ns+":queue:jobs", "0", "-1"); got != `{"class":"Later","queue":"jobs","args":[1,{"k":"v"}]}` {
		t.Fatalf("node moved %s", got)
	}
	got := make(chan string, 1)
	w := p.worker(resq.WorkerConfig{Queues: []string{"jobs"}, Concurrency: 1})
	w.HandleFunc("Later", func(ctx context.Context, j *resq.Job) error { got <- string(j.Args); return nil })
	testkit.RunWorker(t, w)
	select {
	case s := <-got:
		if s != `[1,{"k":"v"}]` {
			t.Fatalf("ran with %s", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("resq did not run the job node's scheduler moved")
	}
	if n := p.srv.Do(t, "EXISTS", p.ns+":delayed_queue_schedule"); n != "0" {
		t.Errorf("node left the schedule behind")
	}
}
