package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/internal/wire"
	"github.com/resq-go/resq/web"
)

// delayedDigests maps each job's class to the digest of its per-job forms
// on a page.
var delayedFormRE = regexp.MustCompile(`name="timestamp" value="(\d+)"><input type="hidden" name="digest" value="([0-9a-f]+)">`)

func delayedForms(body string) [][2]string {
	var out [][2]string
	for _, m := range delayedFormRE.FindAllStringSubmatch(body, -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	return out
}

// pushRuby stores a delayed item as Ruby's delayed_push does.
func (f *fixture) pushRuby(t *testing.T, ts int64, item string) {
	t.Helper()
	keys := wire.NewKeys(f.ns)
	f.srv.Do(t, "RPUSH", keys.Delayed(ts), item)
	f.srv.Do(t, "SADD", keys.Timestamps([]byte(item)), wire.DelayedMember(ts))
	f.srv.Do(t, "ZADD", keys.DelayedSchedule(), strconv.FormatInt(ts, 10), strconv.FormatInt(ts, 10))
}

func auditLines(t *testing.T, a *resq.Admin) []string {
	t.Helper()
	es, _, err := a.AuditLog(bg, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.User+" "+e.Action+" "+e.Target+" "+map[bool]string{true: "ok", false: "refused"}[e.OK])
	}
	return got
}

// TestDelayedTab: the Delayed tab lists due times and jobs with args
// redacted, searches, and lets an admin (only) enqueue now and remove, with
// CSRF and an audit entry for each action.
func TestDelayedTab(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	const plainSecret, encSecret = "pw-SECRET-delayed-1", "SECRET-delayed-enc-2"
	kf, err := resq.NewKeyringFile(resq.KeyHMAC)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := resq.ParseKeyring(kf)
	if err != nil {
		t.Fatal(err)
	}
	enc := testkit.Client(t, f.conn, resq.ClientConfig{Keyring: kr, EncryptAll: true})
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	later := at.Add(time.Minute)
	if _, err := f.client.EnqueueAt(bg, at, "auth", "Login", login{User: "bob", Password: plainSecret}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.EnqueueAt(bg, at, "mail", "SendFollowUp", order{OrderID: 7, Note: "thanks"}); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.EnqueueAt(bg, later, "vault", "Store", note{Text: encSecret}); err != nil {
		t.Fatal(err)
	}
	ts, lts := strconv.FormatInt(at.Unix(), 10), strconv.FormatInt(later.Unix(), 10)

	b := f.browser(t, "")
	b.login(adminName, adminPass)
	v := f.browser(t, "")
	v.login(viewerName, viewerPass)

	var all strings.Builder
	for _, c := range []struct {
		path   string
		status int
		want   []string
	}{
		{"/delayed", 200, []string{"Delayed jobs", ">3<", ">2<", "no scheduler is master", `href="/delayed/` + ts + `"`, "Store", "encrypted", "Clear all delayed jobs", "Enqueue now"}},
		{"/delayed/" + ts, 200, []string{"Login", "SendFollowUp", resq.Redacted, "order_id", "2 jobs due in", "Enqueue all now", "Remove all"}},
		{"/delayed/" + lts, 200, []string{"Store", "encrypted", "vault"}},
		{"/delayed/12345", 404, []string{"0 jobs"}},
		{"/delayed/nope", 404, []string{"not a timestamp"}},
		{"/delayed/search?class=Login", 200, []string{"1 delayed job matches", "Login", resq.Redacted, "Remove all matching"}},
		{"/delayed/jobs/SendFollowUp?args=" + url.QueryEscape(`[{"order_id":7,"note":"thanks"}]`), 200, []string{"1 delayed job matches", "SendFollowUp"}},
		{"/delayed/jobs/SendFollowUp?args=" + url.QueryEscape(`[{"order_id":8,"note":"thanks"}]`), 200, []string{"0 delayed jobs match"}},
		{"/delayed/search?args=" + url.QueryEscape(`[oops`), 400, []string{"args must be JSON"}},
		{"/delayed/search", 200, []string{"Give a class"}},
		{"/schedule", 200, []string{"no schedule source"}},
	} {
		r := b.get(c.path)
		if r.StatusCode != c.status {
			t.Errorf("GET %s: %d, want %d\n%.800s", c.path, r.StatusCode, c.status, r.body)
			continue
		}
		mustContain(t, c.path, r.body, c.want...)
		mustNotContain(t, c.path, r.body, " style=", "<script>")
		all.WriteString(r.body)
		all.WriteString(v.get(c.path).body)
	}
	for _, s := range []string{plainSecret, encSecret} {
		if strings.Contains(all.String(), s) {
			t.Errorf("a delayed page shows the secret %q", s)
		}
	}

	// The viewer sees no buttons and may not act.
	vp := v.get("/delayed/" + ts).body
	mustNotContain(t, "viewer /delayed/TS", vp, "Enqueue now", ">Remove<", "Remove all")
	mustNotContain(t, "viewer /delayed", v.get("/delayed").body, "Clear all delayed jobs", "Enqueue now")
	forms := delayedForms(b.get("/delayed/" + ts).body)
	if len(forms) != 4 { // enqueue now + remove, for each of the 2 jobs
		t.Fatalf("found %d per-job forms on /delayed/%s, want 4", len(forms), ts)
	}
	vtok := v.csrf("/delayed")
	for _, path := range []string{"/delayed/queue_now", "/delayed/remove", "/delayed/clear", "/delayed/search/remove"} {
		r := v.post(path, url.Values{"csrf": {vtok}, "timestamp": {ts}, "digest": {forms[0][1]}, "class": {"Login"}})
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", path, r.StatusCode)
		}
	}
	// No CSRF token, or a foreign origin: refused.
	if r := b.post("/delayed/clear", url.Values{}); r.StatusCode != http.StatusForbidden {
		t.Errorf("clear without a CSRF token: %d, want 403", r.StatusCode)
	}
	tok := b.csrf("/delayed")
	if r := b.post("/delayed/clear", url.Values{"csrf": {tok}}, "Origin", "https://evil.example"); r.StatusCode != http.StatusForbidden {
		t.Errorf("clear from a foreign origin: %d, want 403", r.StatusCode)
	}
	if st, _ := f.admin.DelayedCount(bg); st.Jobs != 3 {
		t.Fatalf("refused requests changed the delayed queue: %+v", st)
	}

	// Enqueue one job now: which one is the first form's.
	vs, _ := f.admin.Delayed(bg, resq.DelayedFilter{From: at, To: at}, 0, -1)
	first := vs[0]
	r := b.post("/delayed/queue_now", url.Values{"csrf": {tok}, "timestamp": {forms[0][0]}, "digest": {forms[0][1]}, "back": {"/delayed/" + ts}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/delayed/"+ts {
		t.Fatalf("enqueue now: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if n, _ := f.admin.QueueSize(bg, first.Queue); n != 1 {
		t.Errorf("after enqueue now, queue %s holds %d jobs, want 1", first.Queue, n)
	}
	page := b.get("/delayed/" + ts).body
	mustContain(t, "flash after enqueue now", page, "Enqueued "+first.Job.Class+" on "+first.Queue+" now.", "1 job due")
	// The same form again: that job is gone, nothing happens.
	r = b.post("/delayed/queue_now", url.Values{"csrf": {tok}, "timestamp": {forms[0][0]}, "digest": {forms[0][1]}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("stale enqueue now: %d", r.StatusCode)
	}
	mustContain(t, "flash after a stale enqueue now", b.get("/delayed").body, "no longer due")
	if n, _ := f.admin.QueueSize(bg, first.Queue); n != 1 {
		t.Errorf("a stale enqueue now pushed again: %d", n)
	}
	// A form that names neither a job nor all jobs does nothing.
	b.post("/delayed/remove", url.Values{"csrf": {tok}, "timestamp": {ts}})
	if st, _ := f.admin.DelayedCount(bg); st.Jobs != 2 {
		t.Fatalf("a remove without digest or all changed the queue: %+v", st)
	}

	// Remove the other job at ts by its digest; the timestamp is gone, so
	// the redirect goes to /delayed.
	forms = delayedForms(b.get("/delayed/" + ts).body)
	if len(forms) != 2 {
		t.Fatalf("%d forms left, want 2", len(forms))
	}
	r = b.post("/delayed/remove", url.Values{"csrf": {tok}, "timestamp": {forms[1][0]}, "digest": {forms[1][1]}, "back": {"/delayed/" + ts}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/delayed" {
		t.Fatalf("remove: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if st, _ := f.admin.DelayedCount(bg); st.Jobs != 1 || st.Timestamps != 1 {
		t.Errorf("after remove: %+v, want 1 job at 1 time", st)
	}

	// Search and remove all matching (the encrypted Store job, by class).
	r = b.post("/delayed/search/remove", url.Values{"csrf": {tok}, "class": {"Store"}})
	if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/delayed/search?") {
		t.Fatalf("search remove: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	if st, _ := f.admin.DelayedCount(bg); st.Jobs != 0 {
		t.Errorf("after search remove: %+v", st)
	}

	// Ruby's items (no id, no queue for a class without one): enqueue all at
	// a time, and clear.
	past := time.Now().Add(-time.Minute).Unix()
	f.pushRuby(t, past, `{"class":"Ping","args":[1],"queue":"ruby"}`)
	f.pushRuby(t, past, `{"class":"Ping","args":[2],"queue":"ruby"}`)
	f.pushRuby(t, past+86400*365, `{"class":"Later","args":[],"queue":"ruby"}`)
	mustContain(t, "/delayed with a due backlog", b.get("/delayed").body, "Due, not moved", ">2<", `class="due"`)
	r = b.post("/delayed/queue_now", url.Values{"csrf": {tok}, "timestamp": {strconv.FormatInt(past, 10)}, "all": {"1"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("enqueue all now: %d", r.StatusCode)
	}
	if n, _ := f.admin.QueueSize(bg, "ruby"); n != 2 {
		t.Errorf("after enqueue all now, ruby holds %d, want 2", n)
	}
	if r = b.post("/delayed/clear", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("clear: %d", r.StatusCode)
	}
	if st, _ := f.admin.DelayedCount(bg); st.Jobs != 0 {
		t.Errorf("after clear: %+v", st)
	}

	want := []string{
		"alice delayed.clear delayed ok",
		"alice delayed.enqueue_now delayed/" + strconv.FormatInt(past, 10) + " ok",
		"alice delayed.remove delayed/search ok",
		"alice delayed.remove delayed/" + ts + " ok",
		"alice delayed.remove delayed/" + ts + " refused",
		"alice delayed.enqueue_now delayed/" + ts + " refused",
		"alice delayed.enqueue_now delayed/" + ts + " ok",
	}
	got := auditLines(t, f.admin)
	if len(got) < len(want) || strings.Join(got[:len(want)], "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n%s\nwant first:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	es, _, _ := f.admin.AuditLog(bg, 0, 100)
	for _, e := range es {
		if strings.Contains(e.Detail, plainSecret) || strings.Contains(e.Detail, "thanks") {
			t.Errorf("an audit entry carries argument values: %+v", e)
		}
	}
}

// TestAuditRefusedSaysSo: when Redis refuses the audit entry (a dashboard
// Redis user that may change jobs but not the audit log), the action is
// done and the page says, as an error, that the audit log lacks it.
func TestAuditRefusedSaysSo(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	user := "noaudit" + f.ns
	ns := f.ns
	f.srv.Do(t, "ACL", "SETUSER", user, "on", ">pw", "&*", "+@all", "%R~*",
		"%W~"+ns+":delayed*", "%W~"+ns+":timestamps:*", "%W~"+ns+":queue*")
	t.Cleanup(func() { _, _ = f.srv.Try("ACL", "DELUSER", user) })
	u, _ := url.Parse(f.srv.URL())
	u.User = url.UserPassword(user, "pw")
	conn, err := resq.Open(resq.ConnConfig{URL: u.String(), Namespace: ns, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h, err := web.New(conn, web.Config{Users: testUsers(t), Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	f2 := *f
	f2.ts = ts
	f = &f2

	at := time.Now().Add(time.Hour)
	if _, err := f.client.EnqueueAt(bg, at, "mail", "SendFollowUp", order{OrderID: 1}); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t, "")
	b.login(adminName, adminPass)
	page := b.get("/delayed/" + strconv.FormatInt(at.Unix(), 10)).body
	forms := delayedForms(page)
	if len(forms) == 0 {
		t.Fatalf("no per-job forms:\n%s", page)
	}
	r := b.post("/delayed/queue_now", url.Values{"csrf": {b.csrf("/delayed")}, "timestamp": {forms[0][0]}, "digest": {forms[0][1]}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("enqueue now: %d %s", r.StatusCode, r.body)
	}
	if n, _ := f.admin.QueueSize(bg, "mail"); n != 1 {
		t.Fatalf("the action itself failed: mail holds %d", n)
	}
	after := b.get("/delayed").body
	mustContain(t, "flash", after, `class="flash err"`, "Enqueued SendFollowUp on mail now.", "The audit log could not record this action")
	if _, n, _ := f.admin.AuditLog(bg, 0, 10); n != 0 {
		t.Errorf("audit log has %d entries; the ACL should have refused them", n)
	}
}

// TestDelayedMetrics checks the delayed and scheduler series against a real
// Redis holding due and future delayed jobs.
func TestDelayedMetrics(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	m := web.NewMetrics(f.conn)
	fams, _ := scrape(t, m)
	for name, want := range map[string]float64{"resq_delayed_jobs": 0, "resq_delayed_timestamps": 0,
		"resq_delayed_due_jobs": 0, "resq_delayed_oldest_due_seconds": 0, "resq_scheduler_master_present": 0} {
		if got, ok := value(t, fams, name); !ok || got != want {
			t.Errorf("empty: %s = %v (present %v), want %v", name, got, ok, want)
		}
	}

	now := time.Now().Unix()
	f.pushRuby(t, now-120, `{"class":"A","args":[1],"queue":"q"}`)
	f.pushRuby(t, now-120, `{"class":"A","args":[2],"queue":"q"}`)
	f.pushRuby(t, now-30, `{"class":"B","args":[],"queue":"q"}`)
	if _, err := f.client.EnqueueIn(bg, time.Hour, "q", "C", 1); err != nil {
		t.Fatal(err)
	}
	// An empty schedule entry (Ruby's remove_delayed leaves them) is no job.
	f.srv.Do(t, "ZADD", wire.NewKeys(f.ns).DelayedSchedule(), strconv.FormatInt(now-600, 10), strconv.FormatInt(now-600, 10))
	f.srv.Do(t, "SET", wire.NewKeys(f.ns).SchedulerMasterLock(""), "sched1.example.com:777", "EX", "60")

	fams, body := scrape(t, m)
	for name, want := range map[string]float64{"resq_delayed_jobs": 4, "resq_delayed_timestamps": 4,
		"resq_delayed_due_jobs": 3, "resq_scheduler_master_present": 1} {
		if got, ok := value(t, fams, name); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	late, ok := value(t, fams, "resq_delayed_oldest_due_seconds")
	elapsed := float64(time.Now().Unix() - now)
	if !ok || late < 120 || late > 121+elapsed {
		t.Errorf("resq_delayed_oldest_due_seconds = %v, want 120..%v", late, 121+elapsed)
	}
	if strings.Contains(body, "sched1.example.com") {
		t.Error("the master's name is a label value; labels must stay bounded")
	}

	// Retries: the worker reports a failed run whose retry it wrote as
	// outcome "retried" (resq.OutcomeRetried); resq.Worker calls ObserveJob
	// from OnJobDoneFunc.
	for _, o := range []string{"retried", "retried", "done", "skipped"} {
		m.ObserveJob(resq.JobEvent{Outcome: o, Queue: "q", Class: "Flaky", Duration: time.Millisecond})
	}
	fams, _ = scrape(t, m)
	if got, ok := value(t, fams, "resq_jobs_retried_total", "queue", "q", "class", "Flaky"); !ok || got != 2 {
		t.Errorf("resq_jobs_retried_total = %v (present %v), want 2", got, ok)
	}
	if got, _ := value(t, fams, "resq_job_duration_seconds", "queue", "q", "class", "Flaky"); got != 3 {
		t.Errorf("resq_job_duration_seconds count = %v, want 3 (two retried runs and one done)", got)
	}

	// Another lock prefix: that master is absent.
	m2 := web.NewMetrics(f.conn)
	m2.SetSchedulerLockPrefix("OtherApp")
	fams, _ = scrape(t, m2)
	if got, _ := value(t, fams, "resq_scheduler_master_present"); got != 0 {
		t.Errorf("master with prefix OtherApp = %v, want 0", got)
	}

	// The dashboard shows the same master.
	b := f.browser(t, "")
	b.login(viewerName, viewerPass)
	mustContain(t, "/delayed", b.get("/delayed").body, "scheduler master", "sched1.example.com:777")
}

// fakeSchedules is an in-memory web.Schedules for the Schedule tab's tests
// (the recurring-schedule library is tested on its own against Redis).
type fakeSchedules struct {
	mu       sync.Mutex
	entries  []web.ScheduleEntry
	enqueued []string
	removed  []string
}

func (s *fakeSchedules) Schedules(ctx context.Context) ([]web.ScheduleEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]web.ScheduleEntry(nil), s.entries...), nil
}

func (s *fakeSchedules) EnqueueScheduleNow(ctx context.Context, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.Name == name {
			s.enqueued = append(s.enqueued, name)
			return e.Queue, nil
		}
	}
	return "", fmt.Errorf("no schedule %q", name)
}

func (s *fakeSchedules) RemoveSchedule(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, e := range s.entries {
		if e.Name == name {
			if !e.Removable {
				return errors.New("schedule " + name + " comes from a file")
			}
			s.entries = append(s.entries[:i], s.entries[i+1:]...)
			s.removed = append(s.removed, name)
			return nil
		}
	}
	return fmt.Errorf("no schedule %q", name)
}

// TestScheduleTab: every entry with interval, next and last run, args
// through the redactor; enqueue now and delete for admins only.
func TestScheduleTab(t *testing.T) {
	t.Parallel()
	next := time.Now().Add(10 * time.Minute).Truncate(time.Second)
	last := time.Now().Add(-50 * time.Minute).Truncate(time.Second)
	src := &fakeSchedules{entries: []web.ScheduleEntry{
		{Name: "nightly_report", Class: "Report", Queue: "low", Cron: "0 3 * * * Europe/Berlin", Description: "the night's numbers",
			Source: "static", NextRun: next, LastRun: last, Args: []byte(`[{"password":"SECRET-sched-1","day":"yesterday"}]`)},
		{Name: "clear_cache", Class: "ClearCache", Queue: "low", Every: "1h", Source: "persistent", Removable: true, NextRun: next},
		{Name: "manual", Class: "Manual", Queue: "ops", Source: "static", Envs: []string{"staging"}, ArgsSize: 12},
		{Name: "broken", Source: "persistent", Removable: true, Problem: "cron: 7 fields"},
	}}
	f := setup(t, web.Config{Schedules: src}, false)
	b := f.browser(t, "")
	b.login(adminName, adminPass)
	page := b.get("/schedule").body
	mustContain(t, "/schedule", page, "nightly_report", "cron: 0 3 * * * Europe/Berlin", "every: 1h", "never (enqueue by hand)",
		"the night&#39;s numbers", resq.Redacted, "yesterday", when(next), when(last), "Never", "only in staging", "12 bytes (not shown)", "cron: 7 fields",
		`name="job_name" value="clear_cache"`, "Delete", "Enqueue now", "no scheduler is master")
	mustNotContain(t, "/schedule", page, "SECRET-sched-1", " style=", "<script>")
	if strings.Index(page, "clear_cache") > strings.Index(page, "nightly_report") {
		t.Error("schedules are not sorted by name")
	}
	if n := strings.Count(page, ">Delete<"); n != 2 {
		t.Errorf("%d Delete buttons, want 2 (only the persistent schedules)", n)
	}

	v := f.browser(t, "")
	v.login(viewerName, viewerPass)
	vp := v.get("/schedule").body
	mustContain(t, "viewer /schedule", vp, "nightly_report")
	mustNotContain(t, "viewer /schedule", vp, "Enqueue now", ">Delete<")
	if r := v.post("/schedule/requeue", url.Values{"csrf": {v.csrf("/schedule")}, "job_name": {"nightly_report"}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("viewer requeue: %d, want 403", r.StatusCode)
	}
	tok := b.csrf("/schedule")
	if r := b.post("/schedule/requeue", url.Values{"job_name": {"nightly_report"}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("requeue without CSRF: %d, want 403", r.StatusCode)
	}
	if len(src.enqueued) != 0 {
		t.Fatalf("refused requests enqueued %v", src.enqueued)
	}
	r := b.post("/schedule/requeue", url.Values{"csrf": {tok}, "job_name": {"nightly_report"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/schedule" {
		t.Fatalf("requeue: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	mustContain(t, "flash", b.get("/schedule").body, "Enqueued schedule nightly_report on low now.")
	b.post("/schedule/remove", url.Values{"csrf": {tok}, "job_name": {"nightly_report"}})
	mustContain(t, "flash", b.get("/schedule").body, "comes from a file")
	b.post("/schedule/remove", url.Values{"csrf": {tok}, "job_name": {"clear_cache"}})
	if strings.Join(src.enqueued, ",") != "nightly_report" || strings.Join(src.removed, ",") != "clear_cache" {
		t.Errorf("enqueued %v, removed %v", src.enqueued, src.removed)
	}
	want := []string{"alice schedule.remove schedule/clear_cache ok", "alice schedule.remove schedule/nightly_report refused",
		"alice schedule.enqueue_now schedule/nightly_report ok"}
	if got := auditLines(t, f.admin); len(got) < 3 || strings.Join(got[:3], "\n") != strings.Join(want, "\n") {
		t.Errorf("audit:\n%s\nwant first:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// TestDelayedPrefix: under a path prefix every link and form of the
// Delayed tab stays inside it, and actions redirect inside it.
func TestDelayedPrefix(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{Prefix: "/resq"}, false)
	at := time.Now().Add(time.Hour)
	if _, err := f.client.EnqueueAt(bg, at, "a/b", "Job", order{OrderID: 1}); err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(at.Unix(), 10)
	b := f.browser(t, "/resq")
	b.login(adminName, adminPass)
	for _, p := range []string{"/delayed", "/delayed/" + ts, "/delayed/search?class=Job", "/delayed/jobs/Job", "/schedule"} {
		r := b.get(p)
		if r.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, r.StatusCode)
			continue
		}
		for _, m := range regexp.MustCompile(`(?:href|src|action)="(/[^"]*)"`).FindAllStringSubmatch(r.body, -1) {
			if !strings.HasPrefix(m[1], "/resq/") {
				t.Errorf("%s: link outside the prefix: %s", p, m[1])
			}
		}
	}
	mustContain(t, "/delayed/TS", b.get("/delayed/"+ts).body, `href="/resq/queues/a%2Fb"`, `action="/resq/delayed/queue_now"`)
	forms := delayedForms(b.get("/delayed/" + ts).body)
	if len(forms) == 0 {
		t.Fatal("no per-job forms")
	}
	r := b.post("/delayed/queue_now", url.Values{"csrf": {b.csrf("/delayed")}, "timestamp": {forms[0][0]}, "digest": {forms[0][1]}, "back": {"/delayed/" + ts}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/resq/delayed" {
		t.Fatalf("enqueue now: %d → %q (the time is empty now, so back to /delayed)", r.StatusCode, r.Header.Get("Location"))
	}
	if n, _ := f.admin.QueueSize(bg, "a/b"); n != 1 {
		t.Errorf("queue a/b holds %d", n)
	}
}
