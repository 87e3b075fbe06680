package wire_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

func TestNewPayloadEncodeKeyOrder(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		p    wire.NewPayload
		want string
	}{
		{"ruby shape", wire.NewPayload{Class: "X", Args: json.RawMessage(`[1,"a"]`)},
			`{"class":"X","args":[1,"a"]}`},
		{"no args", wire.NewPayload{Class: "Cleanup"}, `{"class":"Cleanup","args":[]}`},
		{"resq fields after class and args",
			wire.NewPayload{Class: "X", Args: json.RawMessage(`[1,"a"]`), ID: "0123456789abcdef0123456789abcdef",
				EnqueuedAt: time.UnixMilli(1705314225123)},
			`{"class":"X","args":[1,"a"],"id":"0123456789abcdef0123456789abcdef","enqueued_at":1705314225.123}`},
		{"millisecond padding", wire.NewPayload{Class: "X", EnqueuedAt: time.UnixMilli(1705314225005)},
			`{"class":"X","args":[],"enqueued_at":1705314225.005}`},
		{"whole second", wire.NewPayload{Class: "X", EnqueuedAt: time.Unix(1705314225, 999_999)},
			`{"class":"X","args":[],"enqueued_at":1705314225}`},
		{"extra fields in order",
			wire.NewPayload{Class: "X", Args: json.RawMessage(`[]`), ID: "i",
				Extra: []wire.Field{{Name: "queue", Value: json.RawMessage(`"q"`)}, {Name: "a/b", Value: json.RawMessage(`{"z":1,"a":2}`)}}},
			`{"class":"X","args":[],"id":"i","queue":"q","a/b":{"z":1,"a":2}}`},
		{"class escaping", wire.NewPayload{Class: "A\"B/é<\u2028", Args: json.RawMessage(`[]`)},
			"{\"class\":\"A\\\"B/é<\u2028\",\"args\":[]}"},
	}
	for _, c := range cases {
		if got := c.p.Encode(); string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
		}
	}
}

func TestRubyJob(t *testing.T) {
	t.Parallel()
	if got := wire.RubyJob("Archive", json.RawMessage(`[44,"masterbrew"]`)); string(got) != `{"class":"Archive","args":[44,"masterbrew"]}` {
		t.Errorf("got %s", got)
	}
	if got := wire.RubyJob("ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper", json.RawMessage(`[{"job_class":"ArchiveJob"}]`)); string(got) != `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"ArchiveJob"}]}` {
		t.Errorf("got %s", got)
	}
}

func TestDecodePayloadAccepts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw   string
		class string
		args  string
	}{
		{`{"class":"Archive","args":[44,"masterbrew"]}`, "Archive", `[44,"masterbrew"]`},
		{`{"class":"Cleanup","args":[]}`, "Cleanup", `[]`},
		{`{"class":"Cleanup"}`, "Cleanup", `[]`},
		{`{"class":"Cleanup","args":null}`, "Cleanup", `[]`},
		{`{"class":"Cleanup","args": null }`, "Cleanup", `[]`},
		{`{"args":[1],"class":"Late"}`, "Late", `[1]`},
		{`{"class":"A","queue":"q","args":[3]}`, "A", `[3]`},
		{`{ "class" : "Spaced" , "args" : [ 1 , 2 ] }`, "Spaced", `[ 1 , 2 ]`},
		{`{"class":"Big","args":[1180591620717411303424,1.0,1.0e+20]}`, "Big", `[1180591620717411303424,1.0,1.0e+20]`},
		{`{"class":"Esc\u00e9\/x","args":["\u00e9"]}`, "Escé/x", `["\u00e9"]`},
		{`{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"ArchiveJob","arguments":[44]}]}`,
			"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper", `[{"job_class":"ArchiveJob","arguments":[44]}]`},
	}
	for _, c := range cases {
		p, err := wire.DecodePayload([]byte(c.raw))
		if err != nil {
			t.Errorf("DecodePayload(%s): %v", c.raw, err)
			continue
		}
		if p.Class != c.class || string(p.Args) != c.args || string(p.Raw) != c.raw {
			t.Errorf("DecodePayload(%s) = class %q args %s raw %s", c.raw, p.Class, p.Args, p.Raw)
		}
		if p.ID != "" || !p.EnqueuedAt.IsZero() {
			t.Errorf("DecodePayload(%s): id %q enqueued_at %v, want none", c.raw, p.ID, p.EnqueuedAt)
		}
	}
}

func TestDecodePayloadNodeQueueAndExtraFields(t *testing.T) {
	t.Parallel()
	raw := `{"class":"A","queue":"q","args":[3],"id":"abc","enqueued_at":1705314225.123,"x":{"y": [1.0]}}`
	p, err := wire.DecodePayload([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if p.Class != "A" || string(p.Args) != "[3]" || p.ID != "abc" {
		t.Errorf("got %+v", p)
	}
	if d := p.EnqueuedAt.Sub(time.UnixMilli(1705314225123)); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("EnqueuedAt = %v, want about %v", p.EnqueuedAt, time.UnixMilli(1705314225123))
	}
	want := map[string]string{"class": `"A"`, "queue": `"q"`, "args": `[3]`, "id": `"abc"`,
		"enqueued_at": `1705314225.123`, "x": `{"y": [1.0]}`}
	fields := p.Fields()
	if len(fields) != len(want) {
		t.Errorf("Fields has %d entries, want %d: %v", len(fields), len(want), fields)
	}
	for k, v := range want {
		if string(fields[k]) != v {
			t.Errorf("Fields[%q] = %s, want %s", k, fields[k], v)
		}
		if f, ok := p.Field(k); !ok || string(f) != v {
			t.Errorf("Field(%q) = %s, %v, want %s", k, f, ok, v)
		}
	}
	if _, ok := p.Field("nope"); ok {
		t.Error(`Field("nope") found a field`)
	}
	if string(p.Raw) != raw {
		t.Errorf("Raw changed: %s", p.Raw)
	}
	// A non-string id or bad enqueued_at is ignored, not fatal.
	p, err = wire.DecodePayload([]byte(`{"class":"A","args":[],"id":7,"enqueued_at":"yesterday"}`))
	if err != nil || p.ID != "" || !p.EnqueuedAt.IsZero() {
		t.Errorf("odd resq fields: %+v, %v", p, err)
	}
}

func TestDecodePayloadRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		raw    string
		reason string // substring of the error
	}{
		{`not json`, "not JSON"},
		{`{"class":"A","args":[1]`, "not JSON"},
		{``, "not JSON"},
		{`{oops}`, "not JSON"},
		{`[1,2]`, "not a JSON object"},
		{`"str"`, "not a JSON object"},
		{`42`, "not a JSON object"},
		{`null`, "not a JSON object"},
		{`{"args":[]}`, `no "class"`},
		{`{}`, `no "class"`},
		{`{"class":1,"args":[]}`, `not a string`},
		{`{"class":["A"],"args":[]}`, `not a string`},
		{`{"class":"","args":[]}`, `empty`},
		{`{"class":null,"args":[]}`, `class`},
		{`{"class":"A","args":{}}`, `not an array`},
		{`{"class":"A","args":"x"}`, `not an array`},
		{`{"class":"A","args":1}`, `not an array`},
		{`{"class":"A","args":true}`, `not an array`},
	}
	for _, c := range cases {
		p, err := wire.DecodePayload([]byte(c.raw))
		if err == nil {
			t.Errorf("DecodePayload(%s) accepted: %+v", c.raw, p)
			continue
		}
		var pe *wire.PayloadError
		if !errors.As(err, &pe) {
			t.Errorf("DecodePayload(%s) error %T is not a *PayloadError", c.raw, err)
		}
		if !strings.Contains(err.Error(), c.reason) {
			t.Errorf("DecodePayload(%s) error %q does not mention %q", c.raw, err, c.reason)
		}
		if string(p.Raw) != c.raw {
			t.Errorf("DecodePayload(%s) lost Raw: %q", c.raw, p.Raw)
		}
	}
}

// payload.go documents that ErrNoClass "is wrapped by the PayloadError of a
// payload without a class".
func TestDecodePayloadNoClassWrapsErrNoClass(t *testing.T) {
	t.Parallel()
	_, err := wire.DecodePayload([]byte(`{"args":[]}`))
	if !errors.Is(err, wire.ErrNoClass) {
		t.Errorf("errors.Is(%v, ErrNoClass) = false; the doc comment says it is wrapped", err)
	}
	_, err = wire.DecodePayload([]byte(`{"class":"A","args":{}}`))
	if errors.Is(err, wire.ErrNoClass) {
		t.Errorf("a payload with a class reports ErrNoClass: %v", err)
	}
}

func TestDecodePayloadRoundTripWithNewPayload(t *testing.T) {
	t.Parallel()
	at := time.UnixMilli(1705314225123)
	raw := wire.NewPayload{Class: "X", Args: json.RawMessage(`[1,"a"]`), ID: "0123456789abcdef0123456789abcdef", EnqueuedAt: at}.Encode()
	p, err := wire.DecodePayload(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.Class != "X" || string(p.Args) != `[1,"a"]` || p.ID != "0123456789abcdef0123456789abcdef" {
		t.Errorf("got %+v", p)
	}
	if d := p.EnqueuedAt.Sub(at); d < -time.Millisecond || d > time.Millisecond {
		t.Errorf("EnqueuedAt = %v, want about %v", p.EnqueuedAt, at)
	}
}

// Field names are compared decoded: an escaped "class" is the class.
func TestPayloadEscapedFieldNames(t *testing.T) {
	p, err := wire.DecodePayload([]byte(`{"cl\u0061ss":"A","\u0061rgs":[1],"id":"x"}`))
	if err != nil || p.Class != "A" || string(p.Args) != "[1]" || p.ID != "x" {
		t.Fatalf("DecodePayload = %+v, %v", p, err)
	}
	if v, ok := p.Field("class"); !ok || string(v) != `"A"` {
		t.Errorf(`Field("class") = %s, %v`, v, ok)
	}
}

// The metadata a producer signs (NewPayload.Meta) is the metadata a worker
// reads back from the encoded payload (Payload.Meta).
func TestPayloadMetaRoundTrip(t *testing.T) {
	t.Parallel()
	for _, at := range []time.Time{time.UnixMilli(1705314225123), time.UnixMilli(1705314225000), time.UnixMilli(1705314225100), {}} {
		n := wire.NewPayload{Class: "X", Args: json.RawMessage(`[1]`), ID: "abc", EnqueuedAt: at}
		p, err := wire.DecodePayload(n.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if got, want := p.Meta("q"), n.Meta("q"); got != want {
			t.Errorf("enqueued at %v: decoded meta %+v, encoded meta %+v", at, got, want)
		}
	}
	// Ruby and Node payloads: no id, the enqueued_at text as written.
	p, err := wire.DecodePayload([]byte(`{"class":"R","args":[],"enqueued_at":1.50}`))
	if err != nil {
		t.Fatal(err)
	}
	if m := p.Meta("r"); m.Class != "R" || m.Queue != "r" || m.ID != "" || m.EnqueuedAt != "1.50" {
		t.Errorf("Meta = %+v", m)
	}
}

// CarriesCiphertext sees a top-level "enc" even in a payload that does not
// decode, and never one nested in the args.
func TestCarriesCiphertext(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		`{"class":"X","args":[],"enc":{"kid":"e","nonce":"AA==","ct":"AA=="}}`: true,
		`{"class":"X","args":[],"enc":"not an object"}`:                        true,
		` {"enc":1}`:                       true,
		`{"class":"X","args":[{"enc":1}]}`: false,
		`{"class":"X","args":[]}`:          false,
		`["enc"]`:                          false,
		`not json "enc"`:                   false,
		``:                                 false,
	} {
		if got := wire.CarriesCiphertext([]byte(raw)); got != want {
			t.Errorf("CarriesCiphertext(%s) = %v, want %v", raw, got, want)
		}
	}
}
