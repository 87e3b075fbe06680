package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the measured child process, as the
// bench binary does.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(spec)
		return
	}
	os.Exit(m.Run())
}

func startTestRedis(t *testing.T) string {
	t.Helper()
	srv, err := startRedis()
	if err != nil {
		t.Fatalf("%v", err) // never skip: the bench is only meaningful on a real Redis
	}
	t.Cleanup(srv.stop)
	return srv.addr
}

// TestResqQuick runs resq through every test with few jobs, in child
// processes, and checks that the JSON output parses, has the documented
// fields and that every job ran.
func TestResqQuick(t *testing.T) {
	addr := startTestRedis(t)
	cfg := config{
		systems: []string{"resq", "resq-exec"}, tests: []string{"enqueue", "process", "latency"},
		producers: []int{1}, concurrency: []int{10},
		jobs: 2000, execJobs: 100, latencyJobs: 50, rate: 500, idle: 100 * time.Millisecond, reps: 1,
	}
	results, err := run(cfg, addr)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	writeJSON(&buf, results)
	saved := filepath.Join(t.TempDir(), "run.jsonl")
	if err := os.WriteFile(saved, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if back, err := readJSON(saved); err != nil || len(back) != len(results) {
		t.Fatalf("readJSON: %d results, %v; want %d", len(back), err, len(results))
	}
	want := map[string]int{limitSystem + "/enqueue": 0, "resq/enqueue": 2000, "resq/process": 2000, "resq-exec/process": 100, "resq/latency": 50}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("output line does not parse: %v: %s", err, sc.Text())
		}
		for _, k := range []string{"system", "test", "jobs_per_s", "p50_ms", "p99_ms", "rss_mb", "redis_cmds_per_job", "reps", "jobs_done"} {
			if _, ok := line[k]; !ok {
				t.Errorf("line lacks %q: %s", k, sc.Text())
			}
		}
		if _, ok := line["producers"]; !ok {
			if _, ok := line["concurrency"]; !ok {
				t.Errorf("line has neither producers nor concurrency: %s", sc.Text())
			}
		}
		key := line["system"].(string) + "/" + line["test"].(string)
		if key == limitSystem+"/enqueue" { // the round-trip limit (limit.go)
			delete(want, key)
			if line["note"] == nil && line["jobs_per_s"].(float64) <= 0 {
				t.Errorf("limit line has neither a rate nor a note: %s", sc.Text())
			}
			continue
		}
		n, ok := want[key]
		if !ok {
			t.Errorf("unexpected line %s", sc.Text())
			continue
		}
		delete(want, key)
		if done := int(line["jobs_done"].(float64)); done != n {
			t.Errorf("%s: jobs_done %d, want %d", key, done, n)
		}
		if v := line["jobs_per_s"].(float64); v <= 0 {
			t.Errorf("%s: jobs_per_s %v", key, v)
		}
		if v := line["rss_mb"].(float64); v <= 0 {
			t.Errorf("%s: rss_mb %v", key, v)
		}
		if v := line["redis_cmds_per_job"].(float64); v <= 0 {
			t.Errorf("%s: redis_cmds_per_job %v", key, v)
		}
		if line["test"] == "latency" && line["p99_ms"] == nil {
			t.Errorf("%s: no p99_ms", key)
		}
	}
	for k := range want {
		t.Errorf("no output line for %s", k)
	}
	var table bytes.Buffer
	printTable(&table, results)
	if !strings.Contains(table.String(), "resq-exec") || !strings.Contains(table.String(), "process, concurrency 10") ||
		!strings.Contains(table.String(), "limit: ") || !strings.Contains(table.String(), "issue 15: enqueue, 1 producer") {
		t.Errorf("table misses rows:\n%s", table.String())
	}
}

// TestPeersProcess checks that every peer's driver enqueues and processes
// jobs, and that the table shows resq's ratio to the best of them.
func TestPeersProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	addr := startTestRedis(t)
	cfg := config{
		systems: []string{"resq", "goworker", "asynq", "gocraft"}, tests: []string{"process"},
		concurrency: []int{10}, jobs: 500, reps: 1,
	}
	results, err := run(cfg, addr)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 4 {
		t.Fatalf("%d results, want 4", len(results))
	}
	for _, m := range results {
		if m.JobsDone != 500 {
			t.Errorf("%s: %d jobs done, want 500", m.System, m.JobsDone)
		}
	}
	var table bytes.Buffer
	printTable(&table, results)
	if !strings.Contains(table.String(), "resq / best peer") {
		t.Errorf("table has no ratio line:\n%s", table.String())
	}
}

func TestMedianOf(t *testing.T) {
	p := func(v float64) *float64 { return &v }
	ms := []measurement{
		{JobsPerS: 30, P99Ms: p(3), JobsDone: 10},
		{JobsPerS: 10, P99Ms: p(9), JobsDone: 9},
		{JobsPerS: 20, P99Ms: p(1), JobsDone: 10},
	}
	m := medianOf(ms)
	if m.JobsPerS != 20 || *m.P99Ms != 3 || m.JobsDone != 9 || m.Reps != 3 || len(m.JobsPerSReps) != 3 {
		t.Errorf("medianOf = %+v", m)
	}
}

func TestPercentiles(t *testing.T) {
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration(100-i) * time.Millisecond
	}
	p50, p99, worst := percentiles(d)
	if *p50 != 50 || *p99 != 99 || *worst != 100 {
		t.Errorf("p50 %v p99 %v max %v, want 50 99 100", *p50, *p99, *worst)
	}
}

// TestSchedulerQuick runs the scheduler test for resq and resq-sched-poll
// with few jobs and checks that every delayed job ran, none before its due
// second, that the backlog was moved entirely, and that the JSON and the
// table carry the figures and goal lines.
func TestSchedulerQuick(t *testing.T) {
	addr := startTestRedis(t)
	cfg := config{
		systems: []string{"resq", "resq-sched-poll", "goworker"}, tests: []string{"scheduler"},
		latenessJobs: 30, latenessSpan: 500 * time.Millisecond, backlogJobs: 3000, reps: 1,
	}
	results, err := run(cfg, addr)
	if err != nil {
		t.Fatal(err)
	}
	checkSchedulerResults(t, results, map[string]int{
		"resq/lateness": 30, "resq/backlog": 3000, "resq-sched-poll/lateness": 30,
	})
	var table bytes.Buffer
	printTable(&table, results)
	for _, want := range []string{"scheduler lateness", "scheduler backlog", "resq-sched-poll", "scheduler lateness p99 ≤ 50 ms", "backlog move ≥ 50,000 jobs/s"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestPeersScheduler checks the peers' delayed-job drivers (goworker has
// none) and the ratio lines against them.
func TestPeersScheduler(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	addr := startTestRedis(t)
	cfg := config{
		systems: []string{"resq", "asynq", "gocraft"}, tests: []string{"scheduler"},
		latenessJobs: 20, latenessSpan: 500 * time.Millisecond, backlogJobs: 2000, reps: 1,
	}
	results, err := run(cfg, addr)
	if err != nil {
		t.Fatal(err)
	}
	checkSchedulerResults(t, results, map[string]int{
		"resq/lateness": 20, "resq/backlog": 2000, "asynq/lateness": 20, "asynq/backlog": 2000,
		"gocraft/lateness": 20, "gocraft/backlog": 2000,
	})
	var table bytes.Buffer
	printTable(&table, results)
	if !strings.Contains(table.String(), "vs best peer") || !strings.Contains(table.String(), "resq / best peer") {
		t.Errorf("table lacks the ratio lines:\n%s", table.String())
	}
}

func checkSchedulerResults(t *testing.T, results []measurement, want map[string]int) {
	t.Helper()
	var buf bytes.Buffer
	writeJSON(&buf, results)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("output line does not parse: %v: %s", err, sc.Text())
		}
		key := line["system"].(string) + "/" + line["measure"].(string)
		n, ok := want[key]
		if !ok {
			t.Errorf("unexpected line %s", sc.Text())
			continue
		}
		delete(want, key)
		if done := int(line["jobs_done"].(float64)); done != n {
			t.Errorf("%s: jobs_done %d, want %d", key, done, n)
		}
		switch line["measure"] {
		case "lateness":
			p50, ok1 := line["p50_ms"].(float64)
			_, ok2 := line["p99_ms"].(float64)
			if !ok1 || !ok2 {
				t.Errorf("%s: no p50_ms/p99_ms: %s", key, sc.Text())
			} else if p50 < 0 {
				t.Errorf("%s: jobs ran before their due second (p50 %.2f ms)", key, p50)
			}
		case "backlog":
			if v := line["jobs_per_s"].(float64); v <= 0 {
				t.Errorf("%s: jobs_per_s %v", key, v)
			}
			if _, ok := line["first_move_ms"].(float64); !ok {
				t.Errorf("%s: no first_move_ms: %s", key, sc.Text())
			}
		}
	}
	for k := range want {
		t.Errorf("no output line for %s", k)
	}
}
