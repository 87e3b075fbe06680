// Package interop_test holds resq against node-resque as a live peer: each
// side enqueues for the other, and node-resque reads resq's failures,
// workers and stats. node and interop/node/node_modules (npm ci) are
// required; a missing one fails the test with a message.
package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
)

var (
	pool = redistest.NewPool(redistest.Options{})
	nsN  atomic.Int64
)

func TestMain(m *testing.M) {
	testkit.Main(m, pool.Close)
}

type peer struct {
	t    *testing.T
	srv  *redistest.Server
	ns   string
	node string
	dir  string
	conn *resq.Conn
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed; the node-resque interop tests need Node.js 20 (apt-get install nodejs): %v", err)
	}
	dir, _ := filepath.Abs("node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "node-resque")); err != nil {
		t.Fatalf("node-resque is not installed; run `npm ci` in interop/node (scripts/test does): %v", err)
	}
	srv := pool.Get(t)
	ns := fmt.Sprintf("interop%d", nsN.Add(1))
	conn, err := resq.Open(resq.ConnConfig{URL: srv.URL(), Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &peer{t: t, srv: srv, ns: ns, node: node, dir: dir, conn: conn}
}

// run runs one interop/node script and returns its stdout lines.
func (p *peer) run(script string, args ...string) []string {
	p.t.Helper()
	argv := append([]string{filepath.Join(p.dir, script), "--redis", p.srv.URL(), "--namespace", p.ns}, args...)
	res, err := isolate.Run(context.Background(), isolate.Command{Path: p.node, Args: argv, Timeout: 30 * time.Second, MaxOutput: 4 << 20})
	if err != nil || res.ExitCode != 0 {
		p.t.Fatalf("node %s %v: exit %d, err %v\nstdout: %s\nstderr: %s", script, args, res.ExitCode, err, res.Stdout, res.Stderr)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(res.Stdout))
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

func (p *peer) worker(cfg resq.WorkerConfig) *resq.Worker {
	p.t.Helper()
	w, err := resq.NewWorker(p.conn, cfg)
	if err != nil {
		p.t.Fatal(err)
	}
	return w
}

// node-resque enqueues; a resq worker runs the jobs with their arguments.
func TestNodeEnqueuesResqWorks(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	p.run("enqueue.js", "--queue", "jobs", "--class", "Add", "--args", `[1,"two",{"three":3.5},null]`, "--count", "3")
	w := p.worker(resq.WorkerConfig{Queues: []string{"jobs"}, Concurrency: 2})
	got := make(chan string, 3)
	w.HandleFunc("Add", func(ctx context.Context, j *resq.Job) error { got <- string(j.Args) + "@" + j.Queue; return nil })
	testkit.RunWorker(t, w)
	for i := 0; i < 3; i++ {
		select {
		case s := <-got:
			if s != `[1,"two",{"three":3.5},null]@jobs` {
				t.Fatalf("handler got %s", s)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("resq did not run node-resque's jobs")
		}
	}
	admin := resq.NewAdmin(p.conn)
	testkit.Eventually(t, "processed=3", func() bool { st, _ := admin.Stats(context.Background()); return st.Processed == 3 })
}

// resq enqueues; node-resque's worker runs the jobs (it ignores resq's extra
// payload fields) and its failures are readable by resq.
func TestResqEnqueuesNodeWorks(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	ctx := context.Background()
	c := testkit.Client(t, p.conn, resq.ClientConfig{})
	if _, err := c.Enqueue(ctx, "nodeq", "Echo", 1, "x", map[string]any{"k": []int{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, "nodeq", "FailJob", "y"); err != nil {
		t.Fatal(err)
	}
	lines := p.run("work.js", "--queues", "nodeq", "--jobs", "Echo,FailJob", "--expect", "2", "--timeout-ms", "15000")
	var performs []string
	for _, l := range lines {
		var ev struct {
			Event string          `json:"event"`
			Class string          `json:"class"`
			Args  json.RawMessage `json:"args"`
		}
		json.Unmarshal([]byte(l), &ev)
		if ev.Event == "perform" {
			performs = append(performs, ev.Class+string(ev.Args))
		}
	}
	if strings.Join(performs, " ") != `Echo[1,"x",{"k":[1,2]}] FailJob["y"]` {
		t.Fatalf("node performed %v\n%s", performs, strings.Join(lines, "\n"))
	}
	admin := resq.NewAdmin(p.conn)
	fs, err := admin.Failures(ctx, 0, 10)
	if err != nil || len(fs) != 1 {
		t.Fatalf("failures %v %v", fs, err)
	}
	f := fs[0]
	if f.Job.Class != "FailJob" || f.Error != "boom from node" || f.Queue != "nodeq" || f.Time.IsZero() {
		t.Fatalf("resq's reading of node's failure: %+v", f)
	}
	// resq retries node's failure; the job goes back to its queue.
	if q, err := admin.RetryFailure(ctx, 0); err != nil || q != "nodeq" {
		t.Fatalf("retry: %q %v", q, err)
	}
	if n, _ := admin.QueueSize(ctx, "nodeq"); n != 1 {
		t.Fatalf("queue size after retry = %d", n)
	}
}

type nodeView struct {
	Queues       []string                   `json:"queues"`
	Length       map[string]int             `json:"length"`
	FailedCount  int                        `json:"failedCount"`
	Failed       []map[string]any           `json:"failed"`
	Workers      map[string]string          `json:"workers"`
	AllWorkingOn map[string]json.RawMessage `json:"allWorkingOn"`
	Stats        map[string]any             `json:"stats"`
}

// node-resque reads resq's queues, failures, workers (with the running job)
// and stats, and removes a failure resq wrote byte-for-byte.
func TestNodeReadsResqState(t *testing.T) {
	t.Parallel()
	p := newPeer(t)
	ctx := context.Background()
	c := testkit.Client(t, p.conn, resq.ClientConfig{})
	w := p.worker(resq.WorkerConfig{Queues: []string{"a", "b"}, Concurrency: 2})
	hold := make(chan struct{})
	started := make(chan struct{}, 1)
	w.HandleFunc("Hold", func(ctx context.Context, j *resq.Job) error { started <- struct{}{}; <-hold; return nil })
	w.HandleFunc("Fail", func(ctx context.Context, j *resq.Job) error { return fmt.Errorf("payment declined: <b>&</b>") })
	c.Enqueue(ctx, "a", "Fail", map[string]string{"to": "a/b@example.com"})
	stop := testkit.RunWorker(t, w)
	admin := resq.NewAdmin(p.conn)
	testkit.Eventually(t, "failure", func() bool { n, _ := admin.FailureCount(ctx); return n == 1 })
	c.Enqueue(ctx, "b", "Hold", 5)
	<-started
	c.Enqueue(ctx, "c", "Pending")

	var v nodeView
	lines := p.run("inspect.js")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &v); err != nil {
		t.Fatalf("inspect output %v: %v", lines, err)
	}
	close(hold)
	if v.FailedCount != 1 || len(v.Failed) != 1 {
		t.Fatalf("node failedCount=%d failed=%v", v.FailedCount, v.Failed)
	}
	if v.Failed[0]["error"] != "payment declined: <b>&</b>" || v.Failed[0]["queue"] != "a" {
		t.Fatalf("node's view of the failure: %v", v.Failed[0])
	}
	// node-resque keys workers by host:pid (its MultiWorker names differ in
	// the pid part), so one resq process shows as one node entry; Ruby and
	// resque-web list each slot. See docs/compatibility in README.
	short := resq.ShortWorker(w.IDs()[0])
	if q, ok := v.Workers[short]; len(v.Workers) != 1 || !ok || !strings.HasPrefix(q, "a,b:") {
		t.Fatalf("node sees workers %v; want %s with queues a,b:N", v.Workers, short)
	}
	if _, ok := v.AllWorkingOn[short]; !ok {
		t.Fatalf("allWorkingOn = %v", v.AllWorkingOn)
	}
	if v.Length["c"] != 1 {
		t.Fatalf("node queue lengths %v", v.Length)
	}
	if fmt.Sprint(v.Stats["processed"]) != "1" || fmt.Sprint(v.Stats["failed"]) != "1" {
		t.Fatalf("node stats %v", v.Stats)
	}
	stop()

	out := p.run("remove-failed.js", "--index", "0")
	if !strings.Contains(strings.Join(out, " "), `"removed":1`) {
		t.Fatalf("node removeFailed output %v", out)
	}
	if n, _ := admin.FailureCount(ctx); n != 0 {
		t.Fatalf("node could not remove resq's failure record byte-for-byte; %d left\n%s", n, strings.Join(out, "\n"))
	}
}
