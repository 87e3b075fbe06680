// Package web is resq's dashboard: resque-web's pages and actions, served by
// an http.Handler you can run on its own (resq web) or mount in your own
// server, plus Prometheus metrics.
//
//	conn, _ := resq.Open(resq.ConnConfig{URL: "redis://127.0.0.1:6379/0"})
//	users, _ := web.LoadUsers("users.htpasswd")
//	h, _ := web.New(conn, web.Config{Users: users, Prefix: "/resq"})
//	mux.Handle("/resq/", http.StripPrefix("/resq", h))
//
// The paths are resque-web's: /overview (and /), /working, /queues,
// /queues/NAME, /workers, /workers/ID, /failed, /stats; plus /failed/INDEX
// (one failure in detail), /stats/redis, /stats/keys, /audit, /metrics,
// /login and /logout; and resque-scheduler's tabs: /delayed (due times),
// /delayed/TIMESTAMP (the jobs due then), /delayed/search and
// /delayed/jobs/CLASS (search), /schedule (recurring schedules).
//
// # Security
//
// With Users, every page needs a signed-in session (a login form checked
// against bcrypt hashes, rate limited per client address and per user
// name). Viewers may read; admins may also retry, remove and clear, and
// enqueue delayed and recurring jobs now. Every
// change is a POST carrying the session's CSRF token and an Origin (or
// Referer) of the dashboard's own host; GET never changes anything. Every
// response carries a strict Content-Security-Policy (no inline script or
// style), X-Frame-Options DENY, nosniff and a same-origin referrer policy.
// All data from Redis (queue and class names, arguments, errors, worker ids)
// is escaped by html/template; arguments are shown through one redactor. Every
// change is recorded in an audit log in Redis and shown on /audit.
//
// Without Users the dashboard asks for no login and everyone is an admin;
// it then answers only requests whose Host is a loopback name or address
// (which also defeats DNS rebinding), and CheckListen refuses other listen
// addresses.
//
// # Concurrency
//
// The Handler is safe for concurrent use. Sessions and login-failure counts
// live in the Handler's memory (none in package state): they are lost on
// restart and are not shared between several dashboard processes, so put
// sticky sessions in front of more than one.
package web

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/resq-go/resq"
)

// Defaults for Config.
const (
	DefaultSessionTTL    = 12 * time.Hour
	DefaultLoginFailures = 5
	// LoginWindow is the period over which login failures are counted.
	LoginWindow = time.Minute
	// maxSessions bounds the session table; the oldest sessions go first.
	maxSessions = 10000
	// requestTimeout bounds the Redis work of one request.
	requestTimeout = 15 * time.Second
)

// Config configures the dashboard. Zero values take the documented defaults.
type Config struct {
	// Users may sign in. With none, the dashboard asks for no login, treats
	// everyone as an admin and answers only requests to a loopback host
	// name; use CheckListen before listening.
	Users Users
	// Prefix is the path the handler is mounted under, e.g. "/resq", used
	// to build links and the cookie path. The handler itself sees paths
	// without it: mount it with http.StripPrefix(prefix, h). Default "".
	Prefix string
	// Logger receives request errors and security events (failed logins,
	// refused requests). Default slog.Default().
	Logger *slog.Logger
	// Metrics is served at /metrics. Default NewMetrics(conn). Pass your own
	// to feed its ObserveJob from a Worker in the same process.
	Metrics *Metrics
	// SessionTTL is how long a login lasts. Default 12 h.
	SessionTTL time.Duration
	// LoginFailures is how many failed logins per client address, and per
	// user name, are allowed within a minute before logins answer 429.
	// Default 5.
	LoginFailures int
	// ClientIPFunc returns the client address used by the login rate limit
	// and the audit log. Default (nil, or an empty answer): the TCP peer's
	// address. Behind a reverse proxy every client has the proxy's address,
	// so one client's failed logins would lock out everyone's; set
	// ClientIPFunc to read the address your proxy sets (and only that proxy
	// can set) — e.g. the last entry of X-Forwarded-For.
	ClientIPFunc func(r *http.Request) string
	// SchedulerLockPrefix is the master lock prefix of the schedulers whose
	// master the Delayed and Schedule tabs (and the metrics made by New)
	// show: resque-scheduler's RESQUE_SCHEDULER_MASTER_LOCK_PREFIX, resq
	// scheduler's --lock-prefix. Default none.
	SchedulerLockPrefix string
	// Schedules is the source of the Schedule tab (recurring schedules:
	// list, enqueue now, remove). Default nil: the tab says that this
	// dashboard has no schedule source.
	Schedules Schedules
	// TrustedOrigins are extra origins ("https://ops.example.com") whose
	// POSTs are accepted, for a proxy that rewrites the Host header. By
	// default only the request's own Host is.
	TrustedOrigins []string
}

// Handler is the dashboard; create it with New.
type Handler struct {
	conn      *resq.Conn
	admin     *resq.Admin
	cfg       Config
	prefix    string
	logger    *slog.Logger
	metrics   *Metrics
	mux       *http.ServeMux
	tmpl      *templates
	sessions  *sessionStore
	byIP      *limiter
	byName    *limiter
	dummyHash []byte
	bcryptSem chan struct{}
	origins   map[string]bool
	static    http.Handler
	// auditDown is why the last audit write failed ("" after a success):
	// every page says so while the log cannot be written.
	auditDown atomic.Pointer[string]
}

//go:embed assets
var assets embed.FS

// New returns the dashboard for conn's namespace.
func New(conn *resq.Conn, cfg Config) (*Handler, error) {
	if conn == nil {
		return nil, errors.New("web.New: conn is nil")
	}
	prefix := strings.TrimRight(cfg.Prefix, "/")
	if prefix != "" && (!strings.HasPrefix(prefix, "/") || strings.HasPrefix(prefix, "//") || strings.ContainsAny(prefix, "?#\\ ")) {
		return nil, fmt.Errorf("web.New: Prefix %q must be a path such as /resq", cfg.Prefix)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.LoginFailures <= 0 {
		cfg.LoginFailures = DefaultLoginFailures
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(conn)
		cfg.Metrics.SetLogger(cfg.Logger)
		cfg.Metrics.SetSchedulerLockPrefix(cfg.SchedulerLockPrefix)
	}
	origins := map[string]bool{}
	for _, o := range cfg.TrustedOrigins {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("web.New: TrustedOrigins entry %q is not an origin such as https://ops.example.com", o)
		}
		origins[strings.ToLower(u.Scheme+"://"+u.Host)] = true
	}
	var dummy []byte
	if cfg.Users.Len() > 0 {
		var err error
		if dummy, err = bcrypt.GenerateFromPassword([]byte("resq: no such user"), cfg.Users.maxCost()); err != nil {
			return nil, err
		}
	}
	staticFS, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	h := &Handler{
		conn: conn, admin: resq.NewAdmin(conn), cfg: cfg, prefix: prefix, logger: cfg.Logger,
		metrics:   cfg.Metrics,
		sessions:  newSessionStore(cfg.SessionTTL),
		byIP:      newLimiter(cfg.LoginFailures, LoginWindow),
		byName:    newLimiter(cfg.LoginFailures, LoginWindow),
		dummyHash: dummy,
		bcryptSem: make(chan struct{}, 4),
		origins:   origins,
		static:    http.StripPrefix("/static/", http.FileServerFS(staticFS)),
	}
	if h.tmpl, err = parseTemplates(h.path); err != nil {
		return nil, err
	}
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	m := http.NewServeMux()
	h.mux = m
	// Pages (GET; GET also serves HEAD).
	m.HandleFunc("GET /{$}", h.page(h.overview))
	m.HandleFunc("GET /overview", h.page(h.overview))
	m.HandleFunc("GET /overview.poll", h.poll(h.overviewPoll))
	m.HandleFunc("GET /working", h.page(h.working))
	m.HandleFunc("GET /queues", h.page(h.queues))
	m.HandleFunc("GET /queues/{name}", h.page(h.queue))
	m.HandleFunc("GET /workers", h.page(h.workers))
	m.HandleFunc("GET /workers/{id}", h.page(h.worker))
	m.HandleFunc("GET /failed", h.page(h.failed))
	m.HandleFunc("GET /failed/{index}", h.page(h.failure))
	m.HandleFunc("GET /stats", h.page(h.statsResque))
	m.HandleFunc("GET /stats/resque", h.page(h.statsResque))
	m.HandleFunc("GET /stats/redis", h.page(h.statsRedis))
	m.HandleFunc("GET /stats/keys", h.page(h.statsKeys))
	m.HandleFunc("GET /delayed", h.page(h.delayed))
	m.HandleFunc("GET /delayed/search", h.page(h.delayedSearch))
	m.HandleFunc("GET /delayed/jobs/{class}", h.page(h.delayedSearch))
	m.HandleFunc("GET /delayed/{timestamp}", h.page(h.delayedAt))
	m.HandleFunc("GET /schedule", h.page(h.schedule))
	m.HandleFunc("GET /audit", h.page(h.audit))
	m.HandleFunc("GET /metrics", h.metricsPage)
	m.HandleFunc("GET /login", h.loginForm)
	m.HandleFunc("POST /login", h.login)
	m.HandleFunc("GET /logout", h.page(h.logoutForm))
	m.HandleFunc("POST /logout", h.action(RoleViewer, h.logout))
	m.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // no directory listings
			http.NotFound(w, r)
			return
		}
		h.static.ServeHTTP(w, r)
	})

	// Actions (POST, admin, CSRF token, same origin).
	m.HandleFunc("POST /queues/{name}/clear", h.action(RoleAdmin, h.clearQueue))
	m.HandleFunc("POST /queues/{name}/remove", h.action(RoleAdmin, h.removeQueue))
	m.HandleFunc("POST /failed/requeue/all", h.action(RoleAdmin, h.retryAll))
	m.HandleFunc("POST /failed/requeue/{index}", h.action(RoleAdmin, h.retryOne))
	m.HandleFunc("POST /failed/remove/{index}", h.action(RoleAdmin, h.removeOne))
	m.HandleFunc("POST /failed/clear", h.action(RoleAdmin, h.clearFailures))
	m.HandleFunc("POST /failed/clear_retried", h.action(RoleAdmin, h.clearRetried))
	m.HandleFunc("POST /delayed/queue_now", h.action(RoleAdmin, h.delayedQueueNow))
	m.HandleFunc("POST /delayed/remove", h.action(RoleAdmin, h.delayedRemove))
	m.HandleFunc("POST /delayed/search/queue_now", h.action(RoleAdmin, h.delayedSearchQueueNow))
	m.HandleFunc("POST /delayed/search/remove", h.action(RoleAdmin, h.delayedSearchRemove))
	m.HandleFunc("POST /delayed/clear", h.action(RoleAdmin, h.delayedClear))
	m.HandleFunc("POST /schedule/requeue", h.action(RoleAdmin, h.scheduleRequeue))
	m.HandleFunc("POST /schedule/remove", h.action(RoleAdmin, h.scheduleRemove))
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	if !strings.HasPrefix(r.URL.Path, "/static/") {
		hd.Set("Cache-Control", "no-store")
	} else {
		hd.Set("Cache-Control", "max-age=300")
	}
	if h.cfg.Users.Len() == 0 && !h.hostAllowed(r) {
		h.logger.Warn("dashboard: refused a request for a non-loopback host (no users are configured)",
			"host", r.Host, "remote", h.clientIP(r))
		http.Error(w, "This dashboard has no users configured, so it answers only on localhost. "+
			"Configure users (an htpasswd file) to serve it under another name.", http.StatusForbidden)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy allows only the dashboard's own script and style
// files: no inline script, no inline style, no framing.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// hostAllowed is the DNS-rebinding guard of a dashboard without users.
func (h *Handler) hostAllowed(r *http.Request) bool {
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	if isLoopbackHost(host) {
		return true
	}
	for o := range h.origins {
		if u, err := url.Parse(o); err == nil && strings.EqualFold(u.Host, r.Host) {
			return true
		}
	}
	return false
}

// path builds a link: the prefix, base (a literal path such as "/queues")
// and each segment path-escaped.
func (h *Handler) path(base string, segs ...string) string {
	var b strings.Builder
	b.WriteString(h.prefix)
	b.WriteString(base)
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(escapeSegment(s))
	}
	return b.String()
}

// escapeSegment escapes one path segment; "." and ".." are escaped too, so
// a queue named ".." cannot make a link point elsewhere.
func escapeSegment(s string) string {
	e := url.PathEscape(s)
	switch e {
	case ".":
		return "%2E"
	case "..":
		return "%2E%2E"
	}
	return e
}

func (h *Handler) reqCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), requestTimeout)
}

// digest identifies one stored failure record, so an action on "failure 3"
// is refused when index 3 now holds another record.
func digest(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:12])
}
