package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/resq-go/resq"
)

const (
	cookieName = "resq_session"
	// anonymousUser is the name audited for a dashboard without users.
	anonymousUser = "anonymous"
	maxFormBytes  = 64 << 10
	maxPassword   = 1024
)

// session is one signed-in browser.
type session struct {
	user      string
	role      Role
	csrf      string
	anonymous bool
	created   time.Time
	expires   time.Time
	flash     string
	flashErr  bool
}

// principal is who makes a request.
type principal struct {
	sid       string // cookie value
	user      string
	role      Role
	csrf      string
	anonymous bool
	flash     string
	flashErr  bool
}

// sessionStore keeps sessions in memory, keyed by the SHA-256 of the cookie
// value (a lookup then leaks nothing about valid ids through timing).
type sessionStore struct {
	mu  sync.Mutex
	ttl time.Duration
	m   map[[32]byte]*session
}

func newSessionStore(ttl time.Duration) *sessionStore {
	return &sessionStore{ttl: ttl, m: map[[32]byte]*session{}}
}

// randomToken returns 256 random bits, base64url.
func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("web: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (s *sessionStore) create(user string, role Role, anonymous bool, now time.Time) string {
	id := randomToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= maxSessions {
		s.evictLocked(now)
	}
	s.m[sha256.Sum256([]byte(id))] = &session{user: user, role: role, csrf: randomToken(), anonymous: anonymous,
		created: now, expires: now.Add(s.ttl)}
	return id
}

// evictLocked drops expired sessions and, if the table is still full, the
// oldest tenth.
func (s *sessionStore) evictLocked(now time.Time) {
	for k, v := range s.m {
		if now.After(v.expires) {
			delete(s.m, k)
		}
	}
	if len(s.m) < maxSessions {
		return
	}
	var oldest time.Time
	cut := len(s.m) / 10
	for range cut {
		var key [32]byte
		first := true
		for k, v := range s.m {
			if first || v.created.Before(oldest) {
				key, oldest, first = k, v.created, false
			}
		}
		delete(s.m, key)
	}
}

// get returns the live session for id, taking its one-shot flash message.
func (s *sessionStore) get(id string, now time.Time) (principal, bool) {
	if id == "" || len(id) > 128 {
		return principal{}, false
	}
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return principal{}, false
	}
	if now.After(v.expires) {
		delete(s.m, key)
		return principal{}, false
	}
	p := principal{sid: id, user: v.user, role: v.role, csrf: v.csrf, anonymous: v.anonymous,
		flash: v.flash, flashErr: v.flashErr}
	v.flash, v.flashErr = "", false
	return p, true
}

func (s *sessionStore) setFlash(id, msg string, isErr bool) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[key]; ok {
		v.flash, v.flashErr = msg, isErr
	}
}

func (s *sessionStore) delete(id string) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

// limiter counts failures per key within a sliding window.
type limiter struct {
	mu     sync.Mutex
	limit  int
	window time.Duration
	m      map[string][]time.Time
}

func newLimiter(limit int, window time.Duration) *limiter {
	return &limiter{limit: limit, window: window, m: map[string][]time.Time{}}
}

// wait returns how long key must wait before trying again (0: it may try).
func (l *limiter) wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := l.recentLocked(key, now)
	if len(ts) < l.limit {
		return 0
	}
	return ts[len(ts)-l.limit].Add(l.window).Sub(now)
}

func (l *limiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > 10000 {
		for k := range l.m {
			l.recentLocked(k, now)
		}
	}
	ts := append(l.recentLocked(key, now), now)
	if len(ts) > 2*l.limit {
		ts = ts[len(ts)-2*l.limit:]
	}
	l.m[key] = ts
}

func (l *limiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}

// recentLocked drops key's failures older than the window and returns the rest.
func (l *limiter) recentLocked(key string, now time.Time) []time.Time {
	ts := l.m[key]
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= l.window {
		i++
	}
	if i == len(ts) {
		delete(l.m, key)
		return nil
	}
	ts = ts[i:]
	l.m[key] = ts
	return ts
}

// clientIP is the client's address for the login rate limit and the audit
// log: Config.ClientIPFunc when set, else the TCP peer.
func (h *Handler) clientIP(r *http.Request) string {
	if h.cfg.ClientIPFunc != nil {
		if ip := h.cfg.ClientIPFunc(r); ip != "" {
			return ip
		}
	}
	return peerIP(r)
}

// peerIP is the address of the TCP peer. Forwarded headers are not trusted
// by default: anyone could set them to dodge the login rate limit.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func isTLS(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func (h *Handler) setCookie(w http.ResponseWriter, r *http.Request, id string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: id, Path: h.prefix + "/", MaxAge: maxAge,
		HttpOnly: true, Secure: isTLS(r), SameSite: http.SameSiteStrictMode,
	})
}

// who returns the request's principal. For a dashboard without users, a
// request without a session gets a new anonymous admin session when create
// is set (GET pages), so that its forms carry a CSRF token.
func (h *Handler) who(w http.ResponseWriter, r *http.Request, create bool) (principal, bool) {
	now := time.Now()
	if c, err := r.Cookie(cookieName); err == nil {
		if p, ok := h.sessions.get(c.Value, now); ok {
			return p, true
		}
	}
	if h.cfg.Users.Len() > 0 || !create {
		return principal{}, false
	}
	id := h.sessions.create(anonymousUser, RoleAdmin, true, now)
	h.setCookie(w, r, id, int(h.cfg.SessionTTL.Seconds()))
	p, ok := h.sessions.get(id, now)
	return p, ok
}

type pageFunc func(w http.ResponseWriter, r *http.Request, p principal)

// page wraps a GET page: no session sends the browser to the login form.
func (h *Handler) page(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := h.who(w, r, true)
		if !ok {
			http.Redirect(w, r, h.path("/login")+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		fn(w, r, p)
	}
}

// poll wraps a fragment fetched by the page's script: no session is a 401,
// which the script answers by going to the login form.
func (h *Handler) poll(fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := h.who(w, r, false)
		if !ok {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		fn(w, r, p)
	}
}

// action wraps a POST that changes state: it needs a session, a request
// from the dashboard's own origin, the session's CSRF token and role min.
func (h *Handler) action(min Role, fn pageFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := h.who(w, r, false)
		if !ok {
			h.refuse(w, r, "", "no session")
			return
		}
		if !h.sameOrigin(r) {
			h.refuse(w, r, p.user, "cross-origin request")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		token := r.PostForm.Get("csrf")
		if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(p.csrf)) != 1 {
			h.refuse(w, r, p.user, "missing or wrong CSRF token")
			return
		}
		if p.role < min {
			h.refuse(w, r, p.user, "role "+p.role.String()+" may not do this")
			return
		}
		fn(w, r.WithContext(context.WithValue(r.Context(), auditKey{}, &auditState{})), p)
	}
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, user, why string) {
	h.logger.Warn("dashboard: refused a request", "reason", why, "method", r.Method, "path", r.URL.Path,
		"user", user, "remote", h.clientIP(r))
	http.Error(w, "Forbidden: "+why+". Reload the page and try again.", http.StatusForbidden)
}

// sameOrigin checks the Origin header (or, without one, the Referer) of a
// state-changing request against the request's Host and TrustedOrigins.
func (h *Handler) sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" || src == "null" {
		return false
	}
	u, err := url.Parse(src)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return h.origins[strings.ToLower(u.Scheme+"://"+u.Host)]
}

// safeNext returns a local path to go to after login ("/" when next is not
// one): no scheme, no host, no "//" or "/\" that a browser would read as a
// host.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") ||
		strings.ContainsAny(next, "\r\n\t") || len(next) > 2048 {
		return "/"
	}
	if u, err := url.Parse(next); err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	if strings.HasPrefix(next, "/login") || strings.HasPrefix(next, "/logout") {
		return "/"
	}
	return next
}

func (h *Handler) loginForm(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Users.Len() == 0 {
		http.Redirect(w, r, h.path("/"), http.StatusSeeOther)
		return
	}
	next := safeNext(r.URL.Query().Get("next"))
	if _, ok := h.who(w, r, false); ok {
		http.Redirect(w, r, h.prefix+next, http.StatusSeeOther)
		return
	}
	h.renderLogin(w, http.StatusOK, next, "", "")
}

func (h *Handler) renderLogin(w http.ResponseWriter, status int, next, user, msg string) {
	h.render(w, status, "login", &view{Title: "Sign in", Prefix: h.prefix, Namespace: h.conn.Namespace(),
		Data: loginData{Next: next, User: user, Error: msg}})
}

type loginData struct {
	Next, User, Error string
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Users.Len() == 0 {
		http.Redirect(w, r, h.path("/"), http.StatusSeeOther)
		return
	}
	if !h.sameOrigin(r) {
		h.refuse(w, r, "", "cross-origin login")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	name, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	next := safeNext(r.PostForm.Get("next"))
	ip := h.clientIP(r)
	now := time.Now()
	if wait := max(h.byIP.wait(ip, now), h.byName.wait(name, now)); wait > 0 {
		h.logger.Warn("dashboard: login rate limited", "user", name, "remote", ip)
		secs := int(wait.Seconds() + 0.999)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		h.renderLogin(w, http.StatusTooManyRequests, next, name,
			"Too many failed sign-ins. Wait "+strconv.Itoa(secs)+" s and try again.")
		return
	}
	user, ok := h.verify(r.Context(), name, password)
	if !ok {
		h.byIP.fail(ip, now)
		h.byName.fail(name, now)
		h.logger.Warn("dashboard: failed login", "user", name, "remote", ip)
		h.renderLogin(w, http.StatusUnauthorized, next, name, "Wrong user name or password.")
		return
	}
	h.byName.reset(name)
	id := h.sessions.create(user.Name, user.Role, false, now)
	h.setCookie(w, r, id, int(h.cfg.SessionTTL.Seconds()))
	h.record(r, principal{user: user.Name}, "login", "", "role "+user.Role.String(), true)
	http.Redirect(w, r, h.prefix+next, http.StatusSeeOther)
}

// verify checks a password in constant time; an unknown name is checked
// against a dummy hash of the same cost, so it takes as long.
func (h *Handler) verify(ctx context.Context, name, password string) (User, bool) {
	u, known := h.cfg.Users.Lookup(name)
	hash := h.dummyHash
	if known {
		hash = u.hash
	}
	if len(password) > maxPassword {
		password = password[:maxPassword]
	}
	select { // bound the CPU that unauthenticated requests can spend on bcrypt
	case h.bcryptSem <- struct{}{}:
		defer func() { <-h.bcryptSem }()
	case <-ctx.Done():
		return User{}, false
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	return u, known && err == nil && password != ""
}

// basicAuth accepts HTTP Basic credentials of any user, for Prometheus
// scrapes of /metrics; it shares the login rate limit.
func (h *Handler) basicAuth(r *http.Request) (string, int) {
	name, password, ok := r.BasicAuth()
	if !ok {
		return "", http.StatusUnauthorized
	}
	ip, now := h.clientIP(r), time.Now()
	if max(h.byIP.wait(ip, now), h.byName.wait(name, now)) > 0 {
		return "", http.StatusTooManyRequests
	}
	if _, ok := h.verify(r.Context(), name, password); !ok {
		h.byIP.fail(ip, now)
		h.byName.fail(name, now)
		h.logger.Warn("dashboard: failed basic auth on /metrics", "user", name, "remote", ip)
		return "", http.StatusUnauthorized
	}
	return name, http.StatusOK
}

func (h *Handler) metricsPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.who(w, r, false); !ok && h.cfg.Users.Len() > 0 {
		if _, status := h.basicAuth(r); status != http.StatusOK {
			w.Header().Set("WWW-Authenticate", `Basic realm="resq metrics", charset="UTF-8"`)
			http.Error(w, http.StatusText(status), status)
			return
		}
	}
	h.metrics.Handler().ServeHTTP(w, r)
}

func (h *Handler) logoutForm(w http.ResponseWriter, r *http.Request, p principal) {
	h.renderPage(w, r, p, "logout", "Sign out", "", nil)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request, p principal) {
	h.sessions.delete(p.sid)
	h.setCookie(w, r, "", -1)
	h.record(r, p, "logout", "", "", true)
	if h.cfg.Users.Len() == 0 {
		http.Redirect(w, r, h.path("/"), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, h.path("/login"), http.StatusSeeOther)
}

// record writes one audit entry (and a log line). When Redis refuses the
// entry (a Redis user without write access to the audit log, Redis down),
// the error is logged and kept for the request, so that done tells the
// person who acted that their action is missing from the audit log.
func (h *Handler) record(r *http.Request, p principal, action, target, detail string, ok bool) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	h.logger.Info("dashboard: "+action, "user", p.user, "target", target, "detail", detail, "ok", ok, "remote", h.clientIP(r))
	if err := h.admin.RecordAudit(ctx, resq.AuditEntry{User: p.user, Action: action, Target: target,
		Detail: detail, Remote: h.clientIP(r), OK: ok}); err != nil {
		h.logger.Error("dashboard: cannot write the audit log", "action", action, "error", err)
		if st, _ := r.Context().Value(auditKey{}).(*auditState); st != nil && st.err == nil {
			st.err = err
		}
		why := "The audit log cannot be written, so sign-ins and actions are not being recorded: " + err.Error()
		if resq.IsPermanent(err) {
			why += ". The dashboard's Redis user may not write its namespace (a read-only ACL user?); give it the admin role's rules (resq acl --role admin) to record actions."
		}
		h.auditDown.Store(&why)
		return
	}
	if h.auditDown.Load() != nil {
		h.auditDown.Store(nil)
	}
}

// auditKey holds an action request's *auditState in its context.
type auditKey struct{}

// auditState is the first audit write that failed during one action.
type auditState struct{ err error }

// auditFailure is the text done adds to an action's message when its audit
// entry could not be written ("" when it was).
func auditFailure(r *http.Request) string {
	st, _ := r.Context().Value(auditKey{}).(*auditState)
	if st == nil || st.err == nil {
		return ""
	}
	return " The audit log could not record this action (" + st.err.Error() + "): give the dashboard's Redis user " +
		"write access to resq's audit log (see docs/operations.md, section Audit log), or keep your own record of this change."
}
