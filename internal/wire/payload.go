package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Payload is a job as read from a queue. Raw holds the exact bytes stored in
// Redis; every record resq writes about the job embeds those bytes, so extra
// fields written by other producers are kept.
type Payload struct {
	Raw        []byte
	Class      string
	Args       json.RawMessage // always a JSON array ("[]" when missing or null)
	ID         string          // resq addition; empty for Ruby/Node jobs
	EnqueuedAt time.Time       // resq addition; zero for Ruby/Node jobs
	Fields     map[string]json.RawMessage
}

// PayloadError says why bytes popped from a queue are not a usable job.
type PayloadError struct {
	Reason string
}

func (e *PayloadError) Error() string { return "invalid job payload: " + e.Reason }

// ErrNoClass is wrapped by the PayloadError of a payload without a class.
var ErrNoClass = errors.New("payload has no class")

// DecodePayload parses a job payload. A payload must be a JSON object with a
// non-empty string "class"; "args" may be missing or null (read as []) and
// must otherwise be an array. Unknown fields are kept in Fields.
func DecodePayload(raw []byte) (Payload, error) {
	p := Payload{Raw: raw}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return p, &PayloadError{Reason: fmt.Sprintf("not JSON (%v at byte %d)", syn, syn.Offset)}
		case errors.As(err, &typ):
			return p, &PayloadError{Reason: "not a JSON object (a Resque job is {\"class\":…,\"args\":[…]})"}
		default:
			return p, &PayloadError{Reason: "not JSON (" + err.Error() + ")"}
		}
	}
	if fields == nil {
		return p, &PayloadError{Reason: "not a JSON object (null)"}
	}
	p.Fields = fields
	cls, ok := fields["class"]
	if !ok {
		return p, &PayloadError{Reason: `no "class" field`}
	}
	if err := json.Unmarshal(cls, &p.Class); err != nil {
		return p, &PayloadError{Reason: `"class" is not a string`}
	}
	if p.Class == "" {
		return p, &PayloadError{Reason: `"class" is empty`}
	}
	p.Args = json.RawMessage("[]")
	if a, ok := fields["args"]; ok && !bytes.Equal(bytes.TrimSpace(a), []byte("null")) {
		a = bytes.TrimSpace(a)
		if len(a) == 0 || a[0] != '[' {
			return p, &PayloadError{Reason: `"args" is not an array`}
		}
		p.Args = a
	}
	if id, ok := fields["id"]; ok {
		_ = json.Unmarshal(id, &p.ID) // a non-string id is ignored, not fatal
	}
	if at, ok := fields["enqueued_at"]; ok {
		var f float64
		if json.Unmarshal(at, &f) == nil && f > 0 && !math.IsInf(f, 0) {
			sec, frac := math.Modf(f)
			p.EnqueuedAt = time.Unix(int64(sec), int64(frac*1e9))
		}
	}
	return p, nil
}

// NewPayload is what resq's Client writes: {"class":…,"args":…,"id":…,"enqueued_at":…}
// with class and args first, in Ruby's order. extra fields (already encoded)
// are appended in the given order.
type NewPayload struct {
	Class      string
	Args       json.RawMessage
	ID         string
	EnqueuedAt time.Time
	Extra      []Field
}

// Field is one extra top-level payload field with an encoded value.
type Field struct {
	Name  string
	Value json.RawMessage
}

// Encode returns the payload bytes.
func (n NewPayload) Encode() []byte {
	b := make([]byte, 0, 64+len(n.Args)+len(n.Class))
	b = append(b, `{"class":`...)
	b = appendString(b, n.Class)
	b = append(b, `,"args":`...)
	if len(n.Args) == 0 {
		b = append(b, "[]"...)
	} else {
		b = append(b, n.Args...)
	}
	if n.ID != "" {
		b = append(b, `,"id":`...)
		b = appendString(b, n.ID)
	}
	if !n.EnqueuedAt.IsZero() {
		b = append(b, `,"enqueued_at":`...)
		ms := n.EnqueuedAt.UnixMilli()
		b = strconv.AppendInt(b, ms/1000, 10)
		b = append(b, '.')
		frac := ms % 1000
		b = append(b, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
	}
	for _, f := range n.Extra {
		b = append(b, ',')
		b = appendString(b, f.Name)
		b = append(b, ':')
		b = append(b, f.Value...)
	}
	return append(b, '}')
}

// RubyJob encodes {"class":…,"args":…} exactly as Ruby does; this is what a
// failure retry pushes and what Ruby's dequeue-by-args compares against.
func RubyJob(class string, args json.RawMessage) []byte {
	return NewPayload{Class: class, Args: args}.Encode()
}
