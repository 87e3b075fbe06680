package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/resq-go/resq/web"
)

// newReq builds a request as it reaches the handler from a local browser.
func newReq(method, target, form string) *http.Request {
	var r *http.Request
	if form != "" {
		r = httptest.NewRequest(method, target, strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		r = httptest.NewRequest(method, target, nil)
	}
	r.Host = "127.0.0.1:5678"
	r.RemoteAddr = "127.0.0.1:40000"
	return r
}

func serve(h http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	return rec
}

func TestAuthRequired(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	b := f.browser(t, "")
	for _, p := range []string{"/", "/overview", "/working", "/queues", "/queues/x", "/workers", "/workers/x",
		"/failed", "/failed/0", "/stats", "/stats/redis", "/stats/keys", "/audit", "/logout"} {
		r := b.get(p)
		if r.StatusCode != http.StatusSeeOther || !strings.HasPrefix(r.Header.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without a session: %d → %q, want 303 to /login", p, r.StatusCode, r.Header.Get("Location"))
		}
	}
	if r := b.get("/metrics"); r.StatusCode != http.StatusUnauthorized || r.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("/metrics without credentials: %d", r.StatusCode)
	}
	r := b.get("/login?next=/failed")
	if r.StatusCode != 200 {
		t.Fatalf("login form: %d", r.StatusCode)
	}
	mustContain(t, "login form", r.body, `name="username"`, `type="password"`, `value="/failed"`)
	mustNotContain(t, "login form", r.body, "Overview</a>") // no tabs before login

	// Actions without a session are refused.
	if r := b.post("/failed/clear", url.Values{"csrf": {"x"}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("POST without a session: %d, want 403", r.StatusCode)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	b := f.browser(t, "")

	r := b.post("/login", url.Values{"username": {adminName}, "password": {"wrong"}})
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", r.StatusCode)
	}
	mustContain(t, "wrong password", r.body, "Wrong user name or password")
	if len(r.Cookies()) != 0 {
		t.Errorf("wrong password set cookies: %v", r.Cookies())
	}
	if r := b.post("/login", url.Values{"username": {"mallory"}, "password": {adminPass}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("unknown user: %d, want 401", r.StatusCode)
	}
	if r := b.post("/login", url.Values{"username": {adminName}, "password": {""}}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("empty password: %d", r.StatusCode)
	}

	// Success: a new session cookie with the right flags, and a local redirect
	// (an off-site "next" is ignored).
	r = b.post("/login", url.Values{"username": {adminName}, "password": {adminPass}, "next": {"//evil.example/x"}})
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("login: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	cs := r.Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies: %v", cs)
	}
	c := cs[0]
	if c.Name != "resq_session" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || len(c.Value) < 43 {
		t.Errorf("session cookie %+v", c)
	}
	if r := b.get("/overview"); r.StatusCode != 200 {
		t.Fatalf("after login: %d", r.StatusCode)
	}
	// GET /login when signed in goes on.
	if r := b.get("/login?next=/queues"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/queues" {
		t.Errorf("login page when signed in: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}

	// Logout invalidates the session server-side.
	tok := b.csrf("/overview")
	if r := b.post("/logout", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/login" {
		t.Fatalf("logout: %d → %q", r.StatusCode, r.Header.Get("Location"))
	}
	req := newReq("GET", "/overview", "")
	req.AddCookie(c)
	if rec := serve(f.h, req); rec.Code != http.StatusSeeOther {
		t.Errorf("old cookie after logout: %d, want 303 to login", rec.Code)
	}
	es, _, _ := f.admin.AuditLog(bg, 0, 10)
	if len(es) != 2 || es[0].Action != "logout" || es[1].Action != "login" {
		t.Errorf("audit: %+v", es)
	}
}

func TestSecureCookieBehindTLSProxy(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	req := newReq("POST", "/login", url.Values{"username": {adminName}, "password": {adminPass}}.Encode())
	req.Header.Set("Origin", "http://127.0.0.1:5678")
	req.Header.Set("X-Forwarded-Proto", "https")
	rec := serve(f.h, req)
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("login: %d", rec.Code)
	}
	cs := rec.Result().Cookies()
	if len(cs) != 1 || !cs[0].Secure {
		t.Errorf("cookie behind an https proxy is not Secure: %+v", cs)
	}
}

func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)

	// Per client address: 5 failures, then even the right password gets 429.
	b := f.browser(t, "")
	for i := range 5 {
		if r := b.post("/login", url.Values{"username": {"guess" + string(rune('a'+i))}, "password": {"x"}}); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, r.StatusCode)
		}
	}
	r := b.post("/login", url.Values{"username": {adminName}, "password": {adminPass}})
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("6th attempt from one address: %d (Retry-After %q), want 429", r.StatusCode, r.Header.Get("Retry-After"))
	}
	mustContain(t, "429", r.body, "Too many failed sign-ins")

	// Per user name: failures from many addresses lock that name only.
	for i := range 5 {
		req := newReq("POST", "/login", url.Values{"username": {viewerName}, "password": {"x"}}.Encode())
		req.Header.Set("Origin", "http://127.0.0.1:5678")
		req.RemoteAddr = "10.0.0." + string(rune('1'+i)) + ":1234"
		if rec := serve(f.h, req); rec.Code != http.StatusUnauthorized {
			t.Fatalf("name failure %d: %d", i, rec.Code)
		}
	}
	login := func(name, pw, addr string) int {
		req := newReq("POST", "/login", url.Values{"username": {name}, "password": {pw}}.Encode())
		req.Header.Set("Origin", "http://127.0.0.1:5678")
		req.RemoteAddr = addr
		return serve(f.h, req).Code
	}
	if code := login(viewerName, viewerPass, "10.9.9.9:1"); code != http.StatusTooManyRequests {
		t.Errorf("locked name from a fresh address: %d, want 429", code)
	}
	if code := login(adminName, adminPass, "10.9.9.9:1"); code != http.StatusSeeOther {
		t.Errorf("another name from a fresh address: %d, want 303", code)
	}
}

func TestCSRFAndRoles(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	f.failJobs(t, "q", "Boom", 1)
	admin := f.browser(t, "")
	admin.login(adminName, adminPass)
	tok := admin.csrf("/failed")

	cases := []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"no token", url.Values{}, nil},
		{"wrong token", url.Values{"csrf": {tok[:len(tok)-2] + "xx"}}, nil},
		{"token in the query only", url.Values{}, nil}, // the path below carries ?csrf=
		{"foreign Origin", url.Values{"csrf": {tok}}, []string{"Origin", "https://evil.example"}},
		{"Origin null", url.Values{"csrf": {tok}}, []string{"Origin", "null"}},
		{"no Origin, foreign Referer", url.Values{"csrf": {tok}}, []string{"Origin", "", "Referer", "https://evil.example/page"}},
		{"no Origin, no Referer", url.Values{"csrf": {tok}}, []string{"Origin", ""}},
	}
	for _, c := range cases {
		path := "/failed/clear"
		if c.name == "token in the query only" {
			path += "?csrf=" + url.QueryEscape(tok)
		}
		r := admin.post(path, c.form, c.headers...)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", c.name, r.StatusCode)
		}
	}
	if n, _ := f.admin.FailureCount(bg); n != 1 {
		t.Fatalf("a refused request changed data: %d failures", n)
	}
	// A same-origin Referer without Origin is accepted.
	r := admin.post("/failed/requeue/all", url.Values{"csrf": {tok}}, "Origin", "", "Referer", admin.origin+"/failed")
	if r.StatusCode != http.StatusSeeOther {
		t.Errorf("same-origin Referer: %d, want 303", r.StatusCode)
	}

	// The viewer may not change anything, even with its own valid token.
	viewer := f.browser(t, "")
	viewer.login(viewerName, viewerPass)
	vtok := viewer.csrf("/overview") // the sign-out form carries it
	for _, p := range []string{"/failed/clear", "/failed/clear_retried", "/failed/requeue/all", "/failed/requeue/0",
		"/failed/remove/0", "/queues/q/clear", "/queues/q/remove"} {
		if r := viewer.post(p, url.Values{"csrf": {vtok}}); r.StatusCode != http.StatusForbidden {
			t.Errorf("viewer POST %s: %d, want 403", p, r.StatusCode)
		}
	}
	if n, _ := f.admin.FailureCount(bg); n != 1 {
		t.Errorf("viewer changed data: %d failures", n)
	}
	// A token belongs to its session.
	if r := viewer.post("/logout", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusForbidden {
		t.Errorf("another session's token: %d, want 403", r.StatusCode)
	}

	// GET never mutates: action paths answer 405 to GET.
	for _, p := range []string{"/failed/clear", "/failed/requeue/all", "/queues/q/remove", "/failed/remove/0"} {
		if r := admin.get(p); r.StatusCode != http.StatusMethodNotAllowed && r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 405 or 404", p, r.StatusCode)
		}
	}
	if n, _ := f.admin.FailureCount(bg); n != 1 {
		t.Errorf("GET changed data: %d failures", n)
	}
	// A cross-origin login attempt is refused before the password is checked.
	if r := admin.post("/login", url.Values{"username": {adminName}, "password": {adminPass}}, "Origin", "https://evil.example"); r.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin login: %d", r.StatusCode)
	}
}

func TestTrustedOrigins(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{TrustedOrigins: []string{"https://ops.example.com"}}, false)
	b := f.browser(t, "")
	b.login(adminName, adminPass)
	tok := b.csrf("/overview")
	if r := b.post("/failed/clear", url.Values{"csrf": {tok}}, "Origin", "https://ops.example.com"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("trusted origin: %d", r.StatusCode)
	}
	if r := b.post("/failed/clear", url.Values{"csrf": {tok}}, "Origin", "http://ops.example.com"); r.StatusCode != http.StatusForbidden {
		t.Errorf("trusted host on another scheme: %d", r.StatusCode)
	}
	if _, err := web.New(f.conn, web.Config{TrustedOrigins: []string{"ops.example.com"}}); err == nil {
		t.Error("New accepted an origin without a scheme")
	}
}

func TestMetricsBasicAuth(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	req := newReq("GET", "/metrics", "")
	req.SetBasicAuth(viewerName, viewerPass)
	rec := serve(f.h, req)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "resq_up 1") {
		t.Errorf("metrics with basic auth: %d %.200s", rec.Code, rec.Body.String())
	}
	req = newReq("GET", "/metrics", "")
	req.SetBasicAuth(viewerName, "nope")
	if rec := serve(f.h, req); rec.Code != http.StatusUnauthorized {
		t.Errorf("metrics with a wrong password: %d", rec.Code)
	}
}

// TestNoUsers: without users there is no login, everyone is an admin, and
// only loopback Host names are answered.
func TestNoUsers(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, true)
	f.failJobs(t, "q", "Boom", 1)
	b := f.browser(t, "") // httptest serves on 127.0.0.1
	r := b.get("/failed")
	if r.StatusCode != 200 {
		t.Fatalf("no users, loopback: %d", r.StatusCode)
	}
	mustContain(t, "anonymous /failed", r.body, "local admin", "Retry all")
	if r := b.get("/login"); r.StatusCode != http.StatusSeeOther {
		t.Errorf("login page without users: %d", r.StatusCode)
	}
	tok := b.csrf("/failed")
	if r := b.post("/failed/clear", url.Values{"csrf": {tok}}); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("anonymous clear: %d %s", r.StatusCode, r.body)
	}
	if r := b.post("/failed/clear", url.Values{}); r.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous POST without token: %d", r.StatusCode)
	}
	es, _, _ := f.admin.AuditLog(bg, 0, 10)
	if len(es) == 0 || es[0].User != "anonymous" || es[0].Action != "failure.clear" {
		t.Errorf("audit: %+v", es)
	}
	// DNS rebinding: a page on evil.example resolving to 127.0.0.1.
	for _, host := range []string{"evil.example", "evil.example:5678", "10.0.0.1:5678"} {
		req := newReq("GET", "/overview", "")
		req.Host = host
		if rec := serve(f.h, req); rec.Code != http.StatusForbidden {
			t.Errorf("Host %s without users: %d, want 403", host, rec.Code)
		}
	}
	for _, host := range []string{"localhost:5678", "127.0.0.1", "[::1]:5678", "foo.localhost"} {
		req := newReq("GET", "/overview", "")
		req.Host = host
		if rec := serve(f.h, req); rec.Code != 200 {
			t.Errorf("Host %s without users: %d, want 200", host, rec.Code)
		}
	}
}

func TestCheckListen(t *testing.T) {
	t.Parallel()
	users := testUsers(t)
	for _, c := range []struct {
		addr  string
		users bool
		ok    bool
	}{
		{"127.0.0.1:5678", false, true},
		{"localhost:5678", false, true},
		{"[::1]:5678", false, true},
		{"127.8.9.1:80", false, true},
		{":5678", false, false},
		{"0.0.0.0:5678", false, false},
		{"[::]:5678", false, false},
		{"192.168.1.5:5678", false, false},
		{"dashboard.example.com:5678", false, false},
		{"0.0.0.0:5678", true, true},
		{":5678", true, true},
		{"nonsense", true, false},
	} {
		var u web.Users
		if c.users {
			u = users
		}
		err := web.CheckListen(c.addr, u)
		if (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, users=%v) = %v, want ok=%v", c.addr, c.users, err, c.ok)
		}
		if err != nil && !c.users && c.addr != "nonsense" && !strings.Contains(err.Error(), "--users") {
			t.Errorf("error does not say what to do: %v", err)
		}
	}
}

// TestClientIPHook: behind a proxy, the limit follows the address the proxy
// reports, so one client's failures do not lock out the others.
func TestClientIPHook(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{ClientIPFunc: func(r *http.Request) string { return r.Header.Get("X-Real-IP") }}, false)
	try := func(ip, pw string) int {
		req := newReq("POST", "/login", url.Values{"username": {adminName}, "password": {pw}}.Encode())
		req.Header.Set("Origin", "http://127.0.0.1:5678")
		req.Header.Set("X-Real-IP", ip)
		return serve(f.h, req).Code
	}
	for i := range 4 {
		if code := try("203.0.113.9", "wrong"); code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i, code)
		}
	}
	if code := try("203.0.113.9", adminPass); code != http.StatusSeeOther {
		t.Fatalf("4 failures then the right password: %d", code) // success resets the name's count
	}
	for range 5 {
		try("203.0.113.9", "wrong")
	}
	if code := try("203.0.113.9", adminPass); code != http.StatusTooManyRequests {
		t.Errorf("blocked client: %d, want 429", code)
	}
	req := newReq("POST", "/login", url.Values{"username": {viewerName}, "password": {viewerPass}}.Encode())
	req.Header.Set("Origin", "http://127.0.0.1:5678")
	req.Header.Set("X-Real-IP", "198.51.100.1") // same TCP peer, another client
	if code := serve(f.h, req).Code; code != http.StatusSeeOther {
		t.Errorf("another client behind the same proxy: %d, want 303", code)
	}
	es, _, _ := f.admin.AuditLog(bg, 1, 1)
	if len(es) != 1 || es[0].Remote != "203.0.113.9" {
		t.Errorf("audit remote: %+v", es)
	}
}
