package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/web"
)

// One redis-server per test binary; each test gets its own database and
// namespace.
var (
	pool         = redistest.NewPool(redistest.Options{})
	nsCounter    atomic.Int64
	exampleRedis *redistest.Server // for the runnable examples
)

func TestMain(m *testing.M) {
	exampleRedis = testkit.ExampleRedis()
	testkit.Main(m, func() {
		exampleRedis.Close()
		pool.Close()
	})
}

// Test accounts: alice is an admin, victor a viewer.
const (
	adminName, adminPass   = "alice", "correct horse battery staple"
	viewerName, viewerPass = "victor", "viewer password"
)

// hashes are made once, at bcrypt's minimum cost, to keep tests fast.
var hashes = sync.OnceValue(func() map[string]string {
	out := map[string]string{}
	for name, pw := range map[string]string{adminName: adminPass, viewerName: viewerPass} {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			panic(err)
		}
		out[name] = string(h)
	}
	return out
})

func testUsers(t *testing.T) web.Users {
	t.Helper()
	var u web.Users
	if err := u.Add(adminName, hashes()[adminName], web.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if err := u.Add(viewerName, hashes()[viewerName], web.RoleViewer); err != nil {
		t.Fatal(err)
	}
	return u
}

type fixture struct {
	srv    *redistest.Server
	ns     string
	conn   *resq.Conn
	client *resq.Client
	admin  *resq.Admin
	h      *web.Handler
	ts     *httptest.Server
}

func (f *fixture) key(rel string) string { return f.ns + ":" + rel }

// setup returns a dashboard with alice and victor on a fresh namespace,
// served by an httptest server. cfg.Users is filled in unless noUsers.
func setup(t *testing.T, cfg web.Config, noUsers bool) *fixture {
	t.Helper()
	srv := pool.Get(t)
	ns := fmt.Sprintf("w%d", nsCounter.Add(1))
	conn, err := resq.Open(resq.ConnConfig{URL: srv.URL(), Namespace: ns, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if !noUsers && cfg.Users.Len() == 0 {
		cfg.Users = testUsers(t)
	}
	if cfg.Logger == nil {
		cfg.Logger = testkit.Logger(t)
	}
	h, err := web.New(conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{srv: srv, ns: ns, conn: conn, client: testkit.Client(t, conn, resq.ClientConfig{}),
		admin: resq.NewAdmin(conn), h: h}
	if cfg.Prefix != "" {
		mux := http.NewServeMux()
		mux.Handle(cfg.Prefix+"/", http.StripPrefix(cfg.Prefix, h))
		f.ts = httptest.NewServer(mux)
	} else {
		f.ts = httptest.NewServer(h)
	}
	t.Cleanup(f.ts.Close)
	return f
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects and sends the dashboard's Origin on POSTs, as a browser would.
type browser struct {
	t      *testing.T
	base   string // server URL including any prefix
	origin string
	c      *http.Client
}

func (f *fixture) browser(t *testing.T, prefix string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: f.ts.URL + prefix, origin: f.ts.URL, c: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type response struct {
	*http.Response
	body string
}

func (b *browser) do(req *http.Request) response {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	checkHeaders(b.t, req.Method+" "+req.URL.Path, resp.Header)
	return response{resp, string(body)}
}

func (b *browser) get(path string) response {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

// post sends a form; headers may override Origin (use "" to send none).
func (b *browser) post(path string, form url.Values, headers ...string) response {
	b.t.Helper()
	req, err := http.NewRequest("POST", b.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.origin)
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	return b.do(req)
}

func (b *browser) login(name, password string) {
	b.t.Helper()
	r := b.post("/login", url.Values{"username": {name}, "password": {password}, "next": {"/overview"}})
	if r.StatusCode != http.StatusSeeOther {
		b.t.Fatalf("login %s: status %d, want 303:\n%s", name, r.StatusCode, r.body)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf returns the CSRF token from a page's forms.
func (b *browser) csrf(path string) string {
	b.t.Helper()
	r := b.get(path)
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		b.t.Fatalf("no csrf token on %s (status %d)", path, r.StatusCode)
	}
	return m[1]
}

// checkHeaders asserts the security headers every response must carry.
func checkHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
		"X-Frame-Options":         "DENY",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "same-origin",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: header %s = %q, want %q", what, k, got, v)
		}
	}
}

func mustContain(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(body, s) {
			t.Errorf("%s: body lacks %q", what, s)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if strings.Contains(body, s) {
			t.Errorf("%s: body contains %q", what, s)
		}
	}
}

var bg = context.Background()

// failJobs runs a worker whose handler for class always fails, until n
// failure records exist.
func (f *fixture) failJobs(t *testing.T, queue, class string, n int, args ...any) {
	t.Helper()
	w, err := resq.NewWorker(f.conn, resq.WorkerConfig{Queues: []string{queue}, Concurrency: 1,
		PollInterval: 10 * time.Millisecond, Hostname: "failer", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc(class, func(ctx context.Context, job *resq.Job) error {
		return resq.Fail("CardDeclined", "card declined for order (test)")
	})
	before, _ := f.admin.FailureCount(bg)
	for range n {
		if _, err := f.client.Enqueue(bg, queue, class, args...); err != nil {
			t.Fatal(err)
		}
	}
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "failures recorded", func() bool {
		c, _ := f.admin.FailureCount(bg)
		return c >= before+int64(n)
	})
	stop()
}
