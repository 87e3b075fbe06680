package web_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/web"
)

// TestHostileData plants markup in every value an enqueuer controls (queue
// and class names, arguments, errors, backtraces, worker ids, timestamps) and
// checks that no page renders it as markup.
func TestHostileData(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	const (
		q1    = `<script>alert("q")</script>`
		q2    = `javascript:alert(4)`
		cls   = `<script>alert("class")</script>`
		wid   = `evil<script>alert(10)</script>:1:q`
		xssIm = `<img src=x onerror=alert(5)>`
	)
	job := func(class string, args ...any) string {
		b, _ := json.Marshal(map[string]any{"class": class, "args": args})
		return string(b)
	}
	f.srv.Do(t, "SADD", f.key("queues"), q1, q2, "plain")
	f.srv.Do(t, "RPUSH", f.key("queue:"+q1), job(cls, `</code><script>alert(2)</script>`, map[string]string{"url": "javascript:alert(3)"}))
	f.srv.Do(t, "RPUSH", f.key("queue:"+q2), job("Plain", "x"))
	f.srv.Do(t, "RPUSH", f.key("queue:plain"), `not json <script>alert(11)</script>`)
	fail, _ := json.Marshal(map[string]any{
		"failed_at": `<script>alert("at")</script>`,
		"payload":   map[string]any{"class": xssIm, "args": []string{"<script>alert(12)</script>"}},
		"exception": `<script>alert(6)</script>`,
		"error":     `"><script>alert(7)</script>`,
		"backtrace": []string{`<script>alert(13)</script>`},
		"worker":    wid,
		"queue":     `<svg onload=alert(9)>`,
	})
	f.srv.Do(t, "RPUSH", f.key("failed"), string(fail))
	f.srv.Do(t, "RPUSH", f.key("failed"), `{"payload": <script>alert(14)</script>`)
	f.srv.Do(t, "SADD", f.key("workers"), wid)
	rec, _ := json.Marshal(map[string]any{"queue": q1, "run_at": `<script>alert(15)</script>`,
		"payload": json.RawMessage(job(cls, "<script>alert(16)</script>"))})
	f.srv.Do(t, "SET", f.key("worker:"+wid), string(rec))
	f.srv.Do(t, "SET", f.key("worker:"+wid+":started"), `<script>alert(17)</script>`)
	f.srv.Do(t, "HSET", f.key("workers:heartbeat"), wid, `<script>alert(18)</script>`)
	if err := f.admin.RecordAudit(bg, resq.AuditEntry{User: `<script>alert(19)</script>`, Action: "x<script>",
		Target: `"><script>alert(20)</script>`, Detail: xssIm}); err != nil {
		t.Fatal(err)
	}

	b := f.browser(t, "")
	b.login(adminName, adminPass)
	// A flash message carrying a hostile queue name.
	b.post("/queues/"+url.PathEscape(q1)+"/clear", url.Values{"csrf": {b.csrf("/queues")}, "back": {"/queues"}})
	f.srv.Do(t, "RPUSH", f.key("queue:"+q1), job(cls, "again"))

	// Delayed items with markup in class, queue and args, and one that is
	// not JSON.
	item, _ := json.Marshal(map[string]any{"class": cls, "args": []string{`</code><script>alert(22)</script>`}, "queue": q1})
	f.pushRuby(t, 1999999999, string(item))
	f.pushRuby(t, 1999999999, `{"class": <script>alert(23)</script>`)
	f.pushRuby(t, 1999999998, string(item))

	pages := []string{"/delayed", "/delayed/1999999999", "/delayed/search?class=" + url.QueryEscape(cls),
		"/delayed/jobs/" + url.PathEscape(cls), "/delayed/search?queue=" + url.QueryEscape(q1) + "&args=" + url.QueryEscape(`"><script>`),
		"/", "/overview.poll", "/working", "/queues", "/queues/" + url.PathEscape(q1),
		"/queues/" + url.PathEscape(q2), "/queues/plain", "/workers", "/workers/" + url.PathEscape(wid),
		"/workers/" + url.PathEscape("evil<script>alert(10)</script>"), "/failed",
		"/failed?class=" + url.QueryEscape(xssIm), "/failed?queue=" + url.QueryEscape(`<svg onload=alert(9)>`),
		"/failed/0", "/failed/1", "/stats", "/stats/keys", "/audit", "/login?next=" + url.QueryEscape(`"><script>alert(21)</script>`)}
	seen := map[string]bool{}
	for _, p := range pages {
		r := b.get(p)
		if r.StatusCode >= 500 {
			t.Errorf("GET %s: %d", p, r.StatusCode)
		}
		low := strings.ToLower(r.body)
		for _, bad := range []string{"<script>", "<img src=x", "<svg onload", `href="javascript:`, `src="javascript:`, "</code><script"} {
			if strings.Contains(low, bad) {
				i := strings.Index(low, bad)
				t.Errorf("GET %s renders hostile markup %q: …%s…", p, bad, r.body[max(0, i-80):min(len(r.body), i+80)])
			}
		}
		for _, s := range []string{"&lt;script&gt;alert(&#34;q&#34;)", "&lt;script&gt;alert(&#34;class&#34;)", "&lt;img src=x onerror=alert(5)&gt;",
			"&lt;script&gt;alert(6)", "&lt;script&gt;alert(7)", "evil&lt;script&gt;alert(10)", "&lt;script&gt;alert(19)", "javascript:alert(4)"} {
			if strings.Contains(r.body, s) {
				seen[s] = true
			}
		}
	}
	// The hostile values are shown (escaped), not dropped.
	for _, s := range []string{"&lt;script&gt;alert(&#34;q&#34;)", "&lt;script&gt;alert(&#34;class&#34;)", "&lt;img src=x onerror=alert(5)&gt;",
		"&lt;script&gt;alert(6)", "&lt;script&gt;alert(7)", "evil&lt;script&gt;alert(10)", "&lt;script&gt;alert(19)", "javascript:alert(4)"} {
		if !seen[s] {
			t.Errorf("no page shows %q", s)
		}
	}
	// The queue named javascript:… links to its page, not to a script.
	mustContain(t, "/queues", b.get("/queues").body, `href="/queues/javascript:alert%284%29"`)
}
