package isolate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary doubles as a hostile job program: with RESQ_TEST_HOSTILE
// set it misbehaves as asked instead of running tests.
func init() {
	RunShimIfRequested() // the shim must apply its limits before any test code runs
	switch os.Getenv("RESQ_TEST_HOSTILE") {
	case "":
		return
	case "alloc": // a memory bomb: 1 GiB, every page touched
		var keep [][]byte
		for i := 0; i < 64; i++ {
			b := make([]byte, 16<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = 1
			}
			keep = append(keep, b)
		}
		fmt.Println("allocated", len(keep)*16, "MiB")
		os.Exit(0)
	case "spin": // burns CPU until killed
		for {
		}
	case "fds": // an fd leak: 10 000 open files
		var fs []*os.File
		for i := 0; i < 10000; i++ {
			f, err := os.Open("/dev/null")
			if err != nil {
				fmt.Fprintln(os.Stderr, "open:", err)
				os.Exit(1)
			}
			fs = append(fs, f)
		}
		fmt.Println("opened", len(fs))
		os.Exit(0)
	}
	os.Exit(99)
}

// marker returns a unique environment entry for one test's processes, so
// that the test can look for any that survive.
func marker(t *testing.T) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "RESQ_TEST_MARKER=" + t.Name() + "-" + hex.EncodeToString(b[:])
}

// noSurvivors fails the test if a process carrying m is still alive.
func noSurvivors(t *testing.T, m string) {
	t.Helper()
	// A process sent SIGKILL is gone once the kernel has run it to its
	// exit, which on a loaded machine can take a moment after the signal.
	pids := ProcessesWithEnv(m)
	for deadline := time.Now().Add(2 * time.Second); len(pids) > 0 && time.Now().Before(deadline); pids = ProcessesWithEnv(m) {
		time.Sleep(20 * time.Millisecond)
	}
	if len(pids) > 0 {
		KillProcessesWithEnv(m)
		t.Fatalf("%d job processes survived the run: %v", len(pids), pids)
	}
}

func self(t *testing.T) string {
	p, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// limitOf returns the limit named by err, failing the test if there is none.
func limitOf(t *testing.T, err error) *LimitError {
	t.Helper()
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("want a limit error, got %v", err)
	}
	return le
}

func TestRunPlainCommand(t *testing.T) {
	t.Parallel()
	res, err := Run(context.Background(), Command{Path: "sh", Args: []string{"-c", "cat; echo oops >&2; exit 3"}, Stdin: []byte(`[1,2]`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || string(res.Stdout) != "[1,2]" || string(res.Stderr) != "oops\n" || res.Stray {
		t.Fatalf("result = %+v", res)
	}
}

func TestRunTimeoutKillsLoopThatIgnoresTERM(t *testing.T) {
	t.Parallel()
	m := marker(t)
	start := time.Now()
	res, err := Run(context.Background(), Command{
		Path: "bash", Args: []string{"-c", `trap '' TERM; while :; do :; done`}, Env: []string{m},
		Timeout: 500 * time.Millisecond, KillGrace: 300 * time.Millisecond,
	})
	took := time.Since(start)
	if !errors.Is(err, ErrTimeout) || limitOf(t, err).Reason != "timeout after 500ms" {
		t.Fatalf("err = %v", err)
	}
	if res.Signal != "killed" || !res.TimedOut {
		t.Fatalf("result = %+v", res)
	}
	if took > 2*time.Second {
		t.Fatalf("killed after %s; the limit is 500ms + 300ms grace", took)
	}
	t.Logf("%v after %s", err, res.Duration.Round(time.Millisecond))
	noSurvivors(t, m)
}

func TestRunOutputFloodIsKilled(t *testing.T) {
	t.Parallel()
	m := marker(t)
	start := time.Now()
	res, err := Run(context.Background(), Command{Path: "yes", Env: []string{m}, MaxOutput: 1024, OutputKill: 4 << 20, Timeout: 10 * time.Second})
	if le := limitOf(t, err); le.Limit != LimitOutput || le.Reason != "output limit: the job wrote more than 4 MiB and was killed" {
		t.Fatalf("err = %v", err)
	}
	if len(res.Stdout) != 1024 || res.Written <= 4<<20 || res.Dropped < 4<<20-1024 {
		t.Fatalf("kept %d bytes, written %d, dropped %d", len(res.Stdout), res.Written, res.Dropped)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("flood ran for %s", took)
	}
	t.Logf("%v after %s", err, res.Duration.Round(time.Millisecond))
	noSurvivors(t, m)
}

func TestRunMemoryLimit(t *testing.T) {
	t.Parallel()
	m := marker(t)
	res, err := Run(context.Background(), Command{Path: self(t), Env: []string{m, "RESQ_TEST_HOSTILE=alloc"},
		Limits: Limits{Memory: 256 << 20}, Timeout: 30 * time.Second})
	if le := limitOf(t, err); le.Limit != LimitMemory || le.Reason != "memory limit 256 MiB exceeded" {
		t.Fatalf("err = %v\nstderr: %s", err, res.Stderr)
	}
	if res.ExitCode == 0 || strings.Contains(string(res.Stdout), "allocated") {
		t.Fatalf("the bomb allocated 1 GiB under a 256 MiB limit: %+v", res)
	}
	t.Logf("%v after %s", err, res.Duration.Round(time.Millisecond))
	noSurvivors(t, m)
}

func TestRunCPULimit(t *testing.T) {
	t.Parallel()
	m := marker(t)
	start := time.Now()
	res, err := Run(context.Background(), Command{Path: self(t), Env: []string{m, "RESQ_TEST_HOSTILE=spin"},
		Limits: Limits{CPUTime: time.Second}, Timeout: 30 * time.Second})
	if le := limitOf(t, err); le.Limit != LimitCPU || le.Reason != "CPU time limit 1s exceeded" {
		t.Fatalf("err = %v, result %+v", err, res)
	}
	if res.CPU < time.Second || res.CPU > 3*time.Second {
		t.Fatalf("CPU used = %s", res.CPU)
	}
	// Wall time can exceed CPU time on a busy machine; the timeout is 30s.
	if took := time.Since(start); took > 20*time.Second {
		t.Fatalf("took %s", took)
	}
	t.Logf("%v after %s", err, res.Duration.Round(time.Millisecond))
	noSurvivors(t, m)
}

func TestRunFileLimit(t *testing.T) {
	t.Parallel()
	m := marker(t)
	res, err := Run(context.Background(), Command{Path: self(t), Env: []string{m, "RESQ_TEST_HOSTILE=fds"},
		Limits: Limits{Files: 256}, Timeout: 30 * time.Second})
	if le := limitOf(t, err); le.Limit != LimitFiles || le.Reason != "open-file limit (256) reached" {
		t.Fatalf("err = %v, result %+v", err, res)
	}
	if !strings.Contains(string(res.Stderr), "too many open files") {
		t.Fatalf("stderr = %s", res.Stderr)
	}
	t.Logf("%v after %s", err, res.Duration.Round(time.Millisecond))
	noSurvivors(t, m)
}

// procsCapable fails the test (in CI) or skips it (elsewhere) when no
// mechanism here can bound a job's processes: a fork bomb must never run
// unbounded.
func procsCapable(t *testing.T) *Sandbox {
	t.Helper()
	caps := Probe()
	if err := caps.Check(Limits{Procs: 20}); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("this machine cannot bound a job's processes: %v", err)
		}
		t.Skipf("cannot bound a job's processes here: %v", err)
	}
	t.Logf("process limit enforced by %s", caps.Describe(Limits{Procs: 20}))
	s := NewSandbox(caps)
	t.Cleanup(func() { s.Close() })
	return s
}

// TestProcessLimit first proves, harmlessly, that the process limit holds
// (a script that tries to start 100 sleeps gets fewer than the limit), and
// only then runs a fork bomb under it.
func TestProcessLimit(t *testing.T) {
	s := procsCapable(t)
	const limit = 20
	ok := t.Run("100 sleeps", func(t *testing.T) {
		m := marker(t)
		res, err := s.Run(context.Background(), Command{Path: "/bin/sh", Env: []string{m},
			Args:   []string{"-c", `i=0; while [ $i -lt 100 ]; do sleep 30 & i=$((i+1)); echo $i; done; wait`},
			Limits: Limits{Procs: limit}, Timeout: 20 * time.Second})
		lines := strings.Fields(string(res.Stdout))
		if len(lines) == 0 {
			t.Fatalf("no sleep started: %v, %+v", err, res)
		}
		spawned, _ := strconv.Atoi(lines[len(lines)-1])
		if spawned >= limit {
			t.Fatalf("%d sleeps started under a limit of %d processes", spawned, limit)
		}
		if le := limitOf(t, err); le.Limit != LimitProcs || !strings.HasPrefix(le.Reason, "process limit (20) reached") {
			t.Fatalf("err = %v", err)
		}
		if res.Duration > 10*time.Second {
			t.Fatalf("the job ran for %s after reaching its limit", res.Duration)
		}
		noSurvivors(t, m)
		t.Logf("%d sleeps started, then: %v (after %s)", spawned, err, res.Duration.Round(time.Millisecond))
	})
	if !ok {
		t.Fatal("the process limit is not proven; the fork bomb does not run")
	}
	t.Run("fork bomb", func(t *testing.T) {
		m := marker(t)
		res, err := s.Run(context.Background(), Command{Path: "bash", Env: []string{m},
			Args:   []string{"-c", `:(){ :|:& };:`},
			Limits: Limits{Procs: 64}, Timeout: 10 * time.Second})
		le := limitOf(t, err)
		if le.Limit != LimitProcs && le.Limit != LimitStray {
			t.Fatalf("err = %v", err)
		}
		if !strings.Contains(le.Reason, "process") {
			t.Fatalf("reason %q does not name processes", le.Reason)
		}
		noSurvivors(t, m)
		t.Logf("fork bomb: %v (after %s)", err, res.Duration.Round(time.Millisecond))
	})
}

func TestRunStrayProcessesAreKilled(t *testing.T) {
	t.Parallel()
	m := marker(t)
	res, err := Run(context.Background(), Command{Path: "sh", Args: []string{"-c", "sleep 30 & echo started"}, Env: []string{m}})
	if le := limitOf(t, err); le.Limit != LimitStray {
		t.Fatalf("err = %v", err)
	}
	if !res.Stray || res.ExitCode != 0 {
		t.Fatalf("result = %+v", res)
	}
	noSurvivors(t, m)
}

func TestRunContextCancel(t *testing.T) {
	t.Parallel()
	m := marker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := Run(ctx, Command{Path: "sleep", Args: []string{"30"}, Env: []string{m}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	noSurvivors(t, m)
}

func TestLimitsValidate(t *testing.T) {
	for _, l := range []Limits{{Memory: -1}, {Memory: 1000}, {CPUTime: time.Millisecond}, {Procs: 1}, {Files: 3}} {
		if err := l.Validate(); err == nil {
			t.Errorf("%+v validated", l)
		}
	}
	if err := (Limits{Memory: 256 << 20, CPUTime: 2 * time.Second, Procs: 64, Files: 1024}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{256 << 20: "256 MiB", 1 << 30: "1 GiB", 1500: "1.5 KiB", 1000: "1000 B", 64 << 10: "64 KiB", 3 << 29: "1.5 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestProcessThatLeavesTheGroupIsKilled: under a process limit (a dedicated
// uid), a process that detaches with setsid is still killed.
func TestProcessThatLeavesTheGroupIsKilled(t *testing.T) {
	s := procsCapable(t)
	m := marker(t)
	res, err := s.Run(context.Background(), Command{Path: "/bin/sh", Env: []string{m},
		Args:   []string{"-c", "setsid sleep 30 </dev/null >/dev/null 2>&1 & sleep 0.2; echo started"},
		Limits: Limits{Procs: 16}, Timeout: 10 * time.Second})
	// It left the group and the pipes: nothing shows it was there, but the
	// sweep of the job's uid kills it.
	if err != nil || res.ExitCode != 0 || string(res.Stdout) != "started\n" {
		t.Fatalf("err = %v, %+v", err, res)
	}
	noSurvivors(t, m)
}

// TestEscapedProcessHoldingPipesIsKilled: without a dedicated uid, a process
// that leaves the process group but keeps the job's output open is found
// by the job's token and killed.
func TestEscapedProcessHoldingPipesIsKilled(t *testing.T) {
	t.Parallel()
	m := marker(t)
	res, err := Run(context.Background(), Command{Path: "/bin/sh", Env: []string{m},
		Args: []string{"-c", "setsid sleep 30 & sleep 0.2; echo started"}, Timeout: 10 * time.Second})
	if le := limitOf(t, err); le.Limit != LimitStray || !res.Stray {
		t.Fatalf("err = %v, %+v", err, res)
	}
	noSurvivors(t, m)
}
