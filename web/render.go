package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/resq-go/resq"
)

// view is what every page template gets.
type view struct {
	Title     string
	Tab       string // highlighted tab
	Prefix    string
	User      string
	Role      string
	Admin     bool
	Anonymous bool
	CSRF      string
	Namespace string
	Redis     string
	Flash     string
	FlashErr  bool
	AuditDown string // why the audit log cannot be written, if it cannot
	Now       time.Time
	Data      any
}

type templates struct {
	pages map[string]*template.Template
}

// pageNames are the templates under assets/templates that define "content".
var pageNames = []string{"overview", "working", "queues", "queue", "workers", "worker", "failed", "failure",
	"stats", "redis", "keys", "audit", "login", "logout", "error", "delayed", "delayed_at", "delayed_search", "schedule"}

var funcs = template.FuncMap{
	"ago":      ago,
	"when":     when,
	"short":    resq.ShortWorker,
	"trunc":    truncate,
	"firstln":  firstLine,
	"num":      num,
	"add":      func(a, b int64) int64 { return a + b },
	"join":     strings.Join,
	"duration": humanDuration,
	"fromnow":  fromNow,
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[fmt.Sprint(kv[i])] = kv[i+1]
		}
		return m
	},
	"plural": func(n any, one, many string) string {
		if num(n) == "1" {
			return one
		}
		return many
	},
}

// parseTemplates parses every page; path builds links under the handler's
// prefix.
func parseTemplates(path func(base string, segs ...string) string) (*templates, error) {
	base, err := template.New("base").Funcs(funcs).Funcs(template.FuncMap{"path": path}).
		ParseFS(assets, "assets/templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: parse layout: %w", err)
	}
	t := &templates{pages: map[string]*template.Template{}}
	for _, n := range pageNames {
		c, err := base.Clone()
		if err != nil {
			return nil, err
		}
		if _, err := c.ParseFS(assets, "assets/templates/"+n+".html"); err != nil {
			return nil, fmt.Errorf("web: parse %s: %w", n, err)
		}
		t.pages[n] = c
	}
	return t, nil
}

// render executes template name ("layout" around the page's "content", or
// the page's "fragment" when fragment is set) into a buffer and writes it.
func (h *Handler) renderTemplate(w http.ResponseWriter, status int, name, entry string, v *view) {
	t, ok := h.tmpl.pages[name]
	if !ok {
		http.Error(w, "no template "+name, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, entry, v); err != nil {
		h.logger.Error("dashboard: render", "template", name, "error", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, v *view) {
	h.renderTemplate(w, status, name, "layout", v)
}

// renderPage renders a full page for principal p.
func (h *Handler) renderPage(w http.ResponseWriter, r *http.Request, p principal, name, title, tab string, data any) {
	h.render(w, http.StatusOK, name, h.newView(p, title, tab, data))
}

func (h *Handler) newView(p principal, title, tab string, data any) *view {
	v := &view{Title: title, Tab: tab, Prefix: h.prefix, User: p.user, Role: p.role.String(),
		Admin: p.role >= RoleAdmin, Anonymous: p.anonymous, CSRF: p.csrf, Namespace: h.conn.Namespace(),
		Redis: h.conn.String(), Flash: p.flash, FlashErr: p.flashErr, Now: time.Now(), Data: data}
	if why := h.auditDown.Load(); why != nil {
		v.AuditDown = *why
	}
	return v
}

// fail shows an error page (Redis unreachable, bad input).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, p principal, status int, msg string, err error) {
	if err != nil {
		h.logger.Error("dashboard: "+msg, "path", r.URL.Path, "error", err)
		msg += ": " + err.Error()
	}
	v := h.newView(p, http.StatusText(status), "", msg)
	h.render(w, status, "error", v)
}

// Argument display limits (bytes of JSON).
const (
	argsListLimit   = 200
	argsDetailLimit = 4000
)

// redactArgs is the one function that turns a job's arguments into text for
// the dashboard. job comes from Admin, whose Redactor has already replaced
// secret fields with resq.Redacted and encrypted args with
// resq.EncryptedArgs, and which marks as Encrypted any payload carrying
// ciphertext, even one it cannot decode. Encrypted jobs show as
// "encrypted"; the raw bytes of an invalid payload are never shown (they
// cannot be parsed, so they cannot be redacted); other arguments are shown as
// compact JSON, cut at limit bytes.
func redactArgs(job resq.JobView, limit int) string {
	if job.Encrypted {
		return "encrypted"
	}
	var text string
	switch {
	case job.Invalid != "":
		text = "invalid payload (" + strconv.Itoa(len(job.Raw)) + " bytes, not shown)"
	case len(job.Args) == 0:
		text = "[]"
	default:
		var buf bytes.Buffer
		if err := json.Compact(&buf, job.Args); err == nil {
			text = buf.String()
		} else {
			text = string(job.Args)
		}
	}
	return truncate(text, limit)
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if n <= 0 || len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "… (" + strconv.Itoa(len(s)) + " bytes)"
}

func firstLine(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	switch {
	case d < -time.Second:
		return "in the future"
	case d < time.Second:
		return "just now"
	}
	return humanDuration(d) + " ago"
}

// fromNow is "in 5 min" for a future time, "5 min ago" for a past one.
func fromNow(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Until(t)
	switch {
	case d >= time.Second:
		return "in " + humanDuration(d)
	case d > -time.Second:
		return "now"
	}
	return humanDuration(-d) + " ago"
}

func humanDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + " h"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + " days"
	}
}

// num formats an integer with thin thousands separators.
func num(v any) string {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	default:
		return fmt.Sprint(v)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// pager is the "Showing X to Y of N" line and its links.
type pager struct {
	From, To, Total int64
	Prev, Next      string // links; empty when there is none
}

func newPager(start, shown, total int64, link func(start int64) string, per int64) pager {
	p := pager{Total: total}
	if shown > 0 {
		p.From, p.To = start+1, start+shown
	}
	if start > 0 {
		p.Prev = link(max(start-per, 0))
	}
	if start+per < total {
		p.Next = link(start + per)
	}
	return p
}
