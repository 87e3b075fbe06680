package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// WorkingOn is the "working on" record stored at worker:<id> while a job runs
// (docs/protocol.md §4.3): {"queue":…,"run_at":…,"payload":…}.
type WorkingOn struct {
	Queue   string
	RunAt   string
	Payload json.RawMessage
}

// RecordPrefix is the part of a working-on record before the payload bytes;
// the fetch script appends the payload and a closing brace.
func RecordPrefix(queue, runAt string) string {
	b := append([]byte(`{"queue":`), appendString(nil, queue)...)
	b = append(b, `,"run_at":`...)
	b = appendString(b, runAt)
	b = append(b, `,"payload":`...)
	return string(b)
}

// EncodeWorkingOn builds a working-on record.
func EncodeWorkingOn(w WorkingOn) []byte {
	b := []byte(RecordPrefix(w.Queue, w.RunAt))
	b = append(b, w.Payload...)
	return append(b, '}')
}

// DecodeWorkingOn parses a working-on record written by Ruby, node-resque,
// goworker or resq. The payload is kept as raw bytes.
func DecodeWorkingOn(raw []byte) (WorkingOn, error) {
	var r struct {
		Queue   string          `json:"queue"`
		RunAt   json.RawMessage `json:"run_at"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return WorkingOn{}, err
	}
	w := WorkingOn{Queue: r.Queue, Payload: r.Payload}
	var s string
	if json.Unmarshal(r.RunAt, &s) == nil {
		w.RunAt = s
	} else {
		w.RunAt = string(r.RunAt)
	}
	return w, nil
}

// Failure is one failure record (docs/protocol.md §5.1).
type Failure struct {
	FailedAt  string
	Payload   json.RawMessage // the job payload object as popped
	Exception string
	Error     string
	Backtrace []string
	Worker    string
	Queue     string
	RetriedAt string
	// Attempts, when positive, is how many times the job ran under a retry
	// policy before this failure was recorded ("attempts", which Ruby's
	// Resque::Failure ignores).
	Attempts int
}

// Encode writes a failure record in Ruby's key order.
func (f Failure) Encode() []byte {
	b := make([]byte, 0, 128+len(f.Payload)+len(f.Error))
	b = append(b, `{"failed_at":`...)
	b = appendString(b, f.FailedAt)
	b = append(b, `,"payload":`...)
	if len(f.Payload) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, f.Payload...)
	}
	b = append(b, `,"exception":`...)
	b = appendString(b, f.Exception)
	b = append(b, `,"error":`...)
	b = appendString(b, strings.ToValidUTF8(f.Error, "?"))
	b = append(b, `,"backtrace":[`...)
	for i, l := range f.Backtrace {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, l)
	}
	b = append(b, `],"worker":`...)
	b = appendString(b, f.Worker)
	b = append(b, `,"queue":`...)
	b = appendString(b, f.Queue)
	if f.RetriedAt != "" {
		b = append(b, `,"retried_at":`...)
		b = appendString(b, f.RetriedAt)
	}
	if f.Attempts > 0 {
		b = append(b, `,"attempts":`...)
		b = strconv.AppendInt(b, int64(f.Attempts), 10)
	}
	return append(b, '}')
}

// SetFailurePayload returns the failure record with its "payload" replaced
// by payload; every other field keeps its place and bytes.
func SetFailurePayload(record []byte, payload json.RawMessage) ([]byte, error) {
	return SetField(record, "payload", payload)
}

// DecodeFailure reads a failure record written by any implementation.
// Missing fields are left empty; a backtrace that is not a string array is
// ignored.
func DecodeFailure(raw []byte) (Failure, error) {
	var r struct {
		FailedAt  json.RawMessage `json:"failed_at"`
		Payload   json.RawMessage `json:"payload"`
		Exception json.RawMessage `json:"exception"`
		Error     json.RawMessage `json:"error"`
		Backtrace json.RawMessage `json:"backtrace"`
		Worker    json.RawMessage `json:"worker"`
		Queue     json.RawMessage `json:"queue"`
		RetriedAt json.RawMessage `json:"retried_at"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return Failure{}, err
	}
	f := Failure{Payload: r.Payload}
	f.FailedAt = looseString(r.FailedAt)
	f.Exception = looseString(r.Exception)
	f.Error = looseString(r.Error)
	f.Worker = looseString(r.Worker)
	f.Queue = looseString(r.Queue)
	f.RetriedAt = looseString(r.RetriedAt)
	_ = json.Unmarshal(r.Backtrace, &f.Backtrace)
	return f, nil
}

// looseString reads a JSON string, or renders any other JSON value as text.
func looseString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// InvalidPayloadObject wraps bytes that are not a JSON object so that a
// failure record stays valid JSON and the original bytes are kept in full:
// {"class":"","args":[],"raw":"<original>"}.
func InvalidPayloadObject(raw []byte) json.RawMessage {
	b := []byte(`{"class":"","args":[],"raw":`)
	if utf8.Valid(raw) {
		b = appendString(b, string(raw))
	} else {
		b = appendString(b, strings.ToValidUTF8(string(raw), "\ufffd"))
	}
	return append(b, '}')
}

// DeadJobPayload is the payload to record when a dead worker's "working on"
// record does not hold a job object: the fetch stores a non-object payload
// as a JSON string, whose text is kept; anything else keeps the whole
// record. Either way the result is a valid payload object
// (InvalidPayloadObject).
func DeadJobPayload(record []byte, rec WorkingOn, decErr error) json.RawMessage {
	var text string
	if decErr == nil && json.Unmarshal(rec.Payload, &text) == nil {
		return InvalidPayloadObject([]byte(text))
	}
	return InvalidPayloadObject(record)
}

// RawOfInvalid returns the original bytes kept by InvalidPayloadObject.
func RawOfInvalid(payload json.RawMessage) ([]byte, bool) {
	var r struct {
		Class string           `json:"class"`
		Raw   *json.RawMessage `json:"raw"`
	}
	if json.Unmarshal(payload, &r) != nil || r.Class != "" || r.Raw == nil {
		return nil, false
	}
	var s string
	if json.Unmarshal(*r.Raw, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// SetField returns the JSON object obj with field name set to value: replaced
// in place if present, appended at the end otherwise. Key order, formatting
// of other values and unknown fields are kept.
func SetField(obj []byte, name string, value json.RawMessage) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(obj))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	out := []byte{'{'}
	found := false
	n := 0
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if key == name {
			if found {
				continue
			}
			v, found = value, true
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = appendString(out, key)
		out = append(out, ':')
		out = append(out, v...)
		n++
	}
	if !found {
		if n > 0 {
			out = append(out, ',')
		}
		out = appendString(out, name)
		out = append(out, ':')
		out = append(out, value...)
	}
	return append(out, '}'), nil
}

// WorkerID is a parsed worker id. Ruby's rule (docs/protocol.md §4.1): host is the text
// before the first colon, pid the leading digits of the second part, and the
// rest, split on commas, the queues.
type WorkerID struct {
	Host   string
	PID    int
	PIDStr string
	Queues []string
	// Slot is resq's slot number from a "host:pid:queues:N" id (0 if none).
	Slot int
}

// ParseWorkerID parses ids of Ruby ("h:1:a,b"), node ("h:1+2:a") and goworker
// ("h:1-0:a") workers. ok is false when the id has fewer than three parts.
func ParseWorkerID(id string) (WorkerID, bool) {
	parts := strings.SplitN(id, ":", 3)
	if len(parts) < 3 {
		return WorkerID{}, false
	}
	w := WorkerID{Host: parts[0], PIDStr: parts[1]}
	digits := parts[1]
	for i, c := range digits {
		if c < '0' || c > '9' {
			digits = digits[:i]
			break
		}
	}
	w.PID, _ = strconv.Atoi(digits)
	rest := parts[2]
	if i := strings.LastIndexByte(rest, ':'); i > 0 {
		if n, err := strconv.Atoi(rest[i+1:]); err == nil && n > 0 && !strings.HasPrefix(rest[i+1:], "0") {
			w.Slot, rest = n, rest[:i]
		}
	}
	if rest != "" {
		w.Queues = strings.Split(rest, ",")
	}
	return w, true
}
