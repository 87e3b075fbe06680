package web_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/web"
)

// scrape fetches m's Handler and parses the text format.
func scrape(t *testing.T, m *web.Metrics) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("scrape: %d %s", rec.Code, rec.Body.String())
	}
	body, _ := io.ReadAll(rec.Body)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse metrics: %v\n%s", err, body)
	}
	return fams, string(body)
}

// value returns the value of the series of family name with labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range fam.Metric {
		if len(m.Label) != len(want) {
			continue
		}
		for _, l := range m.Label {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	m := web.NewMetrics(f.conn)

	// Jobs run by a real worker that feeds the duration histogram.
	w, err := resq.NewWorker(f.conn, resq.WorkerConfig{Queues: []string{"mail", "critical"}, Concurrency: 2,
		PollInterval: 10 * time.Millisecond, Hostname: "mhost", Logger: testkit.Logger(t), OnJobDoneFunc: m.ObserveJob})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("Send", func(ctx context.Context, job *resq.Job) error { return nil })
	w.HandleFunc("Charge", func(ctx context.Context, job *resq.Job) error { return resq.Fail("Declined", "no") })
	for range 3 {
		f.client.Enqueue(bg, "mail", "Send", order{})
	}
	for range 2 {
		f.client.Enqueue(bg, "critical", "Charge", order{})
	}
	f.client.Enqueue(bg, "critical", "Unregistered<script>", order{})
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "6 jobs done", func() bool {
		st, _ := f.admin.Stats(bg)
		return st.Processed == 6
	})
	stop()

	// Waiting jobs: two in "backlog", the head enqueued 90 s ago; one job
	// from a Ruby producer (no enqueued_at) in "ruby"; an empty queue.
	old := testkit.Client(t, f.conn, resq.ClientConfig{NowFunc: func() time.Time { return time.Now().Add(-90 * time.Second) }})
	old.Enqueue(bg, "backlog", "Send", order{})
	f.client.Enqueue(bg, "backlog", "Send", order{})
	f.srv.Do(t, "SADD", f.key("queues"), "ruby", "empty")
	f.srv.Do(t, "RPUSH", f.key("queue:ruby"), `{"class":"Send","args":[]}`)

	fams, body := scrape(t, m)
	check := func(name string, want float64, labels ...string) {
		t.Helper()
		got, ok := value(t, fams, name, labels...)
		if !ok {
			t.Errorf("no series %s%v in:\n%s", name, labels, body)
			return
		}
		if got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	check("resq_up", 1)
	check("resq_queue_length", 2, "queue", "backlog")
	check("resq_queue_length", 0, "queue", "mail")
	check("resq_queue_length", 1, "queue", "ruby")
	check("resq_queue_length", 0, "queue", "empty")
	check("resq_queue_latency_seconds", 0, "queue", "mail")
	if lat, ok := value(t, fams, "resq_queue_latency_seconds", "queue", "backlog"); !ok || lat < 89 || lat > 120 {
		t.Errorf("backlog latency %v (present %v), want about 90 s", lat, ok)
	}
	if _, ok := value(t, fams, "resq_queue_latency_seconds", "queue", "ruby"); ok {
		t.Error("a queue whose head job has no enqueued_at has a latency series")
	}
	check("resq_queues", 5)
	check("resq_workers", 0)
	check("resq_workers_busy", 0)
	check("resq_failures", 3)
	check("resq_processed_total", 6)
	check("resq_failed_total", 3)
	check("resq_jobs_processed_total", 3, "queue", "mail", "class", "Send")
	check("resq_jobs_processed_total", 2, "queue", "critical", "class", "Charge")
	check("resq_jobs_failed_total", 2, "queue", "critical", "class", "Charge")
	check("resq_jobs_failed_total", 1, "queue", "critical", "class", resq.ClassUnknown)
	check("resq_job_duration_seconds", 3, "queue", "mail", "class", "Send")
	check("resq_job_duration_seconds", 2, "queue", "critical", "class", "Charge")
	if strings.Contains(body, "Unregistered") {
		t.Error("a hostile class name became a label")
	}
	for name, typ := range map[string]dto.MetricType{
		"resq_processed_total": dto.MetricType_COUNTER, "resq_jobs_failed_total": dto.MetricType_COUNTER,
		"resq_queue_length": dto.MetricType_GAUGE, "resq_job_duration_seconds": dto.MetricType_HISTOGRAM,
	} {
		if fams[name].GetType() != typ {
			t.Errorf("%s is %v, want %v", name, fams[name].GetType(), typ)
		}
	}

	// Busy workers: a registered worker running a job.
	release := make(chan struct{})
	started := make(chan struct{})
	w2, _ := resq.NewWorker(f.conn, resq.WorkerConfig{Queues: []string{"slow"}, Concurrency: 3,
		PollInterval: 10 * time.Millisecond, Hostname: "mhost2", Logger: testkit.Logger(t)})
	w2.HandleFunc("Slow", func(ctx context.Context, job *resq.Job) error {
		close(started)
		<-release
		return nil
	})
	f.client.Enqueue(bg, "slow", "Slow", order{})
	stop2 := testkit.RunWorker(t, w2)
	<-started
	fams, body = scrape(t, m)
	check("resq_workers", 3)
	check("resq_workers_busy", 1)
	close(release)
	stop2()

	// The dashboard serves the same metrics at /metrics.
	h, err := web.New(f.conn, web.Config{Metrics: m, Users: testUsers(t), Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	req := newReq("GET", "/metrics", "")
	req.SetBasicAuth(adminName, adminPass)
	rec := serve(h, req)
	if !strings.Contains(rec.Body.String(), `resq_jobs_processed_total{class="Send",queue="mail"} 3`) {
		t.Errorf("dashboard /metrics:\n%s", rec.Body.String())
	}
}

func TestMetricsRedisDown(t *testing.T) {
	t.Parallel()
	conn, err := resq.Open(resq.ConnConfig{URL: "redis://127.0.0.1:1/0", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m := web.NewMetrics(conn)
	m.SetLogger(testkit.Logger(t))
	fams, body := scrape(t, m)
	if v, ok := value(t, fams, "resq_up"); !ok || v != 0 {
		t.Errorf("resq_up with Redis down: %v %v\n%s", v, ok, body)
	}
	if _, ok := fams["resq_queue_length"]; ok {
		t.Error("queue series exported without Redis")
	}
}

// TestMetricsHostileQueueNames: label values must be valid UTF-8 and
// bounded in number.
func TestMetricsHostileQueueNames(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	names := []any{"bad\xff", "bad\xfe"}
	for i := range web.MaxQueueSeries + 20 {
		names = append(names, "q"+strconv.Itoa(i))
	}
	args := []string{"SADD", f.key("queues")}
	for _, n := range names {
		args = append(args, n.(string))
	}
	f.srv.Do(t, args...)
	m := web.NewMetrics(f.conn)
	fams, _ := scrape(t, m)
	if v, _ := value(t, fams, "resq_queues"); int(v) != len(names) {
		t.Errorf("resq_queues = %v, want %d", v, len(names))
	}
	if n := len(fams["resq_queue_length"].GetMetric()); n > web.MaxQueueSeries {
		t.Errorf("%d queue series, cap %d", n, web.MaxQueueSeries)
	}
}
