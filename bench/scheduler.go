package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// The scheduler test (issues 12 and 15) has two measures per system:
//
//	lateness  a worker (concurrency 10) and the system's scheduler run with
//	          their defaults; one producer enqueues spec.Jobs jobs evenly over
//	          spec.SpreadMs, job i due at the whole second 1 + i%3 seconds
//	          after the second it is enqueued in, with the system's own
//	          delayed-job call. Lateness = handler start − due second (the
//	          handler start, not the arrival in the queue, for every system:
//	          it is the one moment every system exposes; for resq it adds
//	          the blocking pickup's ~1 ms to the move).
//	backlog   spec.Jobs jobs are already due when the system's mover starts
//	          (resq: a Scheduler alone; asynq: a Server whose queue is
//	          paused, so only its forwarder acts; gocraft: a worker pool of
//	          concurrency 1 whose one handler blocks, so only its requeuer
//	          acts). Timed until every job has left the system's delayed set.
//	          jobs/s is the move rate from the first moved job to the last;
//	          first_move_ms is how long the mover took to start moving.
//
// goworker has no scheduler and takes no part.

// delayedFunc enqueues a job due at the whole second due with the system's
// delayed-job call. One goroutine calls it.
type delayedFunc func(ctx context.Context, a jobArgs, due time.Time) error

// scheduling is implemented by the systems that have delayed jobs.
type scheduling interface {
	// delayedProducer prepares the delayed-job client of the lateness test.
	delayedProducer(ctx context.Context, addr string) (delayedFunc, error)
	// startScheduledWorker starts a worker of the given concurrency whose
	// handler calls done for every job, and whatever moves due jobs to
	// its queue, with their default settings. It returns at once.
	startScheduledWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error
	// prepBacklog stores n jobs that are all due when it returns, perSecond
	// of them per due second where the system's client can store past due
	// times.
	prepBacklog(ctx context.Context, addr string, n, perSecond int) error
	// startMover starts only what moves due jobs; no handler runs (or one
	// that never returns).
	startMover(ctx context.Context, addr string) error
	// moved returns how many of the n backlog jobs the mover has moved
	// (one command).
	moved(r *resp, n int) (int64, error)
}

// Scheduler test settings.
const (
	latenessConcurrency = 10
	latenessIdle        = time.Second // the worker and scheduler start before the first job
)

func schedulerCases(cfg config, sys systemInfo) []benchCase {
	var cases []benchCase
	cases = append(cases, benchCase{sys: sys, test: "scheduler", measure: "lateness", param: latenessConcurrency, jobs: cfg.latenessJobs})
	if !sys.noBacklog {
		cases = append(cases, benchCase{sys: sys, test: "scheduler", measure: "backlog", jobs: cfg.backlogJobs})
	}
	return cases
}

func asScheduling(sys system) (scheduling, error) {
	s, ok := sys.(scheduling)
	if !ok {
		return nil, fmt.Errorf("%T has no delayed jobs", sys)
	}
	return s, nil
}

// dueSecond is the due time of job i of the lateness test enqueued at now.
func dueSecond(now time.Time, i int) time.Time {
	return time.Unix(now.Unix()+1+int64(i%3), 0)
}

// awayFromSecondBoundary sleeps when the next second starts within 3 ms, so
// that a system computing "now + n seconds" itself (gocraft's EnqueueIn)
// reads the same second as the bench did.
func awayFromSecondBoundary() {
	now := time.Now()
	if rest := time.Second - time.Duration(now.Nanosecond()); rest < 3*time.Millisecond {
		time.Sleep(rest + time.Millisecond)
	}
}

func measureLateness(ctx context.Context, sys system, spec childSpec) (measurement, error) {
	m := measurement{Measure: "lateness", Concurrency: spec.Concurrency}
	sch, err := asScheduling(sys)
	if err != nil {
		return m, err
	}
	cnt := newCounter(spec.Jobs)
	lat := make([]time.Duration, spec.Jobs)
	var mu sync.Mutex
	done := func(a jobArgs) {
		d := time.Duration(time.Now().UnixMicro()-a.T) * time.Microsecond
		mu.Lock()
		if a.N >= 0 && a.N < int64(len(lat)) {
			lat[a.N] = d
		}
		mu.Unlock()
		cnt.add()
	}
	if err := sch.startScheduledWorker(ctx, spec.Addr, spec.Concurrency, done); err != nil {
		return m, err
	}
	enq, err := sch.delayedProducer(ctx, spec.Addr)
	if err != nil {
		return m, err
	}
	time.Sleep(latenessIdle)
	w, err := openWindow(spec)
	if err != nil {
		return m, err
	}
	interval := time.Duration(spec.SpreadMs) * time.Millisecond / time.Duration(max(spec.Jobs, 1))
	start := time.Now()
	for i := 0; i < spec.Jobs; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		awayFromSecondBoundary()
		due := dueSecond(time.Now(), i)
		if err := enq(ctx, jobArgs{N: int64(i), T: due.UnixMicro()}, due); err != nil {
			return m, fmt.Errorf("delayed enqueue of job %d: %w", i, err)
		}
	}
	if err := cnt.wait(2 * time.Minute); err != nil {
		return m, err
	}
	if err := w.close(&m, spec.Jobs); err != nil {
		return m, err
	}
	m.JobsDone = int(cnt.seen.Load())
	m.P50Ms, m.P99Ms, m.MaxMs = percentiles(lat)
	m.JobsPerS = 0 // the producer's pace, not a result
	return m, nil
}

func prepBacklog(ctx context.Context, sys system, spec childSpec) error {
	sch, err := asScheduling(sys)
	if err != nil {
		return err
	}
	if err := sch.prepBacklog(ctx, spec.Addr, spec.Jobs, max(spec.PerSecond, 1)); err != nil {
		return err
	}
	admin, err := dialRESP(spec.Addr)
	if err != nil {
		return err
	}
	defer admin.close()
	moved, err := sch.moved(admin, spec.Jobs)
	if err != nil {
		return err
	}
	if moved != 0 {
		return fmt.Errorf("%d backlog jobs were moved before the mover started", moved)
	}
	return nil
}

func measureBacklog(ctx context.Context, sys system, spec childSpec) (measurement, error) {
	m := measurement{Measure: "backlog", PerSecond: spec.PerSecond}
	sch, err := asScheduling(sys)
	if err != nil {
		return m, err
	}
	w, err := openWindow(spec)
	if err != nil {
		return m, err
	}
	if err := sch.startMover(ctx, spec.Addr); err != nil {
		return m, err
	}
	n := int64(spec.Jobs)
	var first, last time.Time
	var movedAtFirst, left int64
	if err := w.until(5*time.Minute, "every backlog job moved", func() (bool, error) {
		var err error
		var moved int64
		moved, err = sch.moved(w.admin, spec.Jobs)
		left = n - moved
		if err == nil && left < n && first.IsZero() {
			first, movedAtFirst = time.Now(), n-left
		}
		if err == nil && left == 0 {
			last = time.Now()
		}
		return left == 0, err
	}); err != nil {
		return m, err
	}
	if err := w.close(&m, spec.Jobs); err != nil {
		return m, err
	}
	m.Seconds = last.Sub(w.t0).Seconds()
	firstMs := float64(first.Sub(w.t0)) / float64(time.Millisecond)
	m.FirstMoveMs = &firstMs
	if span := last.Sub(first); span > 0 && movedAtFirst < n {
		m.JobsPerS = float64(n-movedAtFirst) / span.Seconds()
	} else {
		m.JobsPerS = float64(n) / m.Seconds // everything moved before the first look
	}
	m.JobsDone = int(n - left)
	return m, nil
}

// printSchedulerGroup prints one measure of the scheduler test.
func printSchedulerGroup(w io.Writer, measure string, g []measurement) {
	ms := func(p *float64) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f", *p)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	switch measure {
	case "lateness":
		fmt.Fprintf(w, "scheduler lateness (handler start − due second), concurrency %d\n", g[0].Concurrency)
		fmt.Fprintln(tw, "system\tjobs\tp50 ms\tp99 ms\tmax ms\tRSS MB\tCPU µs/job\tredis cmds/job\tredis reads/job\tredis CPU µs/job\t")
		for _, m := range g {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%.1f\t%.1f\t%.2f\t%.2f\t%.1f\t\n",
				m.System, m.Jobs, ms(m.P50Ms), ms(m.P99Ms), ms(m.MaxMs), m.RSSMB, m.CPUUsPerJob,
				m.RedisCmdsPerJob, m.RedisReadsPerJob, m.RedisCPUUsPerJob)
		}
	default:
		fmt.Fprintf(w, "scheduler backlog (jobs already due when the mover starts; resq's and gocraft's %d per due second)\n", g[0].PerSecond)
		fmt.Fprintln(tw, "system\tjobs\tmoved/s\tfirst move ms\tall moved s\tRSS MB\tCPU µs/job\tredis cmds/job\tredis reads/job\tredis CPU µs/job\t")
		for _, m := range g {
			fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%.2f\t%.1f\t%.1f\t%.2f\t%.2f\t%.1f\t\n",
				m.System, m.Jobs, m.JobsPerS, ms(m.FirstMoveMs), m.Seconds, m.RSSMB, m.CPUUsPerJob,
				m.RedisCmdsPerJob, m.RedisReadsPerJob, m.RedisCPUUsPerJob)
		}
	}
	tw.Flush()
	if line := schedulerRatioLine(measure, g); line != "" {
		fmt.Fprintln(w, "  "+line)
	}
}

// bestSchedulingPeer is the peer with the lowest p99 lateness or the
// highest move rate.
func bestSchedulingPeer(measure string, g []measurement) (measurement, bool) {
	var best measurement
	found := false
	for _, m := range g {
		info, err := lookupSystem(m.System)
		if err != nil || !info.peer {
			continue
		}
		better := m.JobsPerS > best.JobsPerS
		if measure == "lateness" {
			better = m.P99Ms != nil && (best.P99Ms == nil || *m.P99Ms < *best.P99Ms)
		}
		if !found || better {
			best, found = m, true
		}
	}
	return best, found
}

func schedulerRatioLine(measure string, g []measurement) string {
	r, ok := find(g, "resq")
	if !ok {
		return ""
	}
	var parts []string
	if measure == "lateness" {
		if r.P99Ms == nil {
			return ""
		}
		if b, ok := bestSchedulingPeer(measure, g); ok && b.P99Ms != nil {
			parts = append(parts, fmt.Sprintf("resq p99 %.2f ms vs best peer %s %.2f ms: %.1f× sooner%s",
				*r.P99Ms, b.System, *b.P99Ms, *b.P99Ms / *r.P99Ms, perRep(b.P99MsReps, r.P99MsReps)))
		}
		if p, ok := find(g, "resq-sched-poll"); ok && p.P99Ms != nil {
			parts = append(parts, fmt.Sprintf("polling configuration p99 %.2f ms", *p.P99Ms))
		}
		return strings.Join(parts, "; ")
	}
	if b, ok := bestSchedulingPeer(measure, g); ok && b.JobsPerS > 0 {
		return fmt.Sprintf("move rate resq / best peer (%s): %.2f×%s; all moved: resq %.2f s, %s %.2f s (from the mover's start)",
			b.System, r.JobsPerS/b.JobsPerS, perRep(r.JobsPerSReps, b.JobsPerSReps), r.Seconds, b.System, b.Seconds)
	}
	return ""
}

func schedulerGoalLines(results []measurement, verdict func(bool) string) []string {
	var lines []string
	for _, m := range results {
		if m.System != "resq" || m.Test != "scheduler" {
			continue
		}
		switch m.Measure {
		case "lateness":
			if m.P99Ms != nil {
				lines = append(lines, fmt.Sprintf("scheduler lateness p99 ≤ 50 ms (issue 12): %.2f ms — %s", *m.P99Ms, verdict(*m.P99Ms <= 50)))
			}
		case "backlog":
			lines = append(lines, fmt.Sprintf("backlog move ≥ 50,000 jobs/s (issue 12): %.0f jobs/s — %s", m.JobsPerS, verdict(m.JobsPerS >= 50_000)))
		}
	}
	return lines
}
