package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"
)

// ActiveJobWrapperClass is the Resque class of every job Rails' Resque
// adapter enqueues; its one argument is ActiveJob's serialized job hash
// (docs/protocol.md "ActiveJob jobs").
const ActiveJobWrapperClass = "ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper"

// The marker keys of ActiveJob::Arguments (Rails 6–8). A hash with
// activeJobGlobalID as its only key is a GlobalID; one with
// activeJobSerialized is a value of one of ActiveJob's serializers; the other
// three mark a hash's kind and are dropped on decoding.
const (
	activeJobGlobalID    = "_aj_globalid"
	activeJobSymbolKeys  = "_aj_symbol_keys"
	activeJobRuby2Kw     = "_aj_ruby2_keywords"
	activeJobIndifferent = "_aj_hash_with_indifferent_access"
	activeJobSerialized  = "_aj_serialized"
)

// ActiveJob serializer class names (the value of "_aj_serialized") that
// decode to plain JSON values.
const (
	ajSymbol       = "ActiveJob::Serializers::SymbolSerializer"
	ajModule       = "ActiveJob::Serializers::ModuleSerializer"
	ajTime         = "ActiveJob::Serializers::TimeSerializer"
	ajTimeWithZone = "ActiveJob::Serializers::TimeWithZoneSerializer"
	ajDateTime     = "ActiveJob::Serializers::DateTimeSerializer"
	ajDate         = "ActiveJob::Serializers::DateSerializer"
	ajDuration     = "ActiveJob::Serializers::DurationSerializer"
	ajBigDecimal   = "ActiveJob::Serializers::BigDecimalSerializer"
)

// ActiveJob is ActiveJob's serialized job hash, the one argument of a
// JobWrapper job. Fields missing from the hash (older Rails versions write
// fewer) are zero.
type ActiveJob struct {
	JobClass      string
	JobID         string
	ProviderJobID string
	QueueName     string
	Priority      *int64 // nil when null
	// Arguments are the job's arguments as ActiveJob serialized them; see
	// ActiveJobPlainArgs.
	Arguments           json.RawMessage
	Executions          int64
	ExceptionExecutions map[string]int64
	Locale, Timezone    string
	EnqueuedAt          time.Time
	ScheduledAt         time.Time // zero when null
}

// ActiveJobError says why a JobWrapper job's serialized hash or its
// arguments cannot be used. Reasons name fields and positions, never
// argument values.
type ActiveJobError struct{ Reason string }

func (e *ActiveJobError) Error() string { return "invalid ActiveJob payload: " + e.Reason }

func ajErrorf(format string, a ...any) error {
	return &ActiveJobError{Reason: fmt.Sprintf(format, a...)}
}

// DecodeActiveJob reads a JobWrapper job's args (already split into
// elements): exactly one JSON object with a non-empty string job_class and
// an arguments array; the other fields Rails writes are checked for their
// types when present. Unknown fields are ignored.
func DecodeActiveJob(elems []json.RawMessage) (ActiveJob, error) {
	var aj ActiveJob
	if len(elems) != 1 {
		return aj, ajErrorf("args must hold exactly one element, ActiveJob's serialized job hash; got %d", len(elems))
	}
	raw := bytes.TrimSpace(elems[0])
	if len(raw) == 0 || raw[0] != '{' {
		return aj, ajErrorf("args[0] must be ActiveJob's serialized job hash (a JSON object)")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return aj, ajErrorf("args[0] is not a JSON object: %v", err)
	}
	str := func(key string, dst *string) error {
		v, ok := m[key]
		if !ok || isNull(v) {
			return nil
		}
		if v[0] != '"' || json.Unmarshal(v, dst) != nil {
			return ajErrorf("%s is not a string", key)
		}
		return nil
	}
	integer := func(key string) (*int64, error) {
		v, ok := m[key]
		if !ok || isNull(v) {
			return nil, nil
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return nil, ajErrorf("%s is not an integer", key)
		}
		return &n, nil
	}
	at := func(key string, dst *time.Time) error {
		v, ok := m[key]
		if !ok || isNull(v) {
			return nil
		}
		var s string
		if v[0] == '"' && json.Unmarshal(v, &s) == nil {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return ajErrorf("%s is not an ISO 8601 time", key)
			}
			*dst = t
			return nil
		}
		// Some Rails 7.0 releases wrote scheduled_at as epoch seconds.
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || f < 0 || f > 1e11 {
			return ajErrorf("%s is neither an ISO 8601 time nor epoch seconds", key)
		}
		*dst = time.Unix(0, int64(f*1e9)).UTC()
		return nil
	}
	if err := str("job_class", &aj.JobClass); err != nil {
		return aj, err
	}
	if aj.JobClass == "" {
		return aj, ajErrorf("job_class is missing or empty")
	}
	args, ok := m["arguments"]
	if !ok || len(args) == 0 || args[0] != '[' {
		return aj, ajErrorf("arguments is missing or not an array")
	}
	aj.Arguments = args
	for _, f := range []struct {
		key string
		dst *string
	}{{"job_id", &aj.JobID}, {"provider_job_id", &aj.ProviderJobID}, {"queue_name", &aj.QueueName}, {"locale", &aj.Locale}, {"timezone", &aj.Timezone}} {
		if err := str(f.key, f.dst); err != nil {
			return aj, err
		}
	}
	var err error
	if aj.Priority, err = integer("priority"); err != nil {
		return aj, err
	}
	n, err := integer("executions")
	if err != nil {
		return aj, err
	}
	if n != nil {
		aj.Executions = *n
	}
	if v, ok := m["exception_executions"]; ok && !isNull(v) {
		if v[0] != '{' || json.Unmarshal(v, &aj.ExceptionExecutions) != nil {
			return aj, ajErrorf("exception_executions is not an object of integers")
		}
	}
	if err := at("enqueued_at", &aj.EnqueuedAt); err != nil {
		return aj, err
	}
	if err := at("scheduled_at", &aj.ScheduledAt); err != nil {
		return aj, err
	}
	return aj, nil
}

func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

// PeekActiveJob returns the job_class and job_id of a JobWrapper job's args
// without checking the rest, or "" for what cannot be read (the full
// decoding then reports why).
func PeekActiveJob(args json.RawMessage) (jobClass, jobID string) {
	var one []struct {
		JobClass any `json:"job_class"`
		JobID    any `json:"job_id"`
	}
	if json.Unmarshal(args, &one) != nil || len(one) != 1 {
		return "", ""
	}
	jobClass, _ = one[0].JobClass.(string)
	jobID, _ = one[0].JobID.(string)
	return jobClass, jobID
}

// ajValue is a JSON value with its object keys in order.
type ajValue struct {
	kind  byte   // '{', '[', '"' (string), '0' (number), 't', 'f', 'n'
	text  string // a string's value or a number's text
	keys  []string
	elems []*ajValue // array elements, or object values parallel to keys
}

func parseAJ(raw []byte) (*ajValue, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := parseAJValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

func parseAJValue(dec *json.Decoder) (*ajValue, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		v := &ajValue{kind: byte(t)}
		if t != '[' && t != '{' {
			return nil, fmt.Errorf("unexpected %q", t)
		}
		var seen map[string]bool
		if t == '{' {
			seen = map[string]bool{}
		}
		for dec.More() {
			if t == '{' {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				if seen[k] {
					return nil, errors.New("a JSON object repeats a key")
				}
				seen[k] = true
				v.keys = append(v.keys, k)
			}
			e, err := parseAJValue(dec)
			if err != nil {
				return nil, err
			}
			v.elems = append(v.elems, e)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return v, nil
	case string:
		return &ajValue{kind: '"', text: t}, nil
	case json.Number:
		return &ajValue{kind: '0', text: string(t)}, nil
	case bool:
		if t {
			return &ajValue{kind: 't'}, nil
		}
		return &ajValue{kind: 'f'}, nil
	default:
		return &ajValue{kind: 'n'}, nil
	}
}

func (v *ajValue) get(key string) *ajValue {
	for i, k := range v.keys {
		if k == key {
			return v.elems[i]
		}
	}
	return nil
}

func appendAJ(b []byte, v *ajValue) []byte {
	switch v.kind {
	case '[':
		b = append(b, '[')
		for i, e := range v.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAJ(b, e)
		}
		return append(b, ']')
	case '{':
		b = append(b, '{')
		for i, e := range v.elems {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, v.keys[i])
			b = append(b, ':')
			b = appendAJ(b, e)
		}
		return append(b, '}')
	case '"':
		return appendString(b, v.text)
	case '0':
		return append(b, v.text...)
	case 't':
		return append(b, "true"...)
	case 'f':
		return append(b, "false"...)
	default:
		return append(b, "null"...)
	}
}

// jsonNumber matches the JSON number grammar (BigDecimal#to_s writes
// "0.1234e2", which is one).
var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// ActiveJobPlainArgs decodes ActiveJob's serialized arguments array into the
// plain JSON a handler sees (docs/protocol.md "ActiveJob jobs"):
//
//   - a hash loses its marker keys (_aj_symbol_keys, _aj_ruby2_keywords,
//     _aj_hash_with_indifferent_access): symbol keys become plain keys;
//   - a GlobalID {"_aj_globalid":"gid://…"} becomes the string "gid://…"
//     (nothing is looked up);
//   - Symbol and Module values become their name; Time, TimeWithZone,
//     DateTime and Date values their ISO 8601 text (checked); Duration its
//     number of seconds; BigDecimal a JSON number with its exact digits;
//   - any other serializer (Range, Struct, an application's own) is refused,
//     naming it.
//
// Nothing is evaluated or resolved. Errors name positions, not values.
func ActiveJobPlainArgs(serialized json.RawMessage) (json.RawMessage, error) {
	v, err := parseAJ(serialized)
	if err != nil {
		return nil, ajErrorf("arguments are not valid JSON: %v", err)
	}
	if v.kind != '[' {
		return nil, ajErrorf("arguments is not an array")
	}
	out, err := ajPlain(v, "arguments")
	if err != nil {
		return nil, err
	}
	return appendAJ(nil, out), nil
}

func ajPlain(v *ajValue, path string) (*ajValue, error) {
	switch v.kind {
	case '[':
		out := &ajValue{kind: '[', elems: make([]*ajValue, len(v.elems))}
		for i, e := range v.elems {
			p, err := ajPlain(e, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out.elems[i] = p
		}
		return out, nil
	case '{':
		if gid := v.get(activeJobGlobalID); gid != nil && len(v.keys) == 1 {
			if gid.kind != '"' || len(gid.text) < 6 || gid.text[:6] != "gid://" {
				return nil, ajErrorf("%s: _aj_globalid is not a gid:// string", path)
			}
			return gid, nil
		}
		if s := v.get(activeJobSerialized); s != nil {
			return ajSerialized(v, s, path)
		}
		out := &ajValue{kind: '{'}
		for i, k := range v.keys {
			e := v.elems[i]
			switch k {
			case activeJobSymbolKeys, activeJobRuby2Kw:
				if !isStringArray(e) {
					return nil, ajErrorf("%s: %s is not an array of strings", path, k)
				}
				continue
			case activeJobIndifferent:
				if e.kind != 't' && e.kind != 'f' {
					return nil, ajErrorf("%s: %s is not a boolean", path, k)
				}
				continue
			}
			p, err := ajPlain(e, fmt.Sprintf("%s[member %d]", path, i))
			if err != nil {
				return nil, err
			}
			out.keys = append(out.keys, k)
			out.elems = append(out.elems, p)
		}
		return out, nil
	default:
		return v, nil
	}
}

func isStringArray(v *ajValue) bool {
	if v.kind != '[' {
		return false
	}
	for _, e := range v.elems {
		if e.kind != '"' {
			return false
		}
	}
	return true
}

// ajSerialized decodes a value written by one of ActiveJob's serializers.
func ajSerialized(v, name *ajValue, path string) (*ajValue, error) {
	if name.kind != '"' {
		return nil, ajErrorf("%s: _aj_serialized is not a string", path)
	}
	value := v.get("value")
	str := func(check func(string) bool, what string) (*ajValue, error) {
		if value == nil || value.kind != '"' || check != nil && !check(value.text) {
			return nil, ajErrorf("%s: %s value is not %s", path, name.text, what)
		}
		return &ajValue{kind: '"', text: value.text}, nil
	}
	isTime := func(s string) bool { _, err := time.Parse(time.RFC3339Nano, s); return err == nil }
	isDate := func(s string) bool { _, err := time.Parse(time.DateOnly, s); return err == nil }
	switch name.text {
	case ajSymbol, ajModule:
		return str(func(s string) bool { return s != "" }, "a non-empty string")
	case ajTime, ajTimeWithZone, ajDateTime:
		return str(isTime, "an ISO 8601 time")
	case ajDate:
		return str(isDate, "an ISO 8601 date")
	case ajDuration:
		if value == nil || value.kind != '0' {
			return nil, ajErrorf("%s: %s value is not a number", path, name.text)
		}
		return &ajValue{kind: '0', text: value.text}, nil
	case ajBigDecimal:
		if value == nil || value.kind != '"' || !jsonNumber.MatchString(value.text) {
			return nil, ajErrorf("%s: %s value is not a finite decimal number", path, name.text)
		}
		return &ajValue{kind: '0', text: value.text}, nil
	default:
		return nil, ajErrorf("%s: values of ActiveJob serializer %q are not supported by resq (it decodes Symbol, Module, Time, TimeWithZone, DateTime, Date, Duration and BigDecimal); register a handler for class %s to read the serialized hash as it is", path, truncate(name.text, 128), ActiveJobWrapperClass)
	}
}

// ActiveJobSerializeArgs turns a plain JSON args array into the arguments
// ActiveJob::Arguments.serialize writes for the same Ruby values, string
// keys and all: every object gets "_aj_symbol_keys":[] after its members.
// Objects with a key ActiveJob reserves (_aj_globalid, _aj_serialized, …)
// are refused, as Rails refuses them.
func ActiveJobSerializeArgs(plain json.RawMessage) (json.RawMessage, error) {
	v, err := parseAJ(plain)
	if err != nil {
		return nil, fmt.Errorf("arguments are not valid JSON: %w", err)
	}
	if v.kind != '[' {
		return nil, errors.New("arguments are not a JSON array")
	}
	if err := ajSerialize(v, "arguments"); err != nil {
		return nil, err
	}
	return appendAJ(nil, v), nil
}

func ajSerialize(v *ajValue, path string) error {
	switch v.kind {
	case '[':
		for i, e := range v.elems {
			if err := ajSerialize(e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case '{':
		for i, k := range v.keys {
			switch k {
			case activeJobGlobalID, activeJobSymbolKeys, activeJobRuby2Kw, activeJobIndifferent, activeJobSerialized:
				return fmt.Errorf("%s: key %s is reserved by ActiveJob (Rails refuses to serialize it)", path, k)
			}
			if err := ajSerialize(v.elems[i], fmt.Sprintf("%s[member %d]", path, i)); err != nil {
				return err
			}
		}
		v.keys = append(v.keys, activeJobSymbolKeys)
		v.elems = append(v.elems, &ajValue{kind: '['})
	}
	return nil
}

// NewActiveJob is a job for a Rails worker to run as an ActiveJob, in the
// shape Rails 7.1+ writes.
type NewActiveJob struct {
	JobClass, JobID, QueueName string
	// Arguments are already serialized (ActiveJobSerializeArgs).
	Arguments  json.RawMessage
	EnqueuedAt time.Time
	// ScheduledAt is written for a delayed job; zero writes null.
	ScheduledAt time.Time
	// Locale and Timezone default to "en" and "UTC", Rails' defaults.
	Locale, Timezone string
}

// ActiveJobTime is Rails' Time#utc.iso8601(9): UTC, nine fraction digits, Z.
func ActiveJobTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
}

// EncodeArgs returns the JobWrapper job's args array: one serialized job
// hash, keys in Rails' order.
func (n NewActiveJob) EncodeArgs() json.RawMessage {
	locale, tz := n.Locale, n.Timezone
	if locale == "" {
		locale = "en"
	}
	if tz == "" {
		tz = "UTC"
	}
	b := make([]byte, 0, 256+len(n.Arguments))
	b = append(b, `[{"job_class":`...)
	b = appendString(b, n.JobClass)
	b = append(b, `,"job_id":`...)
	b = appendString(b, n.JobID)
	b = append(b, `,"provider_job_id":null,"queue_name":`...)
	b = appendString(b, n.QueueName)
	b = append(b, `,"priority":null,"arguments":`...)
	if len(n.Arguments) == 0 {
		b = append(b, "[]"...)
	} else {
		b = append(b, n.Arguments...)
	}
	b = append(b, `,"executions":0,"exception_executions":{},"locale":`...)
	b = appendString(b, locale)
	b = append(b, `,"timezone":`...)
	b = appendString(b, tz)
	b = append(b, `,"enqueued_at":`...)
	b = appendString(b, ActiveJobTime(n.EnqueuedAt))
	b = append(b, `,"scheduled_at":`...)
	if n.ScheduledAt.IsZero() {
		b = append(b, "null"...)
	} else {
		b = appendString(b, ActiveJobTime(n.ScheduledAt))
	}
	return append(b, "}]"...)
}
