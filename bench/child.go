package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// childEnv names the environment variable that turns the bench binary (or
// the test binary) into a measured child process; its value is a childSpec
// as JSON. Each measurement runs in a fresh child so that no system shares a
// heap, a GC, goroutines or package state with another.
const childEnv = "RESQ_BENCH_CHILD"

// childSpec says what one child process does.
type childSpec struct {
	Role        string `json:"role"` // "prep": enqueue jobs for a process test; "measure"
	System      string `json:"system"`
	Test        string `json:"test"`
	Measure     string `json:"measure,omitempty"` // scheduler: "lateness" or "backlog"
	Producers   int    `json:"producers,omitempty"`
	Concurrency int    `json:"concurrency,omitempty"`
	Jobs        int    `json:"jobs"`
	SpreadMs    int    `json:"spread_ms,omitempty"`  // scheduler lateness: enqueueing takes this long
	PerSecond   int    `json:"per_second,omitempty"` // scheduler backlog: jobs per due second
	Rate        int    `json:"rate,omitempty"`       // latency: jobs per second
	IdleMs      int    `json:"idle_ms,omitempty"`    // latency: idle time before the first job
	Addr        string `json:"addr"`
	ResultPath  string `json:"result_path"`
	CPUProfile  string `json:"cpu_profile,omitempty"`
	MemProfile  string `json:"mem_profile,omitempty"`
}

// measurement is one line of the bench's output: one run, or the medians of
// several (Reps > 1).
type measurement struct {
	System string `json:"system"`
	Mode   string `json:"mode,omitempty"` // resq's isolation mode
	Test   string `json:"test"`
	// Measure is the scheduler test's measure: "lateness" or "backlog".
	Measure     string `json:"measure,omitempty"`
	Producers   int    `json:"producers,omitempty"`
	Concurrency int    `json:"concurrency,omitempty"`
	Jobs        int    `json:"jobs"`
	JobsDone    int    `json:"jobs_done"`
	// Checked: the enqueue call read Redis's reply (enqueue test only).
	Checked *bool `json:"checked,omitempty"`

	// Seconds is the measured window; for the scheduler backlog, from the
	// mover's start until every job was moved.
	Seconds float64 `json:"seconds"`
	// JobsPerS: jobs per second of the window; for the scheduler backlog,
	// the move rate from the first moved job to the last; 0 for the
	// scheduler lateness (the producer's pace is set by the bench).
	JobsPerS float64 `json:"jobs_per_s"`
	// Latencies: of one enqueue call (enqueue), of pickup: handler start −
	// enqueue time (latency), of handler start − due second (scheduler
	// lateness); null for process and the scheduler backlog.
	P50Ms *float64 `json:"p50_ms"`
	P99Ms *float64 `json:"p99_ms"`
	MaxMs *float64 `json:"max_ms"`
	// FirstMoveMs: scheduler backlog, from the mover's start until the
	// first job left the delayed set (a polling mover's first tick).
	FirstMoveMs *float64 `json:"first_move_ms,omitempty"`
	// PerSecond: scheduler backlog, jobs per due second.
	PerSecond int `json:"per_second,omitempty"`

	RSSMB            float64 `json:"rss_mb"`         // peak (VmHWM) of the measured process
	CPUUsPerJob      float64 `json:"cpu_us_per_job"` // user+sys of the measured process
	RedisCmdsPerJob  float64 `json:"redis_cmds_per_job"`
	RedisReadsPerJob float64 `json:"redis_reads_per_job"` // read events ≈ round trips
	RedisCPUUsPerJob float64 `json:"redis_cpu_us_per_job"`

	IdleMs int `json:"idle_ms,omitempty"` // latency: how long the worker idled first
	// Note says why a line has no figures (the redis-benchmark limit
	// when redis-benchmark is not installed).
	Note string `json:"note,omitempty"`

	Rep          int       `json:"rep,omitempty"` // 1-based, for a single run
	Reps         int       `json:"reps"`
	JobsPerSReps []float64 `json:"jobs_per_s_reps,omitempty"`
	P99MsReps    []float64 `json:"p99_ms_reps,omitempty"`
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench child: "+format+"\n", args...)
	os.Exit(1)
}

// runChild is the whole life of a child process.
func runChild(specJSON string) {
	var spec childSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		fatalf("bad %s: %v", childEnv, err)
	}
	info, err := lookupSystem(spec.System)
	if err != nil {
		fatalf("%v", err)
	}
	ctx := context.Background()
	var m measurement
	switch {
	case spec.Role == "prep" && spec.Test == "scheduler":
		err = prepBacklog(ctx, info.new(), spec)
	case spec.Role == "prep":
		err = prepJobs(ctx, info.new(), spec)
	case spec.Test == "enqueue":
		m, err = measureEnqueue(ctx, info.new(), spec)
	case spec.Test == "process":
		m, err = measureProcess(ctx, info.new(), spec)
	case spec.Test == "latency":
		m, err = measureLatency(ctx, info.new(), spec)
	case spec.Test == "scheduler" && spec.Measure == "lateness":
		m, err = measureLateness(ctx, info.new(), spec)
	case spec.Test == "scheduler" && spec.Measure == "backlog":
		m, err = measureBacklog(ctx, info.new(), spec)
	default:
		err = fmt.Errorf("unknown test %q", spec.Test)
	}
	if err != nil {
		fatalf("%s %s: %v", spec.System, spec.Test, err)
	}
	m.System, m.Mode, m.Test, m.Jobs = spec.System, info.mode, spec.Test, spec.Jobs
	if spec.Test == "enqueue" {
		checked := info.checked
		m.Checked = &checked
	}
	out, _ := json.Marshal(m)
	if err := os.WriteFile(spec.ResultPath, out, 0o600); err != nil {
		fatalf("writing result: %v", err)
	}
	// Exit without stopping the system: shutdown is not measured, and some
	// peers (goworker) can only be stopped by a signal.
	os.Exit(0)
}

// window is the measured part of a child's life: wall time, own CPU, Redis
// counters, and optionally a CPU profile.
type window struct {
	spec    childSpec
	admin   *resp
	before  redisStats
	cpu0    time.Duration
	t0      time.Time
	profile *os.File
	// harness counts the harness's own Redis commands inside the window, so
	// they can be taken out of the per-job figures.
	harness int64
}

func openWindow(spec childSpec) (*window, error) {
	admin, err := dialRESP(spec.Addr)
	if err != nil {
		return nil, err
	}
	w := &window{spec: spec, admin: admin}
	if spec.CPUProfile != "" {
		if w.profile, err = os.Create(spec.CPUProfile); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(w.profile); err != nil {
			return nil, err
		}
	}
	if w.before, err = admin.stats(); err != nil {
		return nil, err
	}
	w.harness = 1 // the INFO above is counted in the next snapshot
	w.cpu0 = cpuTime()
	w.t0 = time.Now()
	return w, nil
}

// close ends the window and fills the common fields of m for jobs jobs.
func (w *window) close(m *measurement, jobs int) error {
	elapsed := time.Since(w.t0)
	cpu := cpuTime() - w.cpu0
	after, err := w.admin.stats()
	if err != nil {
		return err
	}
	if w.profile != nil {
		pprof.StopCPUProfile()
		w.profile.Close()
	}
	if w.spec.MemProfile != "" {
		f, err := os.Create(w.spec.MemProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return err
		}
	}
	n := float64(jobs)
	m.Seconds = elapsed.Seconds()
	m.JobsPerS = n / elapsed.Seconds()
	m.CPUUsPerJob = float64(cpu.Microseconds()) / n
	m.RedisCmdsPerJob = float64(after.Calls-w.before.Calls-w.harness) / n
	m.RedisReadsPerJob = float64(after.Reads-w.before.Reads-w.harness) / n
	m.RedisCPUUsPerJob = (after.CPUSec - w.before.CPUSec) * 1e6 / n
	m.RSSMB = peakRSSMB()
	return nil
}

// until polls cond (one harness command per call) every millisecond until
// it is true or the timeout passes.
func (w *window) until(timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		w.harness++
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not reached after %s", what, timeout)
		}
		time.Sleep(time.Millisecond)
	}
}

// enqueueAll enqueues spec.Jobs jobs from `producers` goroutines and returns
// the duration of every call.
func enqueueAll(ctx context.Context, enq enqueueFunc, jobs, producers int) ([]time.Duration, error) {
	lat := make([]time.Duration, jobs)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for p := 0; p < producers; p++ {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(jobs) {
					return
				}
				t := time.Now()
				if err := enq(ctx, jobArgs{N: i, T: t.UnixMicro()}); err != nil {
					errs <- fmt.Errorf("enqueue job %d: %w", i, err)
					return
				}
				lat[i] = time.Since(t)
			}
		})
	}
	wg.Wait()
	close(errs)
	return lat, <-errs
}

func prepJobs(ctx context.Context, sys system, spec childSpec) error {
	enq, err := sys.producer(ctx, spec.Addr, 8)
	if err != nil {
		return err
	}
	if _, err := enqueueAll(ctx, enq, spec.Jobs, 8); err != nil {
		return err
	}
	admin, err := dialRESP(spec.Addr)
	if err != nil {
		return err
	}
	w := &window{admin: admin}
	return w.until(time.Minute, "all prepared jobs in the queue", func() (bool, error) {
		n, err := sys.queued(admin)
		return n == int64(spec.Jobs), err
	})
}

func measureEnqueue(ctx context.Context, sys system, spec childSpec) (measurement, error) {
	m := measurement{Producers: spec.Producers}
	enq, err := sys.producer(ctx, spec.Addr, spec.Producers)
	if err != nil {
		return m, err
	}
	w, err := openWindow(spec)
	if err != nil {
		return m, err
	}
	lat, err := enqueueAll(ctx, enq, spec.Jobs, spec.Producers)
	if err != nil {
		return m, err
	}
	// An unchecked enqueue returns before Redis has run the command: the
	// measurement ends when the jobs are all in the queue.
	var queued int64
	if err := w.until(time.Minute, "all jobs in the queue", func() (bool, error) {
		var err error
		queued, err = sys.queued(w.admin)
		return queued >= int64(spec.Jobs), err
	}); err != nil {
		return m, err
	}
	if err := w.close(&m, spec.Jobs); err != nil {
		return m, err
	}
	m.JobsDone = int(queued)
	m.P50Ms, m.P99Ms, m.MaxMs = percentiles(lat)
	return m, nil
}

// counter counts jobs run and signals when n have run.
type counter struct {
	n    int64
	seen atomic.Int64
	all  chan struct{}
	once sync.Once
}

func newCounter(n int) *counter { return &counter{n: int64(n), all: make(chan struct{})} }

func (c *counter) add() {
	if c.seen.Add(1) >= c.n {
		c.once.Do(func() { close(c.all) })
	}
}

func (c *counter) wait(timeout time.Duration) error {
	select {
	case <-c.all:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("only %d of %d jobs ran within %s", c.seen.Load(), c.n, timeout)
	}
}

// measureProcess times a worker from its start until every pre-enqueued job
// has run and the system's own bookkeeping shows it finished.
func measureProcess(ctx context.Context, sys system, spec childSpec) (measurement, error) {
	m := measurement{Concurrency: spec.Concurrency}
	cnt := newCounter(spec.Jobs)
	w, err := openWindow(spec)
	if err != nil {
		return m, err
	}
	if err := sys.startWorker(ctx, spec.Addr, spec.Concurrency, func(jobArgs) { cnt.add() }); err != nil {
		return m, err
	}
	if err := cnt.wait(10 * time.Minute); err != nil {
		return m, err
	}
	if err := w.until(time.Minute, "system reports all jobs finished", func() (bool, error) {
		return sys.finished(w.admin, spec.Jobs)
	}); err != nil {
		return m, err
	}
	if err := w.close(&m, spec.Jobs); err != nil {
		return m, err
	}
	m.JobsDone = int(cnt.seen.Load())
	return m, nil
}

// measureLatency starts an idle worker, waits spec.IdleMs, then enqueues
// spec.Jobs jobs at spec.Rate per second from one producer in this process;
// each job's handler records now − the enqueue time carried in its args.
// The Redis figures cover enqueueing and processing.
func measureLatency(ctx context.Context, sys system, spec childSpec) (measurement, error) {
	m := measurement{Concurrency: spec.Concurrency}
	cnt := newCounter(spec.Jobs)
	lat := make([]time.Duration, spec.Jobs)
	done := func(a jobArgs) {
		d := time.Duration(time.Now().UnixMicro()-a.T) * time.Microsecond
		if a.N >= 0 && a.N < int64(len(lat)) {
			lat[a.N] = d
		}
		cnt.add()
	}
	if err := sys.startWorker(ctx, spec.Addr, spec.Concurrency, done); err != nil {
		return m, err
	}
	enq, err := sys.producer(ctx, spec.Addr, 1)
	if err != nil {
		return m, err
	}
	time.Sleep(time.Duration(spec.IdleMs) * time.Millisecond)
	w, err := openWindow(spec)
	if err != nil {
		return m, err
	}
	interval := time.Second / time.Duration(spec.Rate)
	start := time.Now()
	for i := 0; i < spec.Jobs; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if err := enq(ctx, jobArgs{N: int64(i), T: time.Now().UnixMicro()}); err != nil {
			return m, fmt.Errorf("enqueue job %d: %w", i, err)
		}
	}
	if err := cnt.wait(2 * time.Minute); err != nil {
		return m, err
	}
	if err := w.until(time.Minute, "system reports all jobs finished", func() (bool, error) {
		return sys.finished(w.admin, spec.Jobs)
	}); err != nil {
		return m, err
	}
	if err := w.close(&m, spec.Jobs); err != nil {
		return m, err
	}
	m.JobsDone = int(cnt.seen.Load())
	m.P50Ms, m.P99Ms, m.MaxMs = percentiles(lat)
	m.IdleMs = spec.IdleMs
	return m, nil
}

// percentiles returns p50, p99 and max in milliseconds (nearest rank).
func percentiles(d []time.Duration) (p50, p99, worst *float64) {
	if len(d) == 0 {
		return nil, nil, nil
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) *float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		i = min(max0(i), len(s)-1)
		v := float64(s[i]) / float64(time.Millisecond)
		return &v
	}
	return at(0.50), at(0.99), at(1.0)
}

func max0(i int) int {
	if i < 0 {
		return 0
	}
	return i
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSSMB is VmHWM from /proc/self/status (Linux), in MiB; 0 elsewhere.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				return 0
			}
			return kb / 1024
		}
	}
	return 0
}
