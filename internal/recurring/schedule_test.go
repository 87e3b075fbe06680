package recurring

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"30s": 30 * time.Second, "15m": 15 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour,
		"1w": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute, "1h 30m": 90 * time.Minute,
		"2 hours": 2 * time.Hour, "15mins": 15 * time.Minute, "1.5h": 90 * time.Minute,
		"1m30": 90 * time.Second, "90": 90 * time.Second, "1M": 30 * 24 * time.Hour,
		"1y": 365 * 24 * time.Hour, "PT15M": 15 * time.Minute, "P1DT2H": 26 * time.Hour,
		"1 hour and 5 minutes": 65 * time.Minute, "2D": 48 * time.Hour,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "5x", "0s", "0.5s", "-1m", "1.5s", "P", "PT", "5mo", "1ms"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, d)
		}
	}
}

func TestEveryGrid(t *testing.T) {
	t.Parallel()
	s := mustYAML(t, `
a: {every: 15m, class: A, queue: q}
b: {every: ["1h", {first_in: "120s"}], class: B, queue: q}
c: {every: ["1d", {first_at: "2030-01-01T06:00:00Z", times: 3}], class: C, queue: q}
w: {every: 1w, class: W, queue: q}
`)
	from := time.Date(2024, 1, 15, 10, 23, 45, 0, time.UTC) // a Monday
	for name, want := range map[string][]string{
		"a": {"2024-01-15T10:30:00Z", "2024-01-15T10:45:00Z"},
		// first_in shifts the grid: every hour at :02:00, not 120s after load.
		"b": {"2024-01-15T11:02:00Z", "2024-01-15T12:02:00Z"},
		"c": {"2030-01-01T06:00:00Z", "2030-01-02T06:00:00Z"},
		"w": {"2024-01-22T00:00:00Z", "2024-01-29T00:00:00Z"},
	} {
		at := from
		for _, w := range want {
			n, ok := s[name].Next(at)
			if !ok || n.Format(time.RFC3339) != w {
				t.Errorf("%s: Next(%v) = %v, want %s", name, at, n, w)
			}
			at = n
		}
	}
	if w := s["c"].Warnings; len(w) != 1 || !strings.Contains(w[0], `"times"`) {
		t.Errorf("warnings of c = %q", w)
	}
	// The grid is the same whenever it is computed (two schedulers, a
	// restart): Next from any point inside a period gives the same tick.
	n1, _ := s["b"].Next(time.Date(2024, 1, 15, 10, 2, 1, 0, time.UTC))
	n2, _ := s["b"].Next(time.Date(2024, 1, 15, 11, 1, 59, 0, time.UTC))
	if !n1.Equal(n2) {
		t.Errorf("every grid differs: %v vs %v", n1, n2)
	}
}

func mustYAML(t *testing.T, src string) map[string]*Schedule {
	t.Helper()
	s, err := LoadYAML([]byte(src), ParseOptions{Location: time.UTC})
	if err != nil {
		t.Fatalf("LoadYAML: %v", err)
	}
	return s
}

// A schedule file as Ruby users write it: args normalised per §9.7 with
// Ruby's JSON bytes (key order, floats, big integers, YAML 1.1 booleans),
// class defaulting to the name, cron winning over every, env lists.
func TestLoadYAMLRubyFile(t *testing.T) {
	t.Parallel()
	s := mustYAML(t, `
defaults: &defaults
  queue: low
  description: "shared"
clear_cache:
  <<: *defaults
  cron: "0 */2 * * *"
  every: 1m
  args:
    user_id: 42
    kind: "</b>&"
    ratio: 1.0
    big: 1180591620717411303424
    flag: yes
    label: 'yes'
    none: ~
queue_documents_for_indexing:
  every: ["30s", {first_in: "120s"}]
  class: "QueueDocuments"
  queue: high
  args: [1, "two", [3]]
  description: "This job queues all content for indexing in solr"
  rails_env: "production, staging"
scalar_args:
  every: 1h
  queue: q
  args: /tmp/poop
no_args:
  every: 1h
  queue: q
  args:
custom:
  cron: "@daily"
  class: SomeJob
  custom_job_class: "Custom::Wrapper"
  queue: q
  env: production
  parameters:
    user_id: {description: "the user", default: 1}
manual_only:
  class: ManualJob
  queue: q
`)
	cc := s["clear_cache"]
	if cc.Class != "clear_cache" || cc.Queue != "low" || cc.Description != "shared" || cc.Cron == nil || cc.Every != nil {
		t.Errorf("clear_cache = %+v", cc)
	}
	if got, want := string(cc.Args), `[{"user_id":42,"kind":"</b>&","ratio":1.0,"big":1180591620717411303424,"flag":true,"label":"yes","none":null}]`; got != want {
		t.Errorf("args:\n got %s\nwant %s", got, want)
	}
	q := s["queue_documents_for_indexing"]
	if string(q.Args) != `[1,"two",[3]]` || q.Class != "QueueDocuments" || q.Every == nil || q.Every.Period != 30*time.Second {
		t.Errorf("queue_documents = %+v", q)
	}
	if !q.HasEnv || strings.Join(q.Envs, "|") != "production|staging" {
		t.Errorf("envs = %v", q.Envs)
	}
	if got := string(s["scalar_args"].Args); got != `["/tmp/poop"]` {
		t.Errorf("scalar args = %s", got)
	}
	if got := string(s["no_args"].Args); got != `[]` {
		t.Errorf("null args = %s", got)
	}
	c := s["custom"]
	if c.JobClass() != "Custom::Wrapper" || string(c.Parameters) != `{"user_id":{"description":"the user","default":1}}` {
		t.Errorf("custom = %+v", c)
	}
	if m := s["manual_only"]; m.Fires() {
		t.Errorf("manual_only fires")
	}
	// The stored form keeps every key but persist, in order.
	if got := string(c.Config); !strings.HasPrefix(got, `{"cron":"@daily","class":"SomeJob","custom_job_class":"Custom::Wrapper","queue":"q","env":"production",`) {
		t.Errorf("config = %s", got)
	}
}

// The environment filter of §9.8.
func TestEnvFilter(t *testing.T) {
	t.Parallel()
	s := mustYAML(t, `
both: {every: 1h, queue: q, rails_env: "production,staging"}
spaced: {every: 1h, queue: q, env: "production staging"}
railswins: {every: 1h, queue: q, rails_env: staging, env: production}
always: {every: 1h, queue: q}
`)
	for _, c := range []struct {
		name, env string
		want      bool
	}{
		{"both", "production", true}, {"both", "staging", true}, {"both", "development", false}, {"both", "", false},
		{"spaced", "staging", true}, {"spaced", "prod", false},
		{"railswins", "staging", true}, {"railswins", "production", false},
		{"always", "", true}, {"always", "anything", true},
	} {
		if got := s[c.name].ActiveIn(c.env); got != c.want {
			t.Errorf("%s.ActiveIn(%q) = %v, want %v", c.name, c.env, got, c.want)
		}
	}
}

// Persistent configs as Ruby's set_schedule stores them.
func TestParseJSONPersistent(t *testing.T) {
	t.Parallel()
	s, err := ParseJSON("clear_cache", []byte(`{"class":"ClearCache","every":"1h","queue":"low","args":{"b":2,"a":[1.5,1e20]}}`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Class != "ClearCache" || s.Every.Period != time.Hour || string(s.Args) != `[{"b":2,"a":[1.5,1e20]}]` {
		t.Errorf("schedule = %+v args %s", s, s.Args)
	}
	s, err = ParseJSON("x", []byte(`{"cron":"0 5 * * *","args":null,"persist":true}`), ParseOptions{})
	if err != nil || string(s.Args) != "[]" || s.Class != "x" || !s.Persist || string(s.Config) != `{"cron":"0 5 * * *","args":null}` {
		t.Errorf("schedule = %+v, %v", s, err)
	}
	s, err = ParseJSON("y", []byte(`{"every":["30s",{"first_in":"120s"}],"queue":"q","args":7}`), ParseOptions{})
	if err != nil || s.Every.Anchor.Sub(everyAnchor) != 120*time.Second || string(s.Args) != "[7]" {
		t.Errorf("every with first_in = %+v, %v", s, err)
	}
}

// Bad schedules fail with the schedule, the field and what to do; the good
// ones of the file still load.
func TestScheduleErrors(t *testing.T) {
	t.Parallel()
	good, err := LoadYAML([]byte(`
ok: {cron: "0 * * * *", queue: q}
badcron: {cron: "0 25 * * *", queue: q}
badevery: {every: "soon", queue: q}
badclass: {cron: "0 * * * *", class: [1]}
notamap: "0 * * * *"
badenv: {every: 1h, rails_env: {a: 1}}
`), ParseOptions{})
	if len(good) != 1 || good["ok"] == nil {
		t.Errorf("good schedules = %v", good)
	}
	for _, want := range []string{
		`schedule "badcron", field "cron": cron "0 25 * * *": hour field "25"`,
		`schedule "badevery", field "every": duration "soon"`,
		`schedule "badclass", field "class": is a list`,
		`schedule "notamap": the config is a string`,
		`schedule "badenv", field "rails_env"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v\nlacks %q", err, want)
		}
	}
	var se *Error
	if !errors.As(err, &se) {
		t.Errorf("error is not a *Error: %T", err)
	}
	for src, want := range map[string]string{
		"- a\n- b":         "must be a map from schedule name",
		"a: [":             "not valid YAML",
		"a: {every: .inf}": "cannot be written as JSON",
	} {
		if _, err := LoadYAML([]byte(src), ParseOptions{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadYAML(%q) = %v, want %q", src, err, want)
		}
	}
	if _, err := ParseJSON("j", []byte(`{"cron":"* * * * *","cron":"1 * * * *"}`), ParseOptions{}); err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Errorf("duplicate keys: %v", err)
	}
	if s, err := ParseJSON("w", []byte(`{"crom":"* * * * *"}`), ParseOptions{}); err != nil || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], `unknown key "crom"`) {
		t.Errorf("typo warning: %+v, %v", s, err)
	}
}

func TestSpecJSON(t *testing.T) {
	t.Parallel()
	b, err := Spec{Class: "ClearCache", Queue: "low", Every: "1h", Args: []byte(`{"a":1}`)}.JSON("clear_cache", ParseOptions{})
	if err != nil || string(b) != `{"class":"ClearCache","queue":"low","every":"1h","args":{"a":1}}` {
		t.Errorf("JSON = %s, %v", b, err)
	}
	if _, err := (Spec{Cron: "bad"}).JSON("x", ParseOptions{}); err == nil || !strings.Contains(err.Error(), `schedule "x", field "cron"`) {
		t.Errorf("bad cron: %v", err)
	}
}

func TestLoadYAMLEmpty(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "# nothing\n", "---\n"} {
		if s, err := LoadYAML([]byte(src), ParseOptions{}); err != nil || len(s) != 0 {
			t.Errorf("LoadYAML(%q) = %v, %v", src, s, err)
		}
	}
}

// An alias bomb fails with an error instead of expanding 9^9 values.
func TestLoadYAMLAliasBomb(t *testing.T) {
	t.Parallel()
	src := "a: &a [x,x,x,x,x,x,x,x,x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i"} {
		src += n + ": &" + n + " [*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + ",*" + prev + "]\n"
		prev = n
	}
	if _, err := LoadYAML([]byte(src), ParseOptions{}); err == nil || !strings.Contains(err.Error(), "aliases") {
		t.Errorf("alias bomb: %v", err)
	}
}
