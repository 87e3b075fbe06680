package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/resq-go/resq/internal/envelope"
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
	// EnqueuedAtRaw is the exact text of the enqueued_at value (signed).
	EnqueuedAtRaw string
	// Envelope holds resq's signing and encryption fields, if any:
	// "enc":{"kid":…,"nonce":…,"ct":…}, "kid":…, "sig":… (base64, standard,
	// padded). See docs/protocol.md.
	Envelope envelope.Envelope
	fields   []topField // every top-level field, in order
}

// MetadataField is the payload field NewPayload.Metadata is written to.
const MetadataField = "metadata"

// Metadata returns the payload's "metadata" object: its string values, nil
// when the field is missing or not an object (other values are skipped).
func (p Payload) Metadata() map[string]string {
	raw, ok := p.Field(MetadataField)
	if !ok {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil || len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		if json.Unmarshal(v, &s) == nil {
			out[k] = s
		}
	}
	return out
}

// Field returns the raw value of the top-level field name.
func (p Payload) Field(name string) (json.RawMessage, bool) {
	return topFields(p.fields).get(name)
}

// Fields returns every top-level field by name.
func (p Payload) Fields() map[string]json.RawMessage {
	m := make(map[string]json.RawMessage, len(p.fields))
	for _, f := range p.fields {
		m[unquote(f.key)] = json.RawMessage(f.value)
	}
	return m
}

type topFields []topField

// get finds a field by its decoded name without allocating.
func (fs topFields) get(name string) (json.RawMessage, bool) {
	for _, f := range fs {
		k := f.key
		if len(k) >= 2 && !hasBackslash(k) {
			if string(k[1:len(k)-1]) == name {
				return json.RawMessage(f.value), true
			}
		} else if unquote(k) == name {
			return json.RawMessage(f.value), true
		}
	}
	return nil, false
}

// Meta is what the job's signature and encryption bind it to, read from the
// payload: its class, id and exact enqueued_at text, and queue (where the
// job is, which the payload does not say).
func (p Payload) Meta(queue string) envelope.Meta {
	return envelope.Meta{Class: p.Class, Queue: queue, ID: p.ID, EnqueuedAt: p.EnqueuedAtRaw}
}

// PayloadError says why bytes popped from a queue are not a usable job.
type PayloadError struct {
	Reason string
	Err    error // ErrNoClass for a payload without a usable class
}

func (e *PayloadError) Error() string { return "invalid job payload: " + e.Reason }
func (e *PayloadError) Unwrap() error { return e.Err }

// ErrNoClass is wrapped by the PayloadError of a payload without a class.
var ErrNoClass = errors.New("payload has no class")

// DefaultDecodeDepth is the nesting limit of DecodePayload.
const DefaultDecodeDepth = 128

// DecodePayload parses a job payload. A payload must be a JSON object with a
// non-empty string "class"; "args" may be missing or null (read as []) and
// must otherwise be an array. Duplicate keys anywhere are refused. Unknown
// fields are kept in Fields.
func DecodePayload(raw []byte) (Payload, error) {
	return DecodePayloadDepth(raw, DefaultDecodeDepth)
}

// DecodePayloadDepth is DecodePayload with a nesting limit; a payload nested
// deeper fails with an error wrapping ErrTooDeep. It reads the bytes once.
func DecodePayloadDepth(raw []byte, maxDepth int) (Payload, error) {
	p := Payload{Raw: raw}
	top, err := ScanPayload(raw, maxDepth)
	if err != nil {
		return p, err
	}
	p.fields = top
	fields := topFields(top)
	cls, ok := fields.get("class")
	if !ok {
		return p, &PayloadError{Reason: `no "class" field`, Err: ErrNoClass}
	}
	if len(cls) == 0 || cls[0] != '"' {
		return p, &PayloadError{Reason: `"class" is not a string`, Err: ErrNoClass}
	}
	p.Class = unquote(cls)
	if p.Class == "" {
		return p, &PayloadError{Reason: `"class" is empty`, Err: ErrNoClass}
	}
	p.Args = json.RawMessage("[]")
	if a, ok := fields.get("args"); ok && !bytes.Equal(bytes.TrimSpace(a), []byte("null")) {
		a = bytes.TrimSpace(a)
		if len(a) == 0 || a[0] != '[' {
			return p, &PayloadError{Reason: `"args" is not an array`}
		}
		p.Args = a
	}
	if id, ok := fields.get("id"); ok && len(id) > 0 && id[0] == '"' {
		p.ID = unquote(id) // a non-string id is ignored, not fatal
	}
	if err := decodeEnvelope(fields, &p.Envelope); err != nil {
		return p, &PayloadError{Reason: err.Error()}
	}
	if at, ok := fields.get("enqueued_at"); ok {
		p.EnqueuedAtRaw = string(at)
		if f, err := strconv.ParseFloat(string(at), 64); err == nil && f > 0 && !math.IsInf(f, 0) {
			sec, frac := math.Modf(f)
			p.EnqueuedAt = time.Unix(int64(sec), int64(frac*1e9))
		}
	}
	return p, nil
}

// CarriesCiphertext reports whether raw is a JSON object with a top-level
// "enc" field, whether or not the rest of it is a valid payload: code that
// shows jobs to people hides such a payload's args even when it cannot
// decode it.
func CarriesCiphertext(raw []byte) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, ok := m["enc"]
	return ok
}

// NewPayload is what resq's Client writes: {"class":…,"args":…,"id":…,"enqueued_at":…}
// with class and args first, in Ruby's order. extra fields (already encoded)
// are appended in the given order.
type NewPayload struct {
	Class      string
	Args       json.RawMessage
	ID         string
	EnqueuedAt time.Time
	Envelope   envelope.Envelope
	// Metadata is written as the "metadata" object of strings (sorted by
	// key) when not empty: resq's carrier for middleware data such as a
	// trace context. Ruby and node-resque ignore it; it is not signed.
	Metadata map[string]string
	Extra    []Field
}

// Meta is what Encode's payload binds to its signature and encryption when
// the job is pushed to queue (envelope.Keyring.Seal): what Payload.Meta
// reads back from it.
func (n NewPayload) Meta(queue string) envelope.Meta {
	m := envelope.Meta{Class: n.Class, Queue: queue, ID: n.ID}
	if !n.EnqueuedAt.IsZero() { // Encode writes no enqueued_at then
		m.EnqueuedAt = EnqueuedAtText(n.EnqueuedAt)
	}
	return m
}

// EnqueuedAtText is the exact text Encode writes for an enqueue time: Unix
// seconds with up to three decimals, trailing zeros dropped, which is how
// JavaScript's JSON.stringify and Ruby's JSON write the same number (so
// node-resque's byte-exact removeFailed matches). Signatures cover it.
func EnqueuedAtText(t time.Time) string {
	ms := t.UnixMilli()
	sec, frac := ms/1000, ms%1000
	if frac < 0 {
		sec, frac = sec-1, frac+1000
	}
	s := strconv.FormatInt(sec, 10)
	if frac == 0 {
		return s
	}
	d := []byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
	for d[len(d)-1] == '0' {
		d = d[:len(d)-1]
	}
	return s + string(d)
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
		b = append(b, EnqueuedAtText(n.EnqueuedAt)...)
	}
	if e := n.Envelope.Enc; e != nil {
		b = append(b, `,"enc":`...)
		b = appendEncrypted(b, e)
	}
	if sig := n.Envelope.Sig; sig != nil {
		b = append(b, `,"kid":`...)
		b = appendString(b, sig.KID)
		b = append(b, `,"sig":"`...)
		b = base64.StdEncoding.AppendEncode(b, sig.Value)
		b = append(b, '"')
	}
	if len(n.Metadata) > 0 {
		keys := make([]string, 0, len(n.Metadata))
		for k := range n.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b = append(b, `,"`+MetadataField+`":{`...)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, k)
			b = append(b, ':')
			b = appendString(b, n.Metadata[k])
		}
		b = append(b, '}')
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

// appendEncrypted writes the "enc" object: {"kid":…,"nonce":…,"ct":…}.
func appendEncrypted(b []byte, e *envelope.Ciphertext) []byte {
	b = append(b, `{"kid":`...)
	b = appendString(b, e.KID)
	b = append(b, `,"nonce":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.Nonce)
	b = append(b, `","ct":"`...)
	b = base64.StdEncoding.AppendEncode(b, e.Data)
	return append(b, `"}`...)
}

func decodeEnvelope(fields topFields, e *envelope.Envelope) error {
	if raw, ok := fields.get("sig"); ok {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return errors.New(`"sig" is not a string`)
		}
		v, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return errors.New(`"sig" is not base64`)
		}
		sig := &envelope.Signature{Value: v}
		if k, ok := fields.get("kid"); ok && json.Unmarshal(k, &sig.KID) != nil {
			return errors.New(`"kid" is not a string`)
		}
		e.Sig = sig
	}
	if raw, ok := fields.get("enc"); ok {
		var enc struct {
			KID   string `json:"kid"`
			Nonce string `json:"nonce"`
			CT    string `json:"ct"`
		}
		if json.Unmarshal(raw, &enc) != nil {
			return errors.New(`"enc" is not an object of strings`)
		}
		nonce, err1 := base64.StdEncoding.DecodeString(enc.Nonce)
		ct, err2 := base64.StdEncoding.DecodeString(enc.CT)
		if err1 != nil || err2 != nil || enc.KID == "" {
			return errors.New(`"enc" needs kid, and nonce and ct in base64`)
		}
		e.Enc = &envelope.Ciphertext{KID: enc.KID, Nonce: nonce, Data: ct}
	}
	return nil
}

// CheckDuplicateKeys refuses JSON in which any object repeats a key (Go's
// decoder would silently keep the last one, a way to smuggle a value past a
// check that read the first).
func CheckDuplicateKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // next string token in an object is a key
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		top := len(stack) - 1
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{':
				if top >= 0 && stack[top].obj {
					stack[top].expect = true
				}
				stack = append(stack, frame{obj: true, keys: map[string]bool{}, expect: true})
			case '[':
				if top >= 0 && stack[top].obj {
					stack[top].expect = true
				}
				stack = append(stack, frame{})
			default:
				stack = stack[:top]
			}
			continue
		}
		if top >= 0 && stack[top].obj {
			if stack[top].expect {
				k, _ := tok.(string)
				if stack[top].keys[k] {
					return fmt.Errorf("duplicate key %q in a JSON object", truncate(k, 64))
				}
				stack[top].keys[k] = true
				stack[top].expect = false
			} else {
				stack[top].expect = true
			}
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
