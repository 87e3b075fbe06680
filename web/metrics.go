package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/resq-go/resq"
)

// MaxQueueSeries caps how many queues get resq_queue_length and
// resq_queue_latency_seconds series (the first ones by name): queue names
// come from Redis, and anyone who can enqueue could otherwise grow the
// metrics without bound. resq_queues always counts all of them.
const MaxQueueSeries = 500

// scrapeTimeout bounds the Redis reads of one scrape.
const scrapeTimeout = 10 * time.Second

// Metrics exports resq's state in Prometheus format. It is a
// prometheus.Collector that reads Redis on every scrape (queue lengths and
// latency, workers, counters), plus an in-process histogram of job durations
// fed by ObserveJob. Each Metrics has its own registry; nothing is registered
// globally.
//
// Metric names (all gauges unless said otherwise):
//
//	resq_up                                   1 if the last scrape read Redis, else 0
//	resq_queue_length{queue}                  jobs waiting
//	resq_queue_latency_seconds{queue}         age of the job at the head (0 when empty;
//	                                          absent when it has no enqueued_at)
//	resq_queues                               number of queues
//	resq_workers                              registered workers (one per slot)
//	resq_workers_busy                         workers running a job
//	resq_failures                             records in the failed list
//	resq_processed_total                      counter: Resque's stat:processed
//	resq_failed_total                         counter: Resque's stat:failed
//	resq_jobs_processed_total{queue,class}    counter: jobs processed by resq workers
//	resq_jobs_failed_total{queue,class}       counter: jobs failed on resq workers
//	resq_job_duration_seconds{queue,class}    histogram: run time of jobs that finished
//	                                          (done or failed) in this process; buckets
//	                                          .005 .01 .025 .05 .1 .25 .5 1 2.5 5 10 30
//	                                          60 300 1800 s
//	resq_jobs_retried_total{queue,class}      counter: failed runs that a retry policy sent
//	                                          back through the delayed queue, on workers in
//	                                          this process (fed by ObserveJob)
//	resq_delayed_jobs                         delayed jobs (resque-scheduler's keys; Ruby's
//	                                          count_all_scheduled_jobs)
//	resq_delayed_timestamps                   due seconds holding delayed jobs (Ruby's
//	                                          delayed_queue_schedule_size)
//	resq_delayed_due_jobs                     delayed jobs already due, not yet moved
//	resq_delayed_oldest_due_seconds           lateness: now minus the oldest due time that
//	                                          still holds a job; 0 when nothing is due
//	resq_scheduler_master_present             1 when a scheduler holds the master lock
//	                                          (SetSchedulerLockPrefix names the lock), else 0
type Metrics struct {
	admin    *resq.Admin
	reg      *prometheus.Registry
	logger   *slog.Logger
	duration *prometheus.HistogramVec
	retried  *prometheus.CounterVec

	up, queueLen, queueLatency, queues, workers, busy, failures *prometheus.Desc
	processed, failed, jobsProcessed, jobsFailed                *prometheus.Desc
	delayedJobs, delayedTS, delayedDue, delayedLate, master     *prometheus.Desc

	lockPrefix string
}

// durationBuckets are the bucket bounds of resq_job_duration_seconds, in
// seconds: 5 ms to 30 minutes (the default job timeout). A fresh slice each
// call, so no caller can change another's histogram.
func durationBuckets() []float64 {
	return []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 1800}
}

// NewMetrics returns the metrics of conn's namespace.
func NewMetrics(conn *resq.Conn) *Metrics {
	m := &Metrics{
		admin:  resq.NewAdmin(conn),
		reg:    prometheus.NewRegistry(),
		logger: slog.Default(),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "resq_job_duration_seconds",
			Help:    "Run time of jobs that finished (done or failed) on workers in this process.",
			Buckets: durationBuckets(),
		}, []string{"queue", "class"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "resq_jobs_retried_total",
			Help: "Failed runs that a retry policy scheduled again (through the delayed queue), on workers in this process.",
		}, []string{"queue", "class"}),
		up:            prometheus.NewDesc("resq_up", "1 if the last scrape could read Redis, else 0.", nil, nil),
		queueLen:      prometheus.NewDesc("resq_queue_length", "Jobs waiting in the queue.", []string{"queue"}, nil),
		queueLatency:  prometheus.NewDesc("resq_queue_latency_seconds", "Age of the job at the head of the queue (0 when empty).", []string{"queue"}, nil),
		queues:        prometheus.NewDesc("resq_queues", "Number of queues.", nil, nil),
		workers:       prometheus.NewDesc("resq_workers", "Registered workers (one per concurrent slot).", nil, nil),
		busy:          prometheus.NewDesc("resq_workers_busy", "Workers running a job.", nil, nil),
		failures:      prometheus.NewDesc("resq_failures", "Records in the failed list.", nil, nil),
		processed:     prometheus.NewDesc("resq_processed_total", "Jobs processed (Resque's stat:processed, all workers).", nil, nil),
		failed:        prometheus.NewDesc("resq_failed_total", "Jobs failed (Resque's stat:failed, all workers).", nil, nil),
		jobsProcessed: prometheus.NewDesc("resq_jobs_processed_total", "Jobs processed by resq workers, by queue and class.", []string{"queue", "class"}, nil),
		jobsFailed:    prometheus.NewDesc("resq_jobs_failed_total", "Jobs failed on resq workers, by queue and class.", []string{"queue", "class"}, nil),
		delayedJobs:   prometheus.NewDesc("resq_delayed_jobs", "Delayed jobs waiting for their due time (resque-scheduler's delayed queue).", nil, nil),
		delayedTS:     prometheus.NewDesc("resq_delayed_timestamps", "Due seconds in the delayed queue (Ruby's delayed_queue_schedule_size).", nil, nil),
		delayedDue:    prometheus.NewDesc("resq_delayed_due_jobs", "Delayed jobs whose due time has passed and that no scheduler has moved yet.", nil, nil),
		delayedLate:   prometheus.NewDesc("resq_delayed_oldest_due_seconds", "Now minus the oldest due time that still holds a delayed job (0 when none is due).", nil, nil),
		master:        prometheus.NewDesc("resq_scheduler_master_present", "1 when a scheduler holds the master lock, else 0.", nil, nil),
	}
	m.reg.MustRegister(m)
	return m
}

// SetLogger sets where scrape errors are logged (default slog.Default()).
func (m *Metrics) SetLogger(l *slog.Logger) {
	if l != nil {
		m.logger = l
	}
}

// SetSchedulerLockPrefix names the master lock resq_scheduler_master_present
// looks at: resque-scheduler's RESQUE_SCHEDULER_MASTER_LOCK_PREFIX, resq
// scheduler's --lock-prefix (default none). Call it before serving.
func (m *Metrics) SetSchedulerLockPrefix(prefix string) { m.lockPrefix = prefix }

// Registry is the Metrics' own registry; register more collectors (for
// example collectors.NewGoCollector()) on it to serve them too.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in Prometheus text format, for a separate
// listener (it does no authentication of its own).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             scrapeTimeout + 5*time.Second,
	})
}

// ObserveJob records a finished job's duration. It has the signature of
// resq.WorkerConfig.OnJobDoneFunc:
//
//	resq.WorkerConfig{OnJobDoneFunc: metrics.ObserveJob}
//
// A run that failed and was scheduled again by a retry policy (outcome
// "retried") counts in resq_jobs_retried_total and also has its duration
// observed.
func (m *Metrics) ObserveJob(ev resq.JobEvent) {
	if ev.Outcome == resq.OutcomeRetried {
		m.retried.WithLabelValues(label(ev.Queue), label(ev.Class)).Inc()
		m.duration.WithLabelValues(label(ev.Queue), label(ev.Class)).Observe(ev.Duration.Seconds())
		return
	}
	if ev.Outcome != resq.OutcomeDone && ev.Outcome != resq.OutcomeFailed {
		return
	}
	m.duration.WithLabelValues(label(ev.Queue), label(ev.Class)).Observe(ev.Duration.Seconds())
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.up, m.queueLen, m.queueLatency, m.queues, m.workers, m.busy,
		m.failures, m.processed, m.failed, m.jobsProcessed, m.jobsFailed,
		m.delayedJobs, m.delayedTS, m.delayedDue, m.delayedLate, m.master} {
		ch <- d
	}
	m.duration.Describe(ch)
	m.retried.Describe(ch)
}

// Collect implements prometheus.Collector: it reads Redis.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.duration.Collect(ch)
	m.retried.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if err := m.collectRedis(ctx, ch); err != nil {
		m.logger.Warn("metrics: cannot read Redis", "error", err)
		ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(m.up, prometheus.GaugeValue, 1)
}

func (m *Metrics) collectRedis(ctx context.Context, ch chan<- prometheus.Metric) error {
	// Read everything first, so a failed scrape exports no partial series.
	st, err := m.admin.Stats(ctx)
	if err != nil {
		return err
	}
	qs, err := m.admin.Queues(ctx)
	if err != nil {
		return err
	}
	counts, err := m.admin.JobCounts(ctx)
	if err != nil {
		return err
	}
	// The delayed queue: one read of every due second and its job count
	// (ZRANGEBYSCORE, then LLEN pipelined 1,000 at a time).
	tss, err := m.admin.DelayedTimestamps(ctx, resq.DelayedFilter{}, 0, -1)
	if err != nil {
		return err
	}
	holder, err := m.admin.SchedulerMaster(ctx, m.lockPrefix)
	if err != nil {
		return err
	}
	type lat struct {
		age time.Duration
		ok  bool
	}
	shown := qs[:min(len(qs), MaxQueueSeries)]
	lats := make([]lat, len(shown))
	for i, q := range shown {
		if q.Size == 0 {
			lats[i] = lat{0, true}
			continue
		}
		age, ok, err := m.admin.OldestJobAge(ctx, q.Name)
		if err != nil {
			return err
		}
		lats[i] = lat{max(age, 0), ok}
	}

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	now := time.Now()
	var delayedJobs, dueJobs int64
	var lateness time.Duration
	for _, t := range tss {
		delayedJobs += t.Jobs
		if t.Jobs > 0 && !t.At.After(now) {
			if dueJobs == 0 {
				lateness = now.Sub(t.At)
			}
			dueJobs += t.Jobs
		}
	}
	gauge(m.delayedJobs, float64(delayedJobs))
	gauge(m.delayedTS, float64(len(tss)))
	gauge(m.delayedDue, float64(dueJobs))
	gauge(m.delayedLate, max(lateness, 0).Seconds())
	present := 0.0
	if holder != "" {
		present = 1
	}
	gauge(m.master, present)
	gauge(m.queues, float64(len(qs)))
	seen := make(map[string]bool, len(shown))
	for i, q := range shown {
		name := label(q.Name)
		if seen[name] { // two names that differ only in invalid UTF-8
			continue
		}
		seen[name] = true
		gauge(m.queueLen, float64(q.Size), name)
		if lats[i].ok {
			gauge(m.queueLatency, lats[i].age.Seconds(), name)
		}
	}
	gauge(m.workers, float64(st.Workers))
	gauge(m.busy, float64(st.Working))
	gauge(m.failures, float64(st.Failed))
	counter(m.processed, float64(st.Processed))
	counter(m.failed, float64(st.StatFailed))
	type key struct{ outcome, queue, class string }
	sums := map[key]int64{}
	var order []key
	for _, c := range counts {
		if c.Outcome != "processed" && c.Outcome != "failed" {
			continue
		}
		k := key{c.Outcome, label(c.Queue), label(c.Class)}
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		sums[k] += c.Count
	}
	for _, k := range order {
		d := m.jobsProcessed
		if k.outcome == "failed" {
			d = m.jobsFailed
		}
		counter(d, float64(sums[k]), k.queue, k.class)
	}
	return nil
}

// label makes s a valid label value: Prometheus refuses invalid UTF-8, and
// queue names come from Redis.
func label(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
