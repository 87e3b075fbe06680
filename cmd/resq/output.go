package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/resq-go/resq"
)

// connect opens the connection described by the global flags. Open does no
// I/O; the first command reports an unreachable Redis.
func (c *cli) connect() (*resq.Conn, error) {
	cfg := resq.ConnConfig{URL: string(c.g.redis), Namespace: c.g.namespace, Logger: c.logger}
	if err := c.g.conn.apply(&cfg); err != nil {
		return nil, err
	}
	conn, err := resq.Open(cfg)
	if err != nil {
		// resq.Open's message already hides the password.
		return nil, usagef("", "--redis: %v", err)
	}
	return conn, nil
}

// printJSON writes v as the command's one JSON document.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON output: %w", err)
	}
	return nil
}

// table writes aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cols ...string) {
	for i, col := range cols {
		cols[i] = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(col)
	}
	fmt.Fprintln(t.tw, strings.Join(cols, "\t"))
}

func (t *table) flush() { t.tw.Flush() }

// firstLine returns s's first line, cut to at most n characters.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > n {
		r := []rune(s)
		s = string(r[:n-1]) + "…"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// compactJSON renders raw JSON on one line.
func compactJSON(raw []byte) string {
	if len(raw) == 0 {
		return "[]"
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// progress shows "verb done/total" updated in place on a terminal, and
// nothing otherwise.
type progress struct {
	w       io.Writer
	on      bool
	verb    string
	last    time.Time
	printed bool
}

func (c *cli) newProgress(verb string) *progress {
	return &progress{w: c.stderr, on: c.sys.StderrIsTerminal, verb: verb}
}

func (p *progress) update(done, total int) {
	if !p.on {
		return
	}
	now := time.Now()
	if p.printed && done < total && now.Sub(p.last) < 100*time.Millisecond {
		return
	}
	p.last, p.printed = now, true
	fmt.Fprintf(p.w, "\r%s %d/%d", p.verb, done, total)
}

// finish clears the progress line.
func (p *progress) finish() {
	if p.on && p.printed {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.printed = false
	}
}
