package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// As a warm child, the test binary serves jobs whose class says what to do.
func init() {
	RunShimIfRequested() // the shim must apply its limits before any test code runs
	if !InChild() {
		return
	}
	conn, err := OpenChildConn()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := conn.Ready(); err != nil {
		os.Exit(2)
	}
	for {
		req, ctx, err := conn.Next()
		if err == io.EOF {
			os.Exit(0)
		}
		if err != nil {
			os.Exit(2)
		}
		resp := &Response{Seq: req.Seq}
		if gate, ok := strings.CutPrefix(req.Queue, "gate:"); ok {
			// Starts once the file exists, so that a test can queue jobs behind it.
			for _, err := os.Stat(gate); err != nil; _, err = os.Stat(gate) {
				time.Sleep(time.Millisecond)
			}
		}
		switch req.Class {
		case "echo":
			resp.Message = req.Queue + " " + string(req.Args) + fmt.Sprintf(" %d", os.Getpid())
		case "touch": // creates the file named by the args: proof that the job ran
			_ = os.WriteFile(string(req.Args), nil, 0o600)
		case "wait": // until cancelled, then answers
			<-ctx.Done()
			resp.Message = "cancelled"
		case "nap": // creates the file named by the args, then sleeps 300 ms or until cancelled
			_ = os.WriteFile(string(req.Args), nil, 0o600)
			select {
			case <-ctx.Done():
				resp.Message = "cancelled"
			case <-time.After(300 * time.Millisecond):
				resp.Message = "slept"
			}
		case "sleep": // the args are milliseconds
			ms, _ := strconv.Atoi(string(req.Args))
			time.Sleep(time.Duration(ms) * time.Millisecond)
		case "fail":
			resp.Status, resp.Exception, resp.Message, resp.Backtrace = StatusError, "Boom", "it broke", []string{"a", "b"}
		case "hang":
			time.Sleep(time.Hour) // ignores cancellation
		case "exit":
			os.Exit(3)
		case "alloc":
			var keep [][]byte
			for i := 0; i < 64; i++ {
				b := make([]byte, 16<<20)
				for j := 0; j < len(b); j += 4096 {
					b[j] = 1
				}
				keep = append(keep, b)
			}
			resp.Message = fmt.Sprint(len(keep))
		case "spin":
			for {
			}
		case "flood":
			b := []byte(strings.Repeat("y\n", 4096))
			for {
				os.Stdout.Write(b)
			}
		}
		if err := conn.Reply(req, resp); err != nil {
			os.Exit(2)
		}
	}
}

func startChild(t *testing.T, s *Sandbox, c ChildCommand, m string) *Child {
	t.Helper()
	c.Args = []string{os.Args[0]}
	c.Env = append(c.Env, m)
	ch, err := s.StartChild(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.Close)
	return ch
}

func call(ch *Child, class string, timeout time.Duration) (*Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return ch.Call(ctx, &Request{Class: class, Queue: "q", Args: []byte(`[1]`)}, timeout, 0)
}

func TestWarmChildServesManyJobs(t *testing.T) {
	t.Parallel()
	m := marker(t)
	s := &Sandbox{}
	ch := startChild(t, s, ChildCommand{}, m)
	for i := 0; i < 100; i++ {
		r, err := call(ch, "echo", 5*time.Second)
		if err != nil || r.Status != StatusOK || r.Message != fmt.Sprintf("q [1] %d", ch.Pid()) {
			t.Fatalf("job %d: %+v %v", i, r, err)
		}
	}
	r, err := call(ch, "fail", 5*time.Second)
	if err != nil || r.Status != StatusError || r.Exception != "Boom" || r.Message != "it broke" || len(r.Backtrace) != 2 {
		t.Fatalf("fail: %+v %v", r, err)
	}
	if ch.Jobs() != 101 || ch.Dead() {
		t.Fatalf("jobs %d dead %v", ch.Jobs(), ch.Dead())
	}
	ch.Close()
	noSurvivors(t, m)
}

func TestWarmChildLimits(t *testing.T) {
	t.Parallel()
	s := &Sandbox{caps: Capabilities{DedicatedUIDs: os.Geteuid() == 0}}
	cases := []struct {
		class   string
		c       ChildCommand
		timeout time.Duration
		check   func(error) bool
		within  time.Duration
	}{
		{"hang", ChildCommand{KillGrace: 200 * time.Millisecond}, 300 * time.Millisecond,
			func(err error) bool {
				return errors.Is(err, ErrTimeout) && strings.HasPrefix(err.Error(), "timeout after 300ms: the handler did not return")
			}, 2 * time.Second},
		{"exit", ChildCommand{}, 5 * time.Second,
			func(err error) bool {
				var ce *ChildExitError
				return errors.As(err, &ce) && ce.Status == "exit status 3"
			}, 2 * time.Second},
		{"alloc", ChildCommand{Limits: Limits{Memory: childMemoryLimit}}, 60 * time.Second,
			func(err error) bool {
				var le *LimitError
				return errors.As(err, &le) && le.Reason == "memory limit "+FormatBytes(childMemoryLimit)+" exceeded"
			}, 60 * time.Second},
		{"spin", ChildCommand{Limits: Limits{CPUTime: time.Second}}, 60 * time.Second,
			func(err error) bool {
				var le *LimitError
				return errors.As(err, &le) && le.Reason == "CPU time limit 1s exceeded"
			}, 30 * time.Second},
		{"flood", ChildCommand{MaxOutput: 1024, OutputKill: 1 << 20}, 60 * time.Second,
			func(err error) bool { var le *LimitError; return errors.As(err, &le) && le.Limit == LimitOutput }, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.class, func(t *testing.T) {
			t.Parallel()
			m := marker(t)
			ch := startChild(t, s, tc.c, m)
			start := time.Now()
			_, err := call(ch, tc.class, tc.timeout)
			if !tc.check(err) {
				t.Fatalf("err = %v", err)
			}
			took := time.Since(start)
			if took > tc.within {
				t.Fatalf("took %s", took)
			}
			t.Logf("%v after %s", err, took.Round(time.Millisecond))
			if !ch.Dead() {
				t.Fatal("the child is still alive after a limit hit")
			}
			if _, err := call(ch, "echo", time.Second); !errors.Is(err, ErrChildGone) {
				t.Fatalf("a dead child took a job: %v", err)
			}
			ch.Close()
			noSurvivors(t, m)
		})
	}
}

// TestWarmChildPipelinesJobs: jobs sent while the child runs another wait
// in its pipe and run one at a time, in order, each answered to its own
// caller.
func TestWarmChildPipelinesJobs(t *testing.T) {
	t.Parallel()
	m := marker(t)
	ch := startChild(t, &Sandbox{}, ChildCommand{}, m)
	ctx := context.Background()
	head := make(chan error, 1)
	go func() {
		r, err := ch.Call(ctx, &Request{Class: "sleep", Args: []byte("200")}, 0, 0)
		if err == nil && r.Status != StatusOK {
			err = fmt.Errorf("sleep: %+v", r)
		}
		head <- err
	}()
	waitFor(t, "the first job to be sent", func() bool { return ch.Jobs() == 1 })
	errs := make(chan error, 8)
	for i := range 8 {
		go func() {
			q := strconv.Itoa(i)
			r, err := ch.Call(ctx, &Request{Class: "echo", Queue: q, Args: []byte(`[]`)}, 0, 0)
			if err == nil && r.Message != fmt.Sprintf("%s [] %d", q, ch.Pid()) {
				err = fmt.Errorf("job %s got the answer %q", q, r.Message)
			}
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := <-head; err != nil {
		t.Fatal(err)
	}
	if ch.Jobs() != 9 || ch.Pending() != 0 || ch.Dead() {
		t.Fatalf("jobs %d pending %d dead %v", ch.Jobs(), ch.Pending(), ch.Dead())
	}
}

// TestWarmChildWithdrawsQueuedJob: a job waiting behind a long one is
// withdrawn after its queued time and never runs; the long job is not
// disturbed, and the child serves on.
func TestWarmChildWithdrawsQueuedJob(t *testing.T) {
	t.Parallel()
	m := marker(t)
	ch := startChild(t, &Sandbox{}, ChildCommand{}, m)
	headCtx, cancelHead := context.WithCancel(context.Background())
	defer cancelHead()
	head := make(chan *Response, 1)
	go func() {
		r, err := ch.Call(headCtx, &Request{Class: "wait"}, 0, 0)
		if err != nil {
			t.Error(err)
		}
		head <- r
	}()
	waitFor(t, "the long job to be sent", func() bool { return ch.Jobs() == 1 })
	proof := t.TempDir() + "/ran"
	_, err := ch.Call(context.Background(), &Request{Class: "touch", Args: []byte(proof)}, 0, 20*time.Millisecond)
	if !errors.Is(err, ErrChildGone) {
		t.Fatalf("queued job: err = %v, want ErrChildGone (withdrawn)", err)
	}
	if ch.Dead() || ch.Pending() != 1 {
		t.Fatalf("after the withdrawal: dead %v, pending %d (the long job)", ch.Dead(), ch.Pending())
	}
	cancelHead()
	if r := <-head; r == nil || r.Message != "cancelled" {
		t.Fatalf("long job: %+v", r)
	}
	if r, err := call(ch, "echo", 5*time.Second); err != nil || r.Status != StatusOK {
		t.Fatalf("next job: %+v %v", r, err)
	}
	if _, err := os.Stat(proof); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the withdrawn job ran (stat: %v)", err)
	}
	// A queued job whose context ends is withdrawn the same way.
	gate := t.TempDir() + "/go"
	jobs := ch.Jobs()
	go func() { _, _ = ch.Call(context.Background(), &Request{Class: "echo", Queue: "gate:" + gate}, 0, 0) }()
	waitFor(t, "the gated job to be sent", func() bool { return ch.Jobs() == jobs+1 })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := ch.Call(ctx, &Request{Class: "touch", Args: []byte(proof)}, 0, 0)
		errc <- err
	}()
	waitFor(t, "the job behind it to be sent", func() bool { return ch.Jobs() == jobs+2 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled queued job: err = %v", err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the gated job to end", func() bool { return ch.Pending() == 0 })
	if r, err := call(ch, "echo", 5*time.Second); err != nil || r.Status != StatusOK || ch.Dead() {
		t.Fatalf("next job: %+v %v", r, err)
	}
	if _, err := os.Stat(proof); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the withdrawn job ran (stat: %v)", err)
	}
}

// TestWarmChildWithdrawLeavesRunningJob: a withdrawal that reaches the
// child after the job started does nothing to it (only a cancellation
// cancels a running job).
func TestWarmChildWithdrawLeavesRunningJob(t *testing.T) {
	t.Parallel()
	ch := startChild(t, &Sandbox{}, ChildCommand{}, marker(t))
	head := make(chan *Response, 1)
	started := t.TempDir() + "/started"
	go func() {
		r, err := ch.Call(context.Background(), &Request{Class: "nap", Args: []byte(started)}, 0, 0)
		if err != nil {
			t.Error(err)
		}
		head <- r
	}()
	waitFor(t, "the job to start", func() bool { _, err := os.Stat(started); return err == nil })
	ch.mu.Lock()
	_, _ = ch.cancelW.Write(encodeWithdraw(1))
	ch.mu.Unlock()
	if r := <-head; r == nil || r.Message != "slept" {
		t.Fatalf("running job after a late withdrawal: %+v", r)
	}
}

// TestWarmChildKillSparesQueuedJobs: when the running job is killed for a
// timeout, a limit or a crash, it fails with that reason, and the job
// waiting behind it gets ErrChildGone (it never started, and may run in
// another child), not the other job's failure.
func TestWarmChildKillSparesQueuedJobs(t *testing.T) {
	t.Parallel()
	s := &Sandbox{}
	cases := []struct {
		class   string
		c       ChildCommand
		timeout time.Duration
		check   func(error) bool
	}{
		{"hang", ChildCommand{KillGrace: 200 * time.Millisecond}, 300 * time.Millisecond,
			func(err error) bool { return errors.Is(err, ErrTimeout) }},
		{"exit", ChildCommand{}, 5 * time.Second,
			func(err error) bool {
				var ce *ChildExitError
				return errors.As(err, &ce) && ce.Status == "exit status 3"
			}},
		{"spin", ChildCommand{Limits: Limits{CPUTime: time.Second}}, 60 * time.Second,
			func(err error) bool { var le *LimitError; return errors.As(err, &le) && le.Limit == LimitCPU }},
		{"flood", ChildCommand{MaxOutput: 1024, OutputKill: 1 << 20}, 60 * time.Second,
			func(err error) bool { var le *LimitError; return errors.As(err, &le) && le.Limit == LimitOutput }},
	}
	for _, tc := range cases {
		t.Run(tc.class, func(t *testing.T) {
			t.Parallel()
			m := marker(t)
			ch := startChild(t, s, tc.c, m)
			dir := t.TempDir()
			head := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
				defer cancel()
				_, err := ch.Call(ctx, &Request{Class: tc.class, Queue: "gate:" + dir + "/go"}, tc.timeout, 0)
				head <- err
			}()
			waitFor(t, "the first job to be sent", func() bool { return ch.Jobs() == 1 })
			proof := dir + "/ran"
			queued := make(chan error, 1)
			go func() {
				_, err := ch.Call(context.Background(), &Request{Class: "touch", Args: []byte(proof)}, time.Minute, 0)
				queued <- err
			}()
			waitFor(t, "the second job to be sent", func() bool { return ch.Jobs() == 2 })
			if err := os.WriteFile(dir+"/go", nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := <-queued; !errors.Is(err, ErrChildGone) {
				t.Fatalf("queued job: err = %v, want ErrChildGone", err)
			}
			if err := <-head; !tc.check(err) {
				t.Fatalf("running job: err = %v", err)
			}
			if _, err := os.Stat(proof); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the queued job ran (stat: %v)", err)
			}
			ch.Close()
			noSurvivors(t, m)
		})
	}
}

// waitFor polls cond until it holds (the test's own deadline bounds it).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// BenchmarkChildCall is one no-op job's round trip to a warm child over its
// pipes, without Redis.
func BenchmarkChildCall(b *testing.B) {
	s := &Sandbox{}
	ch, err := s.StartChild(ChildCommand{Args: []string{os.Args[0]}})
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	ctx := context.Background()
	req := &Request{Class: "echo", Queue: "q", Args: []byte(`[]`)}
	b.ResetTimer()
	for b.Loop() {
		if _, err := ch.Call(ctx, req, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
