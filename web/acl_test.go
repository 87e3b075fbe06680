package web_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/web"
)

// aclDashboard serves the dashboard on a Redis user made from role's
// generated rules, with the Schedule tab over resq's Admin. It returns the
// fixture (its srv, admin and client are the unrestricted ones) and the
// user name.
func aclDashboard(t *testing.T, role resq.ACLRole, scripting bool) (*fixture, string) {
	t.Helper()
	f := setup(t, web.Config{}, false)
	rules, err := resq.ACLRules(role, f.ns, scripting)
	if err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("dash-%s-%s-%v", role, f.ns, scripting)
	f.srv.Do(t, append([]string{"ACL", "SETUSER", user, "on", ">pw"}, rules...)...)
	t.Cleanup(func() { f.srv.Try("ACL", "DELUSER", user) })
	conn, err := resq.Open(resq.ConnConfig{URL: fmt.Sprintf("redis://%s:pw@%s/%d", user, f.srv.Addr(), f.srv.DB()), Namespace: f.ns, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	static, err := resq.ParseSchedule([]byte("nightly:\n  cron: \"0 3 * * *\"\n  class: Report\n  queue: low\n"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := web.New(conn, web.Config{Users: testUsers(t), Logger: testkit.Logger(t),
		Schedules: web.AdminSchedules(resq.NewAdmin(conn), static)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	f.ts = ts
	return f, user
}

// seedDelayed stores delayed jobs and a persistent schedule, and names a
// scheduler master.
func seedDelayed(t *testing.T, f *fixture) time.Time {
	t.Helper()
	at := time.Now().Add(time.Hour).Truncate(time.Second)
	for i := 0; i < 3; i++ {
		if _, err := f.client.EnqueueAt(bg, at, "mail", "SendFollowUp", i); err != nil {
			t.Fatal(err)
		}
	}
	f.pushRuby(t, at.Add(time.Minute).Unix(), `{"class":"Ping","args":[1],"queue":"ruby"}`)
	f.pushRuby(t, at.Add(2*time.Minute).Unix(), `{"class":"Pong","args":[1],"queue":"ruby"}`)
	if err := f.admin.SetSchedule(bg, "hourly", resq.ScheduleConfig{Class: "Hourly", Queue: "hq", Every: "1h"}); err != nil {
		t.Fatal(err)
	}
	if err := f.admin.SetSchedule(bg, "gone", resq.ScheduleConfig{Class: "Gone", Queue: "gq", Every: "1h"}); err != nil {
		t.Fatal(err)
	}
	f.srv.Do(t, "SET", f.key(f.ns+":resque_scheduler_master_lock"), "host:1")
	return at
}

// The dashboard's Delayed and Schedule tabs and /metrics under the viewer
// and admin users, with and without scripting: every page renders and every
// admin action works with no denial; a viewer's user cannot act even if the
// dashboard let it (the Admin calls are refused by Redis).
func TestDashboardACLDelayedSchedule(t *testing.T) {
	t.Parallel()
	for _, scripting := range []bool{true, false} {
		scripting := scripting
		t.Run(fmt.Sprintf("scripting=%v", scripting), func(t *testing.T) {
			t.Parallel()
			t.Run("viewer", func(t *testing.T) {
				t.Parallel()
				f, user := aclDashboard(t, resq.ACLViewer, scripting)
				at := seedDelayed(t, f)
				ts := strconv.FormatInt(at.Unix(), 10)
				b := f.browser(t, "")
				b.login(viewerName, viewerPass) // its audit entry is refused, and said so
				for _, c := range []struct{ path, want string }{
					{"/delayed", "host:1"},
					{"/delayed/" + ts, "SendFollowUp"},
					{"/delayed/search?class=Ping", "1 delayed job matches"},
					{"/delayed/jobs/SendFollowUp?args=" + url.QueryEscape(`[1]`), "1 delayed job matches"},
					{"/schedule", "hourly"},
					{"/overview", "Overview"},
				} {
					r := b.get(c.path)
					if r.StatusCode != 200 {
						t.Errorf("GET %s: %d\n%.600s", c.path, r.StatusCode, r.body)
						continue
					}
					mustContain(t, c.path, r.body, c.want)
				}
				r := b.get("/metrics")
				if r.StatusCode != 200 || !strings.Contains(r.body, "resq_delayed_jobs") {
					t.Errorf("GET /metrics: %d\n%.600s", r.StatusCode, r.body)
				}
				// The only denials are the audit writes, which every page
				// reports.
				// (MULTI LPUSH LTRIM EXEC on resq:audit).
				for _, d := range f.srv.ACLDenials(t, user, !scripting) {
					switch strings.Fields(d)[1] {
					case "multi", "lpush", "ltrim", "exec":
					default:
						t.Errorf("viewer denied: %s", d)
					}
				}
				mustContain(t, "/overview", b.get("/overview").body, "The audit log cannot be written")
			})
			t.Run("admin", func(t *testing.T) {
				t.Parallel()
				f, user := aclDashboard(t, resq.ACLAdmin, scripting)
				at := seedDelayed(t, f)
				ts := strconv.FormatInt(at.Unix(), 10)
				b := f.browser(t, "")
				b.login(adminName, adminPass)
				for _, p := range []string{"/delayed", "/delayed/" + ts, "/delayed/search?class=Ping", "/schedule"} {
					if r := b.get(p); r.StatusCode != 200 {
						t.Errorf("GET %s: %d\n%.600s", p, r.StatusCode, r.body)
					}
				}
				if r := b.get("/metrics"); r.StatusCode != 200 {
					t.Errorf("GET /metrics: %d", r.StatusCode)
				}
				tok := b.csrf("/delayed")
				forms := delayedForms(b.get("/delayed/" + ts).body)
				if len(forms) != 6 {
					t.Fatalf("%d per-job forms, want 6", len(forms))
				}
				post := func(path string, form url.Values) {
					t.Helper()
					form.Set("csrf", tok)
					if r := b.post(path, form); r.StatusCode != http.StatusSeeOther {
						t.Errorf("POST %s: %d\n%.600s", path, r.StatusCode, r.body)
					}
				}
				post("/delayed/queue_now", url.Values{"timestamp": {forms[0][0]}, "digest": {forms[0][1]}})
				post("/delayed/remove", url.Values{"timestamp": {forms[3][0]}, "digest": {forms[3][1]}})
				post("/delayed/queue_now", url.Values{"timestamp": {ts}, "all": {"1"}})
				post("/delayed/search/queue_now", url.Values{"class": {"Ping"}})
				post("/delayed/search/remove", url.Values{"class": {"Pong"}})
				if st, _ := f.admin.DelayedCount(bg); st.Jobs != 0 {
					t.Errorf("delayed after the actions: %+v, want none", st)
				}
				f.pushRuby(t, at.Unix(), `{"class":"Left","args":[],"queue":"ruby"}`)
				post("/delayed/clear", url.Values{})
				post("/schedule/requeue", url.Values{"job_name": {"hourly"}})
				post("/schedule/requeue", url.Values{"job_name": {"nightly"}})
				post("/schedule/remove", url.Values{"job_name": {"gone"}})
				page := b.get("/schedule").body
				mustNotContain(t, "/schedule after the actions", page, "NOPERM", "cannot be written")
				if d := f.srv.ACLDenials(t, user, !scripting); len(d) > 0 {
					t.Errorf("admin denied:\n  %s", strings.Join(d, "\n  "))
				}
				got := []int64{}
				for _, q := range []string{"mail", "ruby", "hq", "low"} {
					n, _ := f.admin.QueueSize(bg, q)
					got = append(got, n)
				}
				if fmt.Sprint(got) != "[2 1 1 1]" {
					t.Errorf("mail, ruby, hq, low hold %v, want [2 1 1 1]", got)
				}
				if st, _ := f.admin.DelayedCount(bg); st.Jobs != 0 {
					t.Errorf("delayed after clear: %+v", st)
				}
				if n := f.srv.Do(t, "HKEYS", f.key("persistent_schedules")); n != "hourly" {
					t.Errorf("persistent schedules %q, want hourly", n)
				}
				if n := f.srv.Do(t, "LLEN", f.key("resq:audit")); n == "0" {
					t.Error("no audit entries written")
				}
			})
		})
	}
}
