package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/web"
)

type order struct {
	OrderID int    `json:"order_id"`
	Note    string `json:"note"`
}

// TestEveryPage renders every page with real data: queued jobs, failures
// from a real worker, a worker busy on a job, and audit entries.
func TestEveryPage(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	for i := range 25 {
		if _, err := f.client.Enqueue(bg, "mail", "SendWelcome", order{OrderID: i, Note: "hello"}); err != nil {
			t.Fatal(err)
		}
	}
	f.failJobs(t, "critical", "ChargeCard", 3, order{OrderID: 7, Note: "declined"})

	// A worker busy on a job, so /working and /workers/ID show it.
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	w, err := resq.NewWorker(f.conn, resq.WorkerConfig{Queues: []string{"slow"}, Concurrency: 1,
		PollInterval: 10 * time.Millisecond, Hostname: "busyhost", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("Slow", func(ctx context.Context, job *resq.Job) error {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	stop := testkit.RunWorker(t, w)
	defer stop()
	defer close(release)
	if _, err := f.client.Enqueue(bg, "slow", "Slow", order{OrderID: 99}); err != nil {
		t.Fatal(err)
	}
	<-started
	workerID := w.IDs()[0]

	b := f.browser(t, "")
	b.login(adminName, adminPass)
	// an audit entry, through the dashboard
	r := b.post("/queues/empty-me/clear", url.Values{"csrf": {b.csrf("/queues")}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("clear queue: %d %s", r.StatusCode, r.body)
	}

	pages := []struct {
		path   string
		status int
		want   []string
	}{
		{"/", 200, []string{"Overview", "mail", "25", `data-poll="/overview.poll"`, "<svg", "busyhost:"}},
		{"/overview", 200, []string{"Pending", "Processed", "critical", "Slow", "1 of 1 workers working"}},
		{"/working", 200, []string{"1 of 1 workers working", "Slow", "busyhost:", `{&#34;order_id&#34;:99,&#34;note&#34;:&#34;&#34;}`}},
		{"/queues", 200, []string{"mail", ">25<", "failed", ">3<"}},
		{"/queues/mail", 200, []string{"SendWelcome", "Showing 1 to 20 of 25", "Next →", "Clear queue", "Remove queue", "order_id"}},
		{"/queues/mail?start=20", 200, []string{"Showing 21 to 25 of 25", "← Previous"}},
		{"/queues/nope", 404, []string{"0 pending jobs"}},
		{"/workers", 200, []string{"busyhost:", "Slow", "slow"}},
		{"/workers/" + url.PathEscape(workerID), 200, []string{"Current job", "busyhost", "Slow", "Heartbeat", "Processed"}},
		{"/workers/busyhost", 200, []string{"Workers on busyhost"}},
		{"/workers/all", 200, []string{"Workers"}},
		{"/workers/nobody", 404, []string{"Worker doesn"}},
		{"/failed", 200, []string{"3 failure records", "ChargeCard", "CardDeclined", "card declined for order", "Retry all", "Clear all", "Clear retried", "By queue"}},
		{"/failed?class=ChargeCard", 200, []string{"of class", "3 match"}},
		{"/failed?queue=critical&exception=CardDeclined", 200, []string{"3 match"}},
		{"/failed?class=Nope", 200, []string{"No failures match"}},
		{"/failed/0", 200, []string{"ChargeCard", "CardDeclined", "Backtrace", "Arguments", "critical"}},
		{"/failed/99", 404, []string{"no failure at index 99"}},
		{"/failed/x", 404, nil},
		{"/stats", 200, []string{"Resque.info", "processed", "ChargeCard", "Jobs by queue and class"}},
		{"/stats/resque", 200, []string{"Resque.info"}},
		{"/stats/redis", 200, []string{"redis_version", "Server"}},
		{"/stats/keys", 200, []string{"queue:mail", "failed", "stat:processed"}},
		{"/audit", 200, []string{"queue.clear", "queue/empty-me", adminName, "login"}},
		{"/delayed", 200, []string{"Delayed jobs", "No delayed jobs", "no scheduler is master"}},
		{"/schedule", 200, []string{"Schedule", "no schedule source"}},
		{"/metrics", 200, []string{"resq_queue_length"}},
		{"/logout", 200, []string{"Sign out"}},
		{"/static/app.css", 200, []string{".panel"}},
		{"/static/app.js", 200, []string{"data-poll"}},
		{"/static/", 404, nil},
		{"/no-such-page", 404, nil},
	}
	for _, p := range pages {
		r := b.get(p.path)
		if r.StatusCode != p.status {
			t.Errorf("GET %s: status %d, want %d\n%.500s", p.path, r.StatusCode, p.status, r.body)
			continue
		}
		mustContain(t, p.path, r.body, p.want...)
		if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
			mustNotContain(t, p.path, r.body, " style=", "<script>")
			if r.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("GET %s: Cache-Control %q, want no-store", p.path, r.Header.Get("Cache-Control"))
			}
		}
	}
	// The viewer sees pages but no action buttons.
	v := f.browser(t, "")
	v.login(viewerName, viewerPass)
	r = v.get("/failed")
	if r.StatusCode != 200 {
		t.Fatalf("viewer /failed: %d", r.StatusCode)
	}
	mustNotContain(t, "viewer /failed", r.body, "Retry all", "Clear all", ">Retry<", ">Remove<")
	mustNotContain(t, "viewer /queues/mail", v.get("/queues/mail").body, "Clear queue", "Remove queue")
}

func TestOverviewPoll(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	if _, err := f.client.Enqueue(bg, "q1", "Job", order{OrderID: 1}); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t, "")
	if r := b.get("/overview.poll"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("poll without a session: %d, want 401", r.StatusCode)
	}
	b.login(adminName, adminPass)
	r := b.get("/overview.poll")
	if r.StatusCode != 200 {
		t.Fatalf("poll: %d", r.StatusCode)
	}
	mustContain(t, "poll", r.body, "q1", "Pending", "<svg", "Updated")
	mustNotContain(t, "poll", r.body, "<html", "<nav", "<head")
}

// TestActions performs every state change through the dashboard and checks
// Redis and the audit log.
func TestActions(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	b := f.browser(t, "")
	b.login(adminName, adminPass)
	f.failJobs(t, "critical", "ChargeCard", 4, order{OrderID: 1})

	digestRE := regexp.MustCompile(`action="/failed/requeue/(\d+)">\s*<input type="hidden" name="csrf" value="[^"]+"><input type="hidden" name="digest" value="([0-9a-f]+)">`)
	digests := func() map[string]string {
		out := map[string]string{}
		for _, m := range digestRE.FindAllStringSubmatch(b.get("/failed").body, -1) {
			out[m[1]] = m[2]
		}
		return out
	}
	ds := digests()
	if len(ds) != 4 {
		t.Fatalf("found %d retry forms, want 4: %v", len(ds), ds)
	}
	tok := b.csrf("/failed")

	// Retry one: the job is back on its queue, the record marked retried.
	r := b.post("/failed/requeue/1", url.Values{"csrf": {tok}, "digest": {ds["1"]}, "back": {"/failed/1"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/failed/1" {
		t.Fatalf("retry: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if n, _ := f.admin.QueueSize(bg, "critical"); n != 1 {
		t.Errorf("after retry, critical holds %d jobs, want 1", n)
	}
	fs, _ := f.admin.Failures(bg, 1, 1)
	if len(fs) != 1 || fs[0].RetriedAt == "" {
		t.Errorf("failure 1 not marked retried: %+v", fs)
	}
	mustContain(t, "flash after retry", b.get("/failed/1").body, "was requeued on critical", "Retried")

	// A stale digest (the record at that index changed) is refused.
	r = b.post("/failed/remove/2", url.Values{"csrf": {tok}, "digest": {ds["3"]}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("stale remove: %d", r.StatusCode)
	}
	if n, _ := f.admin.FailureCount(bg); n != 4 {
		t.Errorf("stale digest removed a record: %d left", n)
	}
	mustContain(t, "flash after stale remove", b.get("/failed").body, "the failed list changed")

	// Remove one.
	r = b.post("/failed/remove/2", url.Values{"csrf": {tok}, "digest": {ds["2"]}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("remove: %d", r.StatusCode)
	}
	if n, _ := f.admin.FailureCount(bg); n != 3 {
		t.Errorf("after remove, %d failures, want 3", n)
	}

	// Clear retried removes the one retried record.
	if r = b.post("/failed/clear_retried", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("clear retried: %d", r.StatusCode)
	}
	if n, _ := f.admin.FailureCount(bg); n != 2 {
		t.Errorf("after clear retried, %d failures, want 2", n)
	}

	// Retry all requeues both.
	if r = b.post("/failed/requeue/all", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry all: %d", r.StatusCode)
	}
	if n, _ := f.admin.QueueSize(bg, "critical"); n != 3 {
		t.Errorf("after retry all, critical holds %d jobs, want 3", n)
	}

	// Clear all.
	if r = b.post("/failed/clear", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("clear: %d", r.StatusCode)
	}
	if n, _ := f.admin.FailureCount(bg); n != 0 {
		t.Errorf("after clear, %d failures, want 0", n)
	}

	// Clear a queue, then remove it.
	r = b.post("/queues/critical/clear", url.Values{"csrf": {tok}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/queues/critical" {
		t.Fatalf("clear queue: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if n, _ := f.admin.QueueSize(bg, "critical"); n != 0 {
		t.Errorf("after clear, critical holds %d jobs", n)
	}
	if qs, _ := f.admin.Queues(bg); len(qs) != 1 {
		t.Errorf("clear should keep the queue listed: %v", qs)
	}
	r = b.post("/queues/critical/remove", url.Values{"csrf": {tok}, "back": {"/queues/critical"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/queues" {
		t.Fatalf("remove queue: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if qs, _ := f.admin.Queues(bg); len(qs) != 0 {
		t.Errorf("remove should unlist the queue: %v", qs)
	}

	// Every action is in the audit log, newest first, with user and result.
	es, n, err := f.admin.AuditLog(bg, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		if e.User != adminName {
			t.Errorf("audit entry by %q, want %q: %+v", e.User, adminName, e)
		}
		if e.Time.IsZero() || time.Since(e.Time) > time.Minute {
			t.Errorf("audit entry time %v", e.Time)
		}
		got = append(got, e.Action+" "+e.Target+" "+map[bool]string{true: "ok", false: "refused"}[e.OK])
	}
	want := []string{
		"queue.remove queue/critical ok", "queue.clear queue/critical ok", "failure.clear failed ok",
		"failure.retry_all failed ok", "failure.clear_retried failed ok", "failure.remove failed/2 ok",
		"failure.remove failed/2 refused", "failure.retry failed/1 ok", "login  ok",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || n != int64(len(want)) {
		t.Errorf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	page := b.get("/audit").body
	mustContain(t, "/audit", page, "failure.retry", "failed/1", "queue.remove", "queue/critical", "127.0.0.1", `class="bad">failed</span>`)
}

// TestPrefix mounts the dashboard under /resq with http.StripPrefix.
func TestPrefix(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{Prefix: "/resq"}, false)
	f.failJobs(t, "q", "Boom", 1)
	b := f.browser(t, "/resq")
	r := b.get("/failed")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/resq/login?next=%2Ffailed" {
		t.Fatalf("unauthenticated: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	r = b.post("/login", url.Values{"username": {adminName}, "password": {adminPass}, "next": {"/failed"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/resq/failed" {
		t.Fatalf("login: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == "resq_session" {
			cookie = c
		}
	}
	if cookie == nil || cookie.Path != "/resq/" {
		t.Fatalf("session cookie %+v, want path /resq/", cookie)
	}
	page := b.get("/failed").body
	mustContain(t, "prefixed /failed", page, `href="/resq/static/app.css"`, `src="/resq/static/app.js"`,
		`href="/resq/queues/q"`, `action="/resq/failed/requeue/0"`, `href="/resq/overview"`)
	for _, m := range regexp.MustCompile(`(?:href|src|action)="(/[^"]*)"`).FindAllStringSubmatch(page, -1) {
		if !strings.HasPrefix(m[1], "/resq/") {
			t.Errorf("link outside the prefix: %s", m[1])
		}
	}
	tok := b.csrf("/failed")
	r = b.post("/failed/requeue/0", url.Values{"csrf": {tok}, "digest": {regexp.MustCompile(`name="digest" value="([0-9a-f]+)"`).FindStringSubmatch(page)[1]}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/resq/failed" {
		t.Fatalf("retry: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if n, _ := f.admin.QueueSize(bg, "q"); n != 1 {
		t.Errorf("retry under a prefix did not requeue: %d", n)
	}
	if r := b.get("/static/app.css"); r.StatusCode != 200 {
		t.Errorf("static under prefix: %d", r.StatusCode)
	}
	if _, err := web.New(f.conn, web.Config{Prefix: "resq"}); err == nil {
		t.Error("New accepted a prefix without a leading slash")
	}
}

// TestNamesWithSlashes: queue names and worker ids are path segments.
func TestNamesWithSlashes(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	if _, err := f.client.Enqueue(bg, "a/b c?d#e", "Job", order{OrderID: 1}); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t, "")
	b.login(adminName, adminPass)
	page := b.get("/queues").body
	mustContain(t, "/queues", page, `href="/queues/a%2Fb%20c%3Fd%23e"`)
	r := b.get("/queues/a%2Fb%20c%3Fd%23e")
	if r.StatusCode != 200 {
		t.Fatalf("queue with a slash: %d", r.StatusCode)
	}
	mustContain(t, "queue page", r.body, "a/b c?d#e", "Showing 1 to 1 of 1")
	r = b.post("/queues/a%2Fb%20c%3Fd%23e/clear", url.Values{"csrf": {b.csrf("/queues")}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("clear: %d", r.StatusCode)
	}
	if n, _ := f.admin.QueueSize(bg, "a/b c?d#e"); n != 0 {
		t.Errorf("queue not cleared: %d", n)
	}
}

// TestRedisDown shows an error page, not a crash.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	conn, err := resq.Open(resq.ConnConfig{URL: "redis://127.0.0.1:1/0", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h, err := web.New(conn, web.Config{Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	req := newReq("GET", "/overview", "")
	rec := serve(h, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "cannot read Redis") {
		t.Errorf("Redis down: %d %s", rec.Code, rec.Body.String())
	}
}
