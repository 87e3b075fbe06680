package recurring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/resq-go/resq/internal/wire"
)

// Schedule is one recurring schedule in resque-scheduler's format (spec
// §9.8), parsed.
type Schedule struct {
	Name string
	// Class is the job class: the "class" value, else the schedule's name.
	Class string
	// Queue is the "queue" value; empty when the config has none (Ruby then
	// asks the class; see Config.QueueFunc).
	Queue string
	// Args is the argument list as a JSON array, normalised as
	// resque-scheduler does (spec §9.7): a map becomes one argument, null or
	// missing becomes [], a list is the list, any other value one argument.
	// Object key order and Ruby's number and string forms are kept.
	Args        json.RawMessage
	Description string
	// Cron is set when the config has "cron" (which wins over "every");
	// Every when it has only "every". Neither: the schedule never fires
	// (manual "enqueue now" only).
	Cron  *Cron
	Every *Every
	// Envs lists the environments of "rails_env" (or "env"); HasEnv tells
	// whether the key was present at all.
	Envs   []string
	HasEnv bool
	// CustomJobClass is "custom_job_class"; when set (and not
	// "Resque::Job") the job is pushed under that class (spec §9.7 step 4).
	CustomJobClass string
	// Parameters is the raw "parameters" map (name → {description,
	// default}), shown by the UI; nil when absent.
	Parameters json.RawMessage
	// Persist is the "persist" flag (only meaningful when setting a
	// schedule): store it in Redis.
	Persist bool
	// Config is the config as a JSON object without "persist": what
	// Store.SetPersistentSchedule stores and Ruby's Resque.schedule shows.
	Config json.RawMessage
	// Warnings lists what was accepted but ignored (unknown keys, rufus
	// options resq does not implement).
	Warnings []string
}

// Fires reports whether the schedule has fire times (cron or every).
func (s *Schedule) Fires() bool { return s.Cron != nil || s.Every != nil }

// ActiveIn applies the environment filter of resque-scheduler: a schedule
// without rails_env/env is active everywhere; one with it only in a
// scheduler whose environment is in its list, so a scheduler with no
// environment ("") skips every such schedule.
func (s *Schedule) ActiveIn(env string) bool {
	if !s.HasEnv {
		return true
	}
	return env != "" && slices.Contains(s.Envs, env)
}

// Next returns the schedule's first fire time strictly after after (UTC,
// whole seconds), false when it never fires again.
func (s *Schedule) Next(after time.Time) (time.Time, bool) {
	switch {
	case s.Cron != nil:
		return s.Cron.Next(after)
	case s.Every != nil:
		return s.Every.Next(after)
	}
	return time.Time{}, false
}

// JobClass is the class the pushed job carries: custom_job_class when set
// and not Resque::Job, else Class (spec §9.7; a Go scheduler cannot load
// Ruby classes, so it pushes the job as Job.create would).
func (s *Schedule) JobClass() string {
	if s.CustomJobClass != "" && s.CustomJobClass != "Resque::Job" {
		return s.CustomJobClass
	}
	return s.Class
}

// Error is a schedule that cannot be used. Its message names the schedule,
// the field, what is wrong and what to do.
type Error struct {
	Name    string // the schedule's name ("" for a problem with the whole file)
	Field   string // the config key, "" when not about one key
	Problem string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("schedule")
	if e.Name != "" {
		fmt.Fprintf(&b, " %q", e.Name)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, ", field %q", e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Problem)
	return b.String()
}

// ParseOptions controls how configs are read.
type ParseOptions struct {
	// Location is the zone of cron expressions that name none. Default
	// time.Local, as rufus-scheduler (set TZ for the process, or write the
	// zone after the expression).
	Location *time.Location
}

func (o ParseOptions) loc() *time.Location {
	if o.Location == nil {
		return time.Local
	}
	return o.Location
}

// MaxConfigBytes bounds a schedule file or one persistent config.
const MaxConfigBytes = 4 << 20

// LoadYAML reads a schedule file in resque-scheduler's format: a top-level
// map from schedule name to config (the file Ruby users pass to
// Resque.schedule = YAML.load_file(…)). JSON is YAML, so a JSON file of the
// same shape loads too. It returns every valid schedule and, when some are
// not, an error joining one *Error per bad schedule: the caller decides
// whether to run with the good ones.
func LoadYAML(data []byte, opts ParseOptions) (map[string]*Schedule, error) {
	if len(data) > MaxConfigBytes {
		return nil, &Error{Problem: fmt.Sprintf("the file is %d bytes; the limit is %d", len(data), MaxConfigBytes)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{Problem: "not valid YAML: " + err.Error()}
	}
	budget := maxYAMLNodes
	root, err := fromYAML(&doc, 0, &budget)
	if err != nil {
		return nil, &Error{Problem: err.Error()}
	}
	switch root.kind {
	case kindNull:
		return map[string]*Schedule{}, nil
	case kindObject:
	default:
		return nil, &Error{Problem: fmt.Sprintf("the file holds %s; it must be a map from schedule name to its config (name:\\n  cron: \"0 * * * *\"\\n  class: MyJob)", root.kind)}
	}
	out := make(map[string]*Schedule, len(root.obj))
	var errs []error
	for _, m := range root.obj {
		s, err := parseConfig(m.key, m.val, opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[m.key] = s
	}
	return out, errors.Join(errs...)
}

// ParseJSON reads one config as stored in persistent_schedules (Ruby's
// encode(config)).
func ParseJSON(name string, data []byte, opts ParseOptions) (*Schedule, error) {
	if len(data) > MaxConfigBytes {
		return nil, &Error{Name: name, Problem: fmt.Sprintf("the config is %d bytes; the limit is %d", len(data), MaxConfigBytes)}
	}
	v, err := decodeJSON(data)
	if err != nil {
		return nil, &Error{Name: name, Problem: "the config is not valid JSON: " + err.Error()}
	}
	return parseConfig(name, v, opts)
}

// knownKeys are the config keys resque-scheduler reads.
var knownKeys = []string{"class", "queue", "args", "cron", "every", "description", "rails_env", "env", "custom_job_class", "parameters", "persist"}

// everyOptions are rufus "every" options: first_in and first_at are
// implemented (as a grid shift/origin); the rest are accepted and ignored
// with a warning.
var everyIgnored = []string{"times", "last_at", "last_in", "tag", "tags", "overlap", "blocking", "mutex", "timeout", "discard_past", "allow_overlapping", "job", "name"}

func parseConfig(name string, v value, opts ParseOptions) (*Schedule, error) {
	bad := func(field, format string, a ...any) error {
		return &Error{Name: name, Field: field, Problem: fmt.Sprintf(format, a...)}
	}
	if name == "" {
		return nil, bad("", "the schedule name is empty; give every schedule a name")
	}
	if v.kind != kindObject {
		return nil, bad("", "the config is %s; it must be a map with cron or every, class, queue, args", v.kind)
	}
	s := &Schedule{Name: name, Class: name, Args: json.RawMessage("[]")}
	text := func(field string) (string, bool, error) {
		f, ok := v.get(field)
		if !ok || f.kind == kindNull {
			return "", false, nil
		}
		if f.kind != kindString {
			return "", true, bad(field, "is %s (%s); write it as a string", f.kind, f.raw)
		}
		return f.str, true, nil
	}
	var err error
	if c, ok, e := text("class"); e != nil {
		return nil, e
	} else if ok {
		if c == "" {
			return nil, bad("class", "is empty; name the job class, or leave the key out to use the schedule name")
		}
		s.Class = c
	}
	if f, ok := v.get("queue"); ok && f.kind != kindNull {
		switch f.kind {
		case kindString:
			s.Queue = f.str
		case kindNumber, kindBool: // Ruby would use its to_s
			s.Queue = string(f.raw)
		default:
			return nil, bad("queue", "is %s; write the queue name as a string", f.kind)
		}
	}
	if f, ok := v.get("args"); ok {
		s.Args = normaliseArgs(f)
	}
	if f, ok := v.get("description"); ok && f.kind != kindNull {
		if f.kind == kindString {
			s.Description = f.str
		} else {
			s.Description = string(f.raw)
		}
	}
	for _, key := range []string{"rails_env", "env"} {
		f, ok := v.get(key)
		if !ok || f.kind == kindNull {
			continue
		}
		s.HasEnv = true
		switch f.kind {
		case kindString:
			s.Envs = splitEnvs(f.str)
		case kindArray:
			for _, e := range f.arr {
				if e.kind != kindString {
					return nil, bad(key, "lists %s; list environment names as strings", e.kind)
				}
				s.Envs = append(s.Envs, splitEnvs(e.str)...)
			}
		default:
			return nil, bad(key, "is %s; write environments as a string such as \"production, staging\"", f.kind)
		}
		break // rails_env wins over env, as config['rails_env'] || config['env']
	}
	if s.CustomJobClass, _, err = text("custom_job_class"); err != nil {
		return nil, err
	}
	if f, ok := v.get("parameters"); ok && f.kind != kindNull {
		if f.kind != kindObject {
			return nil, bad("parameters", "is %s; it must be a map of parameter name to {description, default}", f.kind)
		}
		s.Parameters = f.raw
	}
	if f, ok := v.get("persist"); ok {
		s.Persist = f.kind != kindNull && string(f.raw) != "false"
	}
	if f, ok := v.get("cron"); ok && !emptyInterval(f) {
		if f.kind != kindString {
			return nil, bad("cron", "is %s; write the expression as a string, e.g. \"30 2 * * *\" or \"0 9 * * 1-5 Europe/Berlin\"", f.kind)
		}
		if s.Cron, err = ParseCron(f.str, opts.loc()); err != nil {
			return nil, bad("cron", "%v", err)
		}
	} else if f, ok := v.get("every"); ok && !emptyInterval(f) {
		if s.Every, err = parseEvery(f, opts, &s.Warnings); err != nil {
			return nil, bad("every", "%v", err)
		}
	}
	for _, m := range v.obj {
		if !slices.Contains(knownKeys, m.key) {
			s.Warnings = append(s.Warnings, fmt.Sprintf("schedule %q: unknown key %q is ignored (known: %s)", name, m.key, strings.Join(knownKeys, ", ")))
		}
	}
	// The stored config: the map without "persist", in its order.
	var keep []member
	for _, m := range v.obj {
		if m.key != "persist" {
			keep = append(keep, m)
		}
	}
	s.Config = encodeObject(keep)
	return s, nil
}

// emptyInterval is resque-scheduler's skip test: nil or empty.
func emptyInterval(f value) bool {
	return f.kind == kindNull || f.kind == kindString && f.str == "" || f.kind == kindArray && len(f.arr) == 0
}

func splitEnvs(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v'
	})
}

// normaliseArgs applies spec §9.7: a map is one argument, null → [], a
// list is the list, any other value one argument.
func normaliseArgs(f value) json.RawMessage {
	switch f.kind {
	case kindNull:
		return json.RawMessage("[]")
	case kindArray:
		return f.raw
	}
	return json.RawMessage("[" + string(f.raw) + "]")
}

func parseEvery(f value, opts ParseOptions, warnings *[]string) (*Every, error) {
	var durText string
	var options []member
	switch f.kind {
	case kindString:
		durText = f.str
	case kindNumber:
		durText = f.str // seconds
	case kindArray:
		// [duration, {options}]; like resque-scheduler, anything else uses
		// only the first element.
		d := f.arr[0]
		if d.kind != kindString && d.kind != kindNumber {
			return nil, fmt.Errorf("the first element is %s; write [\"30s\", {\"first_in\": \"120s\"}]", d.kind)
		}
		durText = d.str
		if len(f.arr) == 2 && f.arr[1].kind == kindObject {
			options = f.arr[1].obj
		}
	default:
		return nil, fmt.Errorf("is %s; write a duration such as \"15m\" or [\"15m\", {\"first_in\": \"2m\"}]", f.kind)
	}
	p, err := ParseDuration(durText)
	if err != nil {
		return nil, err
	}
	e := &Every{Period: p, Anchor: everyAnchor, text: string(bytes.TrimSpace(f.raw))}
	if f.kind == kindString {
		e.text = f.str
	}
	for _, o := range options {
		key := strings.TrimPrefix(o.key, ":")
		switch key {
		case "first_in":
			t := o.val.str
			if o.val.kind != kindString && o.val.kind != kindNumber {
				return nil, fmt.Errorf("first_in is %s; write a duration such as \"120s\"", o.val.kind)
			}
			d, err := ParseDuration(t)
			if err != nil {
				return nil, fmt.Errorf("first_in: %v", err)
			}
			e.Anchor = e.Anchor.Add(d)
		case "first_at":
			if o.val.kind != kindString {
				return nil, fmt.Errorf("first_at is %s; write a time such as \"2024-01-15T10:00:00Z\"", o.val.kind)
			}
			t, ok := wire.ParseTime(o.val.str)
			if !ok {
				return nil, fmt.Errorf("first_at %q is not a time; write e.g. \"2024-01-15T10:00:00Z\" or \"2024-01-15 10:00:00 +0100\"", o.val.str)
			}
			t = t.Truncate(time.Second)
			e.Anchor, e.FirstAt = t, t
		default:
			if slices.Contains(everyIgnored, key) {
				*warnings = append(*warnings, fmt.Sprintf("every option %q is not supported by resq and is ignored", key))
			} else {
				*warnings = append(*warnings, fmt.Sprintf("unknown every option %q is ignored", key))
			}
		}
	}
	_ = opts
	return e, nil
}
