// Command bench compares resq with the Go Resque-style job libraries
// (goworker, asynq, gocraft/work) side by side, on one private redis-server
// that it starts itself, each measurement in a fresh process.
//
//	cd bench && go run . -quick          # whole comparison, 1 repetition, < 3 min
//	cd bench && go run .                 # 100k jobs, 3 repetitions, medians
//	cd bench && go run . -json           # one JSON object per line
//	cd bench && go run . -systems resq,gocraft -tests process -reps 5
//
// Tests:
//
//	enqueue   jobs enqueued by 1 and 8 producer goroutines with each system's
//	          normal enqueue call (p50/p99 are of one call); under each
//	          table the round-trip limit: `redis-benchmark -c P -n JOBS -t
//	          rpush -q` (P = producers) against the same redis-server in the
//	          same repetition, and resq's ratio to it (limit.go)
//	process   jobs pre-enqueued with the system's own client, then a worker at
//	          concurrency 10 and 50 runs them with a no-op handler; timed from
//	          the worker's start until the system's own counters in Redis show
//	          every job finished
//	latency   an idle worker (concurrency 10, default poll settings) gets jobs
//	          at 500/s from one producer; pickup latency = handler start −
//	          enqueue time carried in the job's args
//	scheduler delayed jobs (systems with a scheduler: resq, resq-sched-poll,
//	          asynq, gocraft), two measures: lateness = handler start − due
//	          second of jobs enqueued 1–3 s ahead under a running worker and
//	          scheduler; backlog = how fast the scheduler moves jobs that
//	          are all due when it starts (see scheduler.go)
//
// Systems: resq, goworker, asynq, gocraft, and resq's variants resq-batch
// (Client.EnqueueBatch, pipelines of 100, enqueue test only), resq-warm (the
// handler in a warm child process, process test only), resq-plain (the
// worker's Redis user may not run Lua scripts, process test only), resq-exec (every job
// runs /bin/true through HandleCommand, process test only) and resq-poll
// (DisableBlockingPickup, latency test only), resq-sched-poll (the scheduler
// polling every 5 s for producers that do not wake it, scheduler lateness
// only); see system.go.
//
// Every line also has the measured process's peak RSS, its CPU per job, and
// Redis's commands, read events (≈ round trips) and CPU per job from INFO.
// Numbers move ±10–40 % between runs on a shared machine: compare ratios
// within one run. See docs/performance.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/resq-go/resq"
)

// config is one comparison.
type config struct {
	systems       []string
	tests         []string
	producers     []int
	concurrency   []int
	jobs          int // enqueue and process tests
	execJobs      int // process test of resq-exec
	latencyJobs   int
	latenessJobs  int           // scheduler lateness
	latenessSpan  time.Duration // scheduler lateness: enqueueing takes this long
	backlogJobs   int           // scheduler backlog
	backlogPerSec int           // scheduler backlog: jobs per due second (resq, gocraft)
	rate          int
	idle          time.Duration
	idleJitter    time.Duration
	reps          int
	profileDir    string
	memProfileDir string
	verbose       bool
	progress      io.Writer
}

func main() {
	resq.RunShimIfRequested() // the limit shim of an --exec job under limits
	if resq.InChildProcess() {
		serveWarmChild() // a resq-warm worker's child process
	}
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(spec)
		return
	}
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	var (
		jsonOut     = fs.Bool("json", false, "print one JSON object per line instead of a table")
		quick       = fs.Bool("quick", false, "fewer jobs and one repetition (whole comparison < 3 min)")
		systemsFlag = fs.String("systems", "resq,resq-batch,resq-warm,resq-plain,resq-exec,resq-poll,goworker,asynq,gocraft", "systems to run")
		testsFlag   = fs.String("tests", "enqueue,process,latency", "tests to run")
		reps        = fs.Int("reps", 0, "repetitions, medians reported (default 3, 1 with -quick)")
		jobs        = fs.Int("jobs", 0, "jobs per enqueue and process measurement (default 100000, 20000 with -quick)")
		execJobs    = fs.Int("exec-jobs", 0, "jobs for resq-exec's process test (default 5000, 2000 with -quick)")
		latJobs     = fs.Int("latency-jobs", 0, "jobs in the latency test (default 1000, 300 with -quick)")
		lateJobs    = fs.Int("lateness-jobs", 0, "delayed jobs in the scheduler test's lateness measure (default 1000, 150 with -quick)")
		lateSpan    = fs.Duration("lateness-span", 0, "time over which the lateness measure's jobs are enqueued (default 20s, 3s with -quick)")
		backlogJobs = fs.Int("backlog-jobs", 0, "due jobs in the scheduler test's backlog measure (default 50000, 20000 with -quick)")
		backlogSec  = fs.Int("backlog-per-second", 100, "backlog jobs that share a due second (resq, gocraft; asynq's client cannot store past due times)")
		producers   = fs.String("producers", "1,8", "producer goroutines in the enqueue test")
		conc        = fs.String("concurrency", "10,50", "worker concurrency in the process test")
		rate        = fs.Int("rate", 500, "jobs per second in the latency test")
		idle        = fs.Duration("idle", 2*time.Second, "least time the worker idles before the latency test's first job")
		idleJitter  = fs.Duration("idle-jitter", 5*time.Second, "random extra idle time, up to this, so that the first job meets a polling worker at a random phase")
		profileDir  = fs.String("cpuprofile", "", "write a CPU profile of every measured window to this directory")
		memProfile  = fs.String("memprofile", "", "write an allocation profile of every measured process to this directory")
		verbose     = fs.Bool("v", false, "pass the measured processes' output through")
		tableFrom   = fs.String("table", "", "print the table of a saved -json run (a file of JSON lines) and exit")
	)
	_ = fs.Parse(os.Args[1:])
	if *tableFrom != "" {
		results, err := readJSON(*tableFrom)
		if err != nil {
			fail("%v", err)
		}
		fmt.Printf("resq bench, from %s\n\n", *tableFrom)
		printTable(os.Stdout, results)
		return
	}

	cfg := config{
		systems: splitList(*systemsFlag), tests: splitList(*testsFlag),
		rate: *rate, idle: *idle, idleJitter: *idleJitter, profileDir: *profileDir, memProfileDir: *memProfile, verbose: *verbose, progress: os.Stderr,
		reps: 3, jobs: 100_000, execJobs: 5000, latencyJobs: 1000,
		latenessJobs: 1000, latenessSpan: 20 * time.Second, backlogJobs: 50_000, backlogPerSec: *backlogSec,
	}
	if *quick {
		cfg.reps, cfg.jobs, cfg.execJobs, cfg.latencyJobs = 1, 20_000, 2000, 300
		cfg.latenessJobs, cfg.latenessSpan, cfg.backlogJobs = 150, 3*time.Second, 20_000
	}
	if *lateSpan > 0 {
		cfg.latenessSpan = *lateSpan
	}
	for _, o := range []struct {
		flag int
		dst  *int
	}{{*reps, &cfg.reps}, {*jobs, &cfg.jobs}, {*execJobs, &cfg.execJobs}, {*latJobs, &cfg.latencyJobs}, {*lateJobs, &cfg.latenessJobs}, {*backlogJobs, &cfg.backlogJobs}} {
		if o.flag > 0 {
			*o.dst = o.flag
		}
	}
	var err error
	if cfg.producers, err = intList(*producers); err != nil {
		fail("-producers: %v", err)
	}
	if cfg.concurrency, err = intList(*conc); err != nil {
		fail("-concurrency: %v", err)
	}

	srv, err := startRedis()
	if err != nil {
		fail("%v", err)
	}
	defer srv.stop()
	started := time.Now()
	results, err := run(cfg, srv.addr)
	if err != nil {
		srv.stop()
		fail("%v", err)
	}
	if *jsonOut {
		writeJSON(os.Stdout, results)
		return
	}
	fmt.Printf("resq bench, %s, `go run . %s`, %d repetition(s) (medians), redis %s\n\n",
		started.UTC().Format("2006-01-02 15:04 MST"), strings.Join(os.Args[1:], " "), cfg.reps, redisVersion(srv.addr))
	printTable(os.Stdout, results)
}

// writeJSON prints one JSON object per line.
func writeJSON(w io.Writer, results []measurement) {
	enc := json.NewEncoder(w)
	for _, m := range results {
		_ = enc.Encode(m)
	}
}

// readJSON reads what writeJSON wrote.
func readJSON(path string) ([]measurement, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []measurement
	dec := json.NewDecoder(bytes.NewReader(b))
	for dec.More() {
		var m measurement
		if err := dec.Decode(&m); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// benchCase is one measured configuration.
type benchCase struct {
	sys     systemInfo
	test    string
	param   int // producers (enqueue) or concurrency
	jobs    int
	measure string // scheduler: "lateness" or "backlog"
}

func (c benchCase) String() string {
	if c.test == "scheduler" {
		return fmt.Sprintf("%s %s %s", c.sys.name, c.test, c.measure)
	}
	if c.test == "enqueue" {
		return fmt.Sprintf("%s %s p=%d", c.sys.name, c.test, c.param)
	}
	return fmt.Sprintf("%s %s c=%d", c.sys.name, c.test, c.param)
}

func plan(cfg config) ([]benchCase, error) {
	var cases []benchCase
	for _, test := range cfg.tests {
		switch test {
		case "enqueue", "process", "latency", "scheduler":
		default:
			return nil, fmt.Errorf("unknown test %q (known: enqueue, process, latency, scheduler)", test)
		}
		for _, name := range cfg.systems {
			sys, err := lookupSystem(name)
			if err != nil {
				return nil, err
			}
			if !sys.runs(test) {
				continue
			}
			switch test {
			case "enqueue":
				for _, p := range cfg.producers {
					cases = append(cases, benchCase{sys, test, p, cfg.jobs, ""})
				}
			case "process":
				if sys.mode == "exec" { // fork+exec per job: one setting is enough
					cases = append(cases, benchCase{sys, test, 10, cfg.execJobs, ""})
					continue
				}
				for _, c := range cfg.concurrency {
					cases = append(cases, benchCase{sys, test, c, cfg.jobs, ""})
				}
			case "latency":
				cases = append(cases, benchCase{sys, test, 10, cfg.latencyJobs, ""})
			case "scheduler":
				cases = append(cases, schedulerCases(cfg, sys)...)
			}
		}
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("nothing to run for systems %v and tests %v", cfg.systems, cfg.tests)
	}
	return cases, nil
}

// run measures every case cfg.reps times (repetitions interleaved, so that a
// burst of noise hits all systems alike) and returns the medians.
func run(cfg config, addr string) ([]measurement, error) {
	cases, err := plan(cfg)
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "resq-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	admin, err := dialRESP(addr)
	if err != nil {
		return nil, err
	}
	defer admin.close()

	runs := make([][]measurement, len(cases))
	// The enqueue test's round-trip limit: redis-benchmark with as many
	// connections as producers, in every repetition (limit.go).
	var limitClients []int
	if slices.Contains(cfg.tests, "enqueue") {
		limitClients = cfg.producers
	}
	limitRuns := make([][]measurement, len(limitClients))
	total, k := cfg.reps*len(cases), 0
	for rep := 1; rep <= cfg.reps; rep++ {
		for i, c := range limitClients {
			m, err := measureLimit(admin, addr, c, cfg.jobs, rep)
			if err != nil {
				return nil, fmt.Errorf("round-trip limit (rep %d): %w", rep, err)
			}
			limitRuns[i] = append(limitRuns[i], m)
			if cfg.progress != nil {
				fmt.Fprintf(cfg.progress, "[limit] %s rep %d: %.0f req/s%s\n", limitCommand(c), rep, m.JobsPerS, m.Note)
			}
		}
		for i, c := range cases {
			k++
			m, err := runCase(cfg, exe, tmp, addr, admin, c, rep)
			if err != nil {
				return nil, fmt.Errorf("%s (rep %d): %w", c, rep, err)
			}
			if m.JobsDone < c.jobs {
				return nil, fmt.Errorf("%s (rep %d): only %d of %d jobs done", c, rep, m.JobsDone, c.jobs)
			}
			runs[i] = append(runs[i], m)
			if cfg.progress != nil {
				lat := ""
				if m.P99Ms != nil {
					lat = fmt.Sprintf(", p50 %.2f ms, p99 %.2f ms", *m.P50Ms, *m.P99Ms)
				}
				rate := fmt.Sprintf("%.0f jobs/s", m.JobsPerS)
				if m.Measure == "lateness" {
					rate = "lateness" // its jobs/s is the bench's pace
				}
				fmt.Fprintf(cfg.progress, "[%d/%d] %s rep %d: %s%s, rss %.1f MB\n", k, total, c, rep, rate, lat, m.RSSMB)
			}
		}
	}
	out := make([]measurement, len(cases))
	for i := range cases {
		out[i] = medianOf(runs[i])
	}
	for _, r := range limitRuns {
		out = append(out, medianOf(r))
	}
	return out, nil
}

// runCase flushes Redis, prepares jobs if the test needs them (in a child of
// its own) and runs the measured child.
func runCase(cfg config, exe, tmp, addr string, admin *resp, c benchCase, rep int) (measurement, error) {
	if _, err := admin.do("FLUSHALL"); err != nil {
		return measurement{}, err
	}
	spec := childSpec{
		System: c.sys.name, Test: c.test, Measure: c.measure, Jobs: c.jobs, Addr: addr,
		ResultPath: filepath.Join(tmp, "result.json"),
	}
	if c.test == "process" || c.measure == "backlog" {
		prep := spec
		prep.PerSecond = max(cfg.backlogPerSec, 1)
		prep.Role = "prep"
		if err := runChildProcess(cfg, exe, prep); err != nil {
			return measurement{}, fmt.Errorf("preparing jobs: %w", err)
		}
	}
	spec.Role = "measure"
	switch c.test {
	case "enqueue":
		spec.Producers = c.param
	case "process":
		spec.Concurrency = c.param
	case "latency":
		idle := cfg.idle
		if cfg.idleJitter > 0 {
			idle += rand.N(cfg.idleJitter)
		}
		spec.Concurrency, spec.Rate, spec.IdleMs = c.param, cfg.rate, int(idle/time.Millisecond)
	case "scheduler":
		spec.Concurrency, spec.SpreadMs, spec.PerSecond = c.param, int(cfg.latenessSpan/time.Millisecond), max(cfg.backlogPerSec, 1)
	}
	name := fmt.Sprintf("%s-%s-%d-rep%d", c.sys.name, c.test, c.param, rep)
	if c.measure != "" {
		name = fmt.Sprintf("%s-%s-%s-rep%d", c.sys.name, c.test, c.measure, rep)
	}
	if cfg.profileDir != "" {
		spec.CPUProfile = filepath.Join(cfg.profileDir, name+".cpu.pprof")
	}
	if cfg.memProfileDir != "" {
		spec.MemProfile = filepath.Join(cfg.memProfileDir, name+".allocs.pprof")
	}
	_ = os.Remove(spec.ResultPath)
	if err := runChildProcess(cfg, exe, spec); err != nil {
		return measurement{}, err
	}
	b, err := os.ReadFile(spec.ResultPath)
	if err != nil {
		return measurement{}, err
	}
	var m measurement
	if err := json.Unmarshal(b, &m); err != nil {
		return measurement{}, fmt.Errorf("child result: %w", err)
	}
	m.Rep, m.Reps = rep, 1
	return m, nil
}

func runChildProcess(cfg config, exe string, spec childSpec) error {
	js, _ := json.Marshal(spec)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
	cmd.SysProcAttr = childProcAttr()
	var out bytes.Buffer
	if cfg.verbose {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	} else {
		cmd.Stdout, cmd.Stderr = &out, &out
	}
	if err := cmd.Run(); err != nil {
		tail := out.String()
		if len(tail) > 4000 {
			tail = "…" + tail[len(tail)-4000:]
		}
		return fmt.Errorf("%s child: %v\n%s", spec.Role, err, tail)
	}
	return nil
}

// medianOf folds repetitions into one line: every figure is the median of
// its repetitions, jobs_done the smallest.
func medianOf(ms []measurement) measurement {
	out := ms[0]
	out.Rep, out.Reps = 0, len(ms)
	if len(ms) == 1 {
		return out
	}
	pick := func(get func(measurement) float64) float64 {
		v := make([]float64, len(ms))
		for i, m := range ms {
			v[i] = get(m)
		}
		return median(v)
	}
	pickPtr := func(get func(measurement) *float64) *float64 {
		var v []float64
		for _, m := range ms {
			if p := get(m); p != nil {
				v = append(v, *p)
			}
		}
		if len(v) == 0 {
			return nil
		}
		x := median(v)
		return &x
	}
	out.Seconds = pick(func(m measurement) float64 { return m.Seconds })
	out.JobsPerS = pick(func(m measurement) float64 { return m.JobsPerS })
	out.RSSMB = pick(func(m measurement) float64 { return m.RSSMB })
	out.CPUUsPerJob = pick(func(m measurement) float64 { return m.CPUUsPerJob })
	out.RedisCmdsPerJob = pick(func(m measurement) float64 { return m.RedisCmdsPerJob })
	out.RedisReadsPerJob = pick(func(m measurement) float64 { return m.RedisReadsPerJob })
	out.RedisCPUUsPerJob = pick(func(m measurement) float64 { return m.RedisCPUUsPerJob })
	out.P50Ms = pickPtr(func(m measurement) *float64 { return m.P50Ms })
	out.P99Ms = pickPtr(func(m measurement) *float64 { return m.P99Ms })
	out.MaxMs = pickPtr(func(m measurement) *float64 { return m.MaxMs })
	out.FirstMoveMs = pickPtr(func(m measurement) *float64 { return m.FirstMoveMs })
	for _, m := range ms {
		out.JobsDone = min(out.JobsDone, m.JobsDone)
		out.JobsPerSReps = append(out.JobsPerSReps, round(m.JobsPerS, 0))
		if m.P99Ms != nil {
			out.P99MsReps = append(out.P99MsReps, round(*m.P99Ms, 3))
		}
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(x float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(x*p+0.5)) / p
}

func redisVersion(addr string) string {
	r, err := dialRESP(addr)
	if err != nil {
		return "?"
	}
	defer r.close()
	info, err := r.str("INFO", "server")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(l, "redis_version:"); ok {
			return v
		}
	}
	return "?"
}

// printTable prints the results grouped by test and setting, each group
// followed by resq's ratio to the best peer in the same run, then the
// issue's goals.
func printTable(w io.Writer, results []measurement) {
	type key struct {
		test    string
		measure string
		param   int
	}
	param := func(m measurement) int {
		if m.Test == "enqueue" {
			return m.Producers
		}
		return m.Concurrency
	}
	var keys []key
	groups := map[key][]measurement{}
	limits := map[int]measurement{} // enqueue: producers → redis-benchmark line
	for _, m := range results {
		if m.System == limitSystem {
			limits[m.Producers] = m
			continue
		}
		k := key{m.Test, m.Measure, param(m)}
		if _, ok := groups[k]; !ok {
			keys = append(keys, k)
		}
		groups[k] = append(groups[k], m)
	}
	ms := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f", *p)
	}
	for _, k := range keys {
		g := groups[k]
		if k.test == "scheduler" {
			printSchedulerGroup(w, k.measure, g)
			fmt.Fprintln(w)
			continue
		}
		what := map[string]string{"enqueue": "producers", "process": "concurrency", "latency": "concurrency"}[k.test]
		fmt.Fprintf(w, "%s, %s %d\n", k.test, what, k.param)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "system\tjobs\tjobs/s\tp50 ms\tp99 ms\tmax ms\tRSS MB\tCPU µs/job\tredis cmds/job\tredis reads/job\tredis CPU µs/job\t")
		for _, m := range g {
			name := m.System
			if m.Checked != nil && !*m.Checked {
				name += " (unchecked)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%s\t%.1f\t%.1f\t%.2f\t%.2f\t%.1f\t\n",
				name, m.Jobs, m.JobsPerS, ms(m.P50Ms), ms(m.P99Ms), ms(m.MaxMs), m.RSSMB, m.CPUUsPerJob,
				m.RedisCmdsPerJob, m.RedisReadsPerJob, m.RedisCPUUsPerJob)
		}
		tw.Flush()
		if line := ratioLine(g); line != "" {
			fmt.Fprintln(w, "  "+line)
		}
		if l, ok := limits[k.param]; ok && k.test == "enqueue" {
			fmt.Fprintln(w, "  "+limitLine(l, g))
		}
		fmt.Fprintln(w)
	}
	if goals := goalLines(results); len(goals) > 0 {
		fmt.Fprintln(w, "goals (issue 6, and issue 15 where marked):")
		for _, l := range goals {
			fmt.Fprintln(w, "  "+l)
		}
	}
}

// bestPeer returns the peer with the highest jobs/s (enqueue, process) or the
// lowest p99 (latency) in g; checkedOnly skips unchecked enqueuers.
func bestPeer(g []measurement, checkedOnly bool) (measurement, bool) {
	var best measurement
	found := false
	for _, m := range g {
		info, err := lookupSystem(m.System)
		if err != nil || !info.peer || (checkedOnly && m.Checked != nil && !*m.Checked) {
			continue
		}
		better := m.JobsPerS > best.JobsPerS
		if m.Test == "latency" {
			better = m.P99Ms != nil && (best.P99Ms == nil || *m.P99Ms < *best.P99Ms)
		}
		if !found || better {
			best, found = m, true
		}
	}
	return best, found
}

func find(g []measurement, system string) (measurement, bool) {
	for _, m := range g {
		if m.System == system {
			return m, true
		}
	}
	return measurement{}, false
}

func ratioLine(g []measurement) string {
	r, ok := find(g, "resq")
	if !ok {
		return ""
	}
	switch r.Test {
	case "latency":
		b, ok := bestPeer(g, false)
		if !ok || r.P99Ms == nil || b.P99Ms == nil {
			return ""
		}
		return fmt.Sprintf("resq p99 %.2f ms vs best peer %s %.2f ms: %.2f× (best peer p99 / resq p99; > 1 means resq picks up faster)%s",
			*r.P99Ms, b.System, *b.P99Ms, *b.P99Ms / *r.P99Ms, perRep(b.P99MsReps, r.P99MsReps))
	case "enqueue":
		parts := []string{}
		if b, ok := bestPeer(g, true); ok {
			parts = append(parts, fmt.Sprintf("resq / best checked peer (%s): %.2f×%s", b.System, r.JobsPerS/b.JobsPerS, perRep(r.JobsPerSReps, b.JobsPerSReps)))
			if rb, ok := find(g, "resq-batch"); ok {
				parts = append(parts, fmt.Sprintf("resq-batch / best checked peer: %.2f×%s", rb.JobsPerS/b.JobsPerS, perRep(rb.JobsPerSReps, b.JobsPerSReps)))
			}
		}
		if b, ok := bestPeer(g, false); ok {
			parts = append(parts, fmt.Sprintf("resq / best peer (%s): %.2f×", b.System, r.JobsPerS/b.JobsPerS))
		}
		return strings.Join(parts, "; ")
	default:
		b, ok := bestPeer(g, false)
		if !ok {
			return ""
		}
		return fmt.Sprintf("resq / best peer (%s): %.2f×%s", b.System, r.JobsPerS/b.JobsPerS, perRep(r.JobsPerSReps, b.JobsPerSReps))
	}
}

// perRep renders the ratio num/den of each repetition (repetitions are
// interleaved, so rep i of two systems ran minutes apart at most).
func perRep(num, den []float64) string {
	if len(num) < 2 || len(num) != len(den) {
		return ""
	}
	parts := make([]string, len(num))
	for i := range num {
		parts[i] = fmt.Sprintf("%.2f", num[i]/den[i])
	}
	return " (per repetition: " + strings.Join(parts, ", ") + ")"
}

func goalLines(results []measurement) []string {
	var lines []string
	group := func(test string, param int) []measurement {
		var g []measurement
		for _, m := range results {
			p := m.Concurrency
			if test == "enqueue" {
				p = m.Producers
			}
			if m.Test == test && p == param {
				g = append(g, m)
			}
		}
		return g
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	if g := group("process", 50); len(g) > 0 {
		r, okR := find(g, "resq")
		b, okB := bestPeer(g, false)
		if okR && okB {
			x := r.JobsPerS / b.JobsPerS
			lines = append(lines, fmt.Sprintf("processing at concurrency 50 ≥ 2× best peer: %.2f× %s — %s", x, b.System, verdict(x >= 2)))
		}
		if okR {
			lines = append(lines, fmt.Sprintf("worker RSS ≤ 30 MB at concurrency 50: %.1f MB — %s", r.RSSMB, verdict(r.RSSMB <= 30)))
		}
	}
	if g := group("process", 10); len(g) > 0 {
		if r, ok := find(g, "resq-warm"); ok {
			lines = append(lines, fmt.Sprintf("warm child ≥ 10k no-op jobs/s (issue 4): %.0f jobs/s at concurrency 10 — %s", r.JobsPerS, verdict(r.JobsPerS >= 10_000)))
		}
	}
	if g := group("enqueue", 1); len(g) > 0 {
		// Single checked calls are one round trip each for every system;
		// EnqueueBatch (resq-batch) is how one resq producer pipelines with
		// every reply checked, which no peer's API offers.
		b, okB := bestPeer(g, true)
		var xs []string
		best := 0.0
		for _, name := range []string{"resq", "resq-batch"} {
			if r, ok := find(g, name); ok && okB {
				x := r.JobsPerS / b.JobsPerS
				best = max(best, x)
				xs = append(xs, fmt.Sprintf("%s %.2f×", name, x))
			}
		}
		if len(xs) > 0 {
			lines = append(lines, fmt.Sprintf("enqueue, 1 producer, ≥ 1.5× best checked peer (%s): %s — %s", b.System, strings.Join(xs, ", "), verdict(best >= 1.5)))
		}
	}
	if g := group("latency", 10); len(g) > 0 {
		if r, ok := find(g, "resq"); ok && r.P99Ms != nil {
			lines = append(lines, fmt.Sprintf("idle pickup p99 ≤ 5 ms: %.2f ms — %s", *r.P99Ms, verdict(*r.P99Ms <= 5)))
		}
	}
	lines = append(lines, processGoalLines15(group, verdict)...)
	lines = append(lines, enqueueGoalLines(results, verdict)...)
	lines = append(lines, schedulerGoalLines(results, verdict)...)
	return lines
}

// processGoalLines15 are issue 15's goals for the process test: resq ≥ 3×
// the best peer at both concurrencies, the warm child ≥ 20k jobs/s at 50,
// the plain-command mode ≥ 2× the best peer, --exec ≥ 2,000 jobs/s.
func processGoalLines15(group func(test string, param int) []measurement, verdict func(bool) string) []string {
	var lines []string
	for _, c := range []int{10, 50} {
		g := group("process", c)
		if len(g) == 0 {
			continue
		}
		b, okB := bestPeer(g, false)
		if r, ok := find(g, "resq"); ok && okB {
			x := r.JobsPerS / b.JobsPerS
			lines = append(lines, fmt.Sprintf("issue 15: processing at concurrency %d ≥ 3× best peer: %.2f× %s — %s", c, x, b.System, verdict(x >= 3)))
		}
		if r, ok := find(g, "resq-plain"); ok && okB {
			x := r.JobsPerS / b.JobsPerS
			lines = append(lines, fmt.Sprintf("issue 15: plain commands (no Lua) at concurrency %d ≥ 2× best peer: %.2f× %s — %s", c, x, b.System, verdict(x >= 2)))
		}
		if r, ok := find(g, "resq-warm"); ok && c == 50 {
			lines = append(lines, fmt.Sprintf("issue 15: warm child ≥ 20k jobs/s at concurrency 50: %.0f jobs/s — %s", r.JobsPerS, verdict(r.JobsPerS >= 20_000)))
		}
		if r, ok := find(g, "resq-exec"); ok {
			lines = append(lines, fmt.Sprintf("issue 15: --exec ≥ 2,000 jobs/s at concurrency %d: %.0f jobs/s — %s", c, r.JobsPerS, verdict(r.JobsPerS >= 2_000)))
		}
	}
	return lines
}
