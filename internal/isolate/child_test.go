package isolate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
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
		req, err := conn.Read()
		if err == io.EOF {
			os.Exit(0)
		}
		if err != nil {
			os.Exit(2)
		}
		resp := &Response{Seq: req.Seq}
		switch req.Class {
		case "echo":
			resp.Message = req.Queue + " " + string(req.Args) + fmt.Sprintf(" %d", os.Getpid())
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
	return ch.Call(ctx, &Request{Class: class, Queue: "q", Args: []byte(`[1]`)}, timeout)
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
		if _, err := ch.Call(ctx, req, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
