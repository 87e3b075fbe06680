package wire_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/resq-go/resq/internal/wire"
)

const (
	archivePayload = `{"class":"Archive","args":[44,"masterbrew"]}`
	// TV-03's working-on record.
	tv03Record = `{"queue":"file_serve","run_at":"2024-01-15T10:23:45Z","payload":{"class":"Archive","args":[44,"masterbrew"]}}`
	// TV-05's failure record.
	tv05Failure = "{\"failed_at\":\"2024/01/15 10:23:46 UTC\",\"payload\":{\"class\":\"Archive\",\"args\":[44,\"masterbrew\"]},\"exception\":\"RuntimeError\",\"error\":\"disk full\",\"backtrace\":[\"/app/jobs/archive.rb:12:in `perform'\"],\"worker\":\"web1:4242:file_serve,warm_cache\",\"queue\":\"file_serve\"}"
	// TV-11's record after the requeue at 10:30:00.
	tv11Failure = "{\"failed_at\":\"2024/01/15 10:23:46 UTC\",\"payload\":{\"class\":\"Archive\",\"args\":[44,\"masterbrew\"]},\"exception\":\"RuntimeError\",\"error\":\"disk full\",\"backtrace\":[\"/app/jobs/archive.rb:12:in `perform'\"],\"worker\":\"web1:4242:file_serve,warm_cache\",\"queue\":\"file_serve\",\"retried_at\":\"2024/01/15 10:30:00 UTC\"}"
)

// tv05 is TV-05's failure as a Failure value.
func tv05() wire.Failure {
	return wire.Failure{
		FailedAt:  "2024/01/15 10:23:46 UTC",
		Payload:   json.RawMessage(archivePayload),
		Exception: "RuntimeError",
		Error:     "disk full",
		Backtrace: []string{"/app/jobs/archive.rb:12:in `perform'"},
		Worker:    W,
		Queue:     "file_serve",
	}
}

// objectKeys returns the top-level keys of a JSON object in order.
func objectKeys(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", raw)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("bad object %s: %v", raw, err)
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("bad object %s: %v", raw, err)
		}
	}
	return keys
}

func TestWorkingOnRecordTV03(t *testing.T) {
	t.Parallel()
	got := wire.EncodeWorkingOn(wire.WorkingOn{Queue: "file_serve", RunAt: "2024-01-15T10:23:45Z", Payload: json.RawMessage(archivePayload)})
	if string(got) != tv03Record {
		t.Errorf("EncodeWorkingOn:\n got %s\nwant %s", got, tv03Record)
	}
	if p := wire.RecordPrefix("file_serve", "2024-01-15T10:23:45Z") + archivePayload + "}"; p != tv03Record {
		t.Errorf("RecordPrefix + payload + }:\n got %s\nwant %s", p, tv03Record)
	}
	if p := wire.RecordPrefix(`odd"q/é`, "x"); p != `{"queue":"odd\"q/é","run_at":"x","payload":` {
		t.Errorf("RecordPrefix escaping: %s", p)
	}
	w, err := wire.DecodeWorkingOn([]byte(tv03Record))
	if err != nil {
		t.Fatal(err)
	}
	if w.Queue != "file_serve" || w.RunAt != "2024-01-15T10:23:45Z" || string(w.Payload) != archivePayload {
		t.Errorf("DecodeWorkingOn = %+v", w)
	}
}

func TestDecodeWorkingOnOtherImplementations(t *testing.T) {
	t.Parallel()
	// node-resque (cjson: reordered keys, \/ escapes, empty array as {}, worker field).
	node := `{"run_at":"Mon Jan 15 2024 10:23:45 GMT+0000 (Coordinated Universal Time)","payload":{"class":"A","queue":"q","args":{}},"worker":"h:1+2","queue":"q\/x"}`
	w, err := wire.DecodeWorkingOn([]byte(node))
	if err != nil {
		t.Fatal(err)
	}
	if w.Queue != "q/x" || w.RunAt != "Mon Jan 15 2024 10:23:45 GMT+0000 (Coordinated Universal Time)" ||
		string(w.Payload) != `{"class":"A","queue":"q","args":{}}` {
		t.Errorf("node record = %+v", w)
	}
	// goworker (RFC 3339 with nanoseconds).
	gw := `{"queue":"q","run_at":"2024-01-15T10:23:45.123456789Z","payload":{"class":"A","args":[1]}}`
	w, err = wire.DecodeWorkingOn([]byte(gw))
	if err != nil || w.RunAt != "2024-01-15T10:23:45.123456789Z" || string(w.Payload) != `{"class":"A","args":[1]}` {
		t.Errorf("goworker record = %+v, %v", w, err)
	}
	// A numeric run_at (not written by anyone known, but readable).
	w, err = wire.DecodeWorkingOn([]byte(`{"queue":"q","run_at":1705314225,"payload":{"class":"A"}}`))
	if err != nil || w.RunAt != "1705314225" {
		t.Errorf("numeric run_at = %+v, %v", w, err)
	}
	if _, err := wire.DecodeWorkingOn([]byte(`nope`)); err == nil {
		t.Error("DecodeWorkingOn accepted garbage")
	}
}

// TV-05: exact bytes and Ruby's key order.
func TestFailureEncodeTV05(t *testing.T) {
	t.Parallel()
	got := tv05().Encode()
	if string(got) != tv05Failure {
		t.Fatalf("Encode:\n got %s\nwant %s", got, tv05Failure)
	}
	want := []string{"failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"}
	if k := objectKeys(t, got); !reflect.DeepEqual(k, want) {
		t.Errorf("keys %v, want %v", k, want)
	}
	f := tv05()
	f.RetriedAt = "2024/01/15 10:30:00 UTC"
	if got := f.Encode(); string(got) != tv11Failure {
		t.Errorf("Encode with RetriedAt:\n got %s\nwant %s", got, tv11Failure)
	}
}

func TestFailureEncodeEdgeCases(t *testing.T) {
	t.Parallel()
	// Prune failure (TV-14): backtrace [] for a never-raised exception.
	prune := wire.Failure{
		FailedAt: "2024/01/15 10:23:45 UTC", Payload: json.RawMessage(archivePayload),
		Exception: "Resque::PruneDeadWorkerDirtyExit",
		Error:     "Worker web2:777:file_serve did not gracefully exit while processing Archive",
		Worker:    "web2:777:file_serve", Queue: "file_serve",
	}
	const want = `{"failed_at":"2024/01/15 10:23:45 UTC","payload":{"class":"Archive","args":[44,"masterbrew"]},"exception":"Resque::PruneDeadWorkerDirtyExit","error":"Worker web2:777:file_serve did not gracefully exit while processing Archive","backtrace":[],"worker":"web2:777:file_serve","queue":"file_serve"}`
	if got := prune.Encode(); string(got) != want {
		t.Errorf("nil backtrace:\n got %s\nwant %s", got, want)
	}
	prune.Backtrace = []string{}
	if got := prune.Encode(); string(got) != want {
		t.Errorf("empty backtrace:\n got %s\nwant %s", got, want)
	}
	// Error text: invalid UTF-8 becomes '?' (§5.1), controls escaped, rest raw.
	f := wire.Failure{FailedAt: "t", Payload: json.RawMessage(`{"class":"A","args":[]}`), Exception: "E",
		Error: "bad \xff byte\n<é>/\"q\"", Backtrace: []string{"a\tb", "c"}, Worker: "w", Queue: "q"}
	const want2 = `{"failed_at":"t","payload":{"class":"A","args":[]},"exception":"E","error":"bad ? byte\n<é>/\"q\"","backtrace":["a\tb","c"],"worker":"w","queue":"q"}`
	if got := f.Encode(); string(got) != want2 {
		t.Errorf("error escaping:\n got %s\nwant %s", got, want2)
	}
	// Payload bytes are embedded as they are (extra fields, formatting kept).
	odd := `{"class":"A","queue":"q","args":[1.0,"a\/b","\u00e9"],"id":"x"}`
	f.Payload = json.RawMessage(odd)
	if got := f.Encode(); !bytes.Contains(got, []byte(`"payload":`+odd+`,"exception"`)) || !json.Valid(got) {
		t.Errorf("payload not embedded verbatim: %s", got)
	}
	// No payload: null, still valid JSON.
	f.Payload = nil
	if got := f.Encode(); !bytes.Contains(got, []byte(`"payload":null,`)) || !json.Valid(got) {
		t.Errorf("nil payload: %s", got)
	}
}

func TestDecodeFailure(t *testing.T) {
	t.Parallel()
	f, err := wire.DecodeFailure([]byte(tv11Failure))
	if err != nil {
		t.Fatal(err)
	}
	want := tv05()
	want.RetriedAt = "2024/01/15 10:30:00 UTC"
	if !reflect.DeepEqual(f, want) {
		t.Errorf("DecodeFailure(TV-11) =\n%+v\nwant\n%+v", f, want)
	}
	if got := f.Encode(); string(got) != tv11Failure {
		t.Errorf("re-encode:\n got %s\nwant %s", got, tv11Failure)
	}

	// node-resque: other key order, JS date, worker without queues, payload with queue.
	node := `{"worker":"web1:4242+1","queue":"q","payload":{"class":"A","queue":"q","args":[1]},"exception":"Error","error":"boom","backtrace":["Error: boom","    at perform (/app/jobs.js:3:9)"],"failed_at":"Mon Jan 15 2024 10:23:45 GMT+0000 (Coordinated Universal Time)"}`
	f, err = wire.DecodeFailure([]byte(node))
	if err != nil {
		t.Fatal(err)
	}
	if f.Worker != "web1:4242+1" || f.Queue != "q" || f.Exception != "Error" || f.Error != "boom" ||
		string(f.Payload) != `{"class":"A","queue":"q","args":[1]}` ||
		!reflect.DeepEqual(f.Backtrace, []string{"Error: boom", "    at perform (/app/jobs.js:3:9)"}) ||
		f.FailedAt != "Mon Jan 15 2024 10:23:45 GMT+0000 (Coordinated Universal Time)" || f.RetriedAt != "" {
		t.Errorf("node failure = %+v", f)
	}
	if ts, ok := wire.ParseTime(f.FailedAt); !ok || !ts.Equal(specInstant) {
		t.Errorf("node failed_at parses to %v, %v", ts, ok)
	}

	// goworker: RFC 3339 nanoseconds, backtrace null.
	gw := `{"failed_at":"2024-01-15T10:23:45.123456789Z","payload":{"class":"A","args":[1]},"exception":"Error","error":"No worker for A in queue q with args [1]","backtrace":null,"worker":"web1:4242-0:q","queue":"q"}`
	f, err = wire.DecodeFailure([]byte(gw))
	if err != nil {
		t.Fatal(err)
	}
	if f.Backtrace != nil || f.Worker != "web1:4242-0:q" || f.Error != "No worker for A in queue q with args [1]" ||
		f.FailedAt != "2024-01-15T10:23:45.123456789Z" {
		t.Errorf("goworker failure = %+v", f)
	}

	// Odd field types are tolerated: rendered as text, or ignored for the backtrace.
	f, err = wire.DecodeFailure([]byte(`{"failed_at":1705314225,"exception":null,"error":{"m":1},"backtrace":"trace","worker":"w"}`))
	if err != nil {
		t.Fatal(err)
	}
	if f.FailedAt != "1705314225" || f.Exception != "" || f.Error != `{"m":1}` || f.Backtrace != nil || f.Queue != "" || f.Payload != nil {
		t.Errorf("odd failure = %+v", f)
	}
	if _, err := wire.DecodeFailure([]byte(`{"failed_at":`)); err == nil {
		t.Error("DecodeFailure accepted truncated JSON")
	}
}

// TV-11: retried_at is appended at the end the first time and replaced in
// place afterwards; everything else is kept byte for byte.
func TestSetFieldRetriedAtTV11(t *testing.T) {
	t.Parallel()
	got, err := wire.SetField([]byte(tv05Failure), "retried_at", json.RawMessage(wire.QuoteString("2024/01/15 10:30:00 UTC")))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != tv11Failure {
		t.Fatalf("first retry:\n got %s\nwant %s", got, tv11Failure)
	}
	again, err := wire.SetField(got, "retried_at", json.RawMessage(`"2024/01/15 11:00:00 UTC"`))
	if err != nil {
		t.Fatal(err)
	}
	want := tv11Failure[:len(tv11Failure)-len(`"2024/01/15 10:30:00 UTC"}`)] + `"2024/01/15 11:00:00 UTC"}`
	if string(again) != want {
		t.Errorf("second retry:\n got %s\nwant %s", again, want)
	}
	// node key order is kept, retried_at appended.
	node := `{"worker":"w","queue":"q","payload":{"class":"A","queue":"q","args":[1]},"exception":"Error","error":"boom","backtrace":[],"failed_at":"x"}`
	got, err = wire.SetField([]byte(node), "retried_at", json.RawMessage(`"r"`))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != node[:len(node)-1]+`,"retried_at":"r"}` {
		t.Errorf("node record: %s", got)
	}
}

func TestSetFieldCases(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, name, value, want string
	}{
		{`{"a":1,"b":2,"c":3}`, "b", `9`, `{"a":1,"b":9,"c":3}`},
		{`{"a":1}`, "a", `"x"`, `{"a":"x"}`},
		{`{}`, "x", `1`, `{"x":1}`},
		{` { "a" : 1 , "b" : [ 1.0 , 1e20 ] } `, "c", `true`, `{"a":1,"b":[ 1.0 , 1e20 ],"c":true}`},
		{`{"n":{"z":1, "y":[1.0,12345678901234567890]},"s":"\/"}`, "t", `null`, `{"n":{"z":1, "y":[1.0,12345678901234567890]},"s":"\/","t":null}`},
		{`{"r":"a","x":1,"r":"b"}`, "r", `"new"`, `{"r":"new","x":1}`},
		{`{"k\u00e9":1}`, "z", `2`, `{"ké":1,"z":2}`},
	}
	for _, c := range cases {
		got, err := wire.SetField([]byte(c.in), c.name, json.RawMessage(c.value))
		if err != nil {
			t.Errorf("SetField(%s, %s): %v", c.in, c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("SetField(%s, %s, %s):\n got %s\nwant %s", c.in, c.name, c.value, got, c.want)
		}
	}
	for _, bad := range []string{`[1]`, `"s"`, `nope`, ``, `{"a":`} {
		if got, err := wire.SetField([]byte(bad), "x", json.RawMessage(`1`)); err == nil {
			t.Errorf("SetField(%q) accepted: %s", bad, got)
		}
	}
}

func TestInvalidPayloadObjectRoundTrip(t *testing.T) {
	t.Parallel()
	if got := wire.InvalidPayloadObject([]byte("not json")); string(got) != `{"class":"","args":[],"raw":"not json"}` {
		t.Errorf("InvalidPayloadObject(not json) = %s", got)
	}
	for _, raw := range []string{
		"not json", "", "[1,2]", `"str"`, "{oops}", `{"class":"A"`, "null",
		"tab\tnew\nline \"q\" \\ back \u2028 é <b>&</b> /", "\x00\x01",
	} {
		obj := wire.InvalidPayloadObject([]byte(raw))
		if !json.Valid(obj) {
			t.Errorf("InvalidPayloadObject(%q) is not valid JSON: %s", raw, obj)
			continue
		}
		if k := objectKeys(t, obj); !reflect.DeepEqual(k, []string{"class", "args", "raw"}) {
			t.Errorf("keys %v", k)
		}
		back, ok := wire.RawOfInvalid(obj)
		if !ok || string(back) != raw {
			t.Errorf("RawOfInvalid(InvalidPayloadObject(%q)) = %q, %v", raw, back, ok)
		}
		// The wrapper is what a failure record embeds; it must decode as an
		// invalid job (empty class) rather than a runnable one.
		if _, err := wire.DecodePayload(obj); err == nil {
			t.Errorf("wrapper of %q decodes as a valid job", raw)
		}
	}
	// Invalid UTF-8 is kept as U+FFFD (lossy, but still valid JSON).
	obj := wire.InvalidPayloadObject([]byte("a\xffb"))
	if back, ok := wire.RawOfInvalid(obj); !json.Valid(obj) || !ok || string(back) != "a\uFFFDb" {
		t.Errorf("invalid UTF-8: %s -> %q, %v", obj, back, ok)
	}
	// Real payloads and look-alikes are not wrappers.
	for _, p := range []string{archivePayload, `{"class":"","args":[]}`, `{"class":"","raw":5}`, `{"class":"A","args":[],"raw":"x"}`, `nope`, ``} {
		if b, ok := wire.RawOfInvalid(json.RawMessage(p)); ok {
			t.Errorf("RawOfInvalid(%s) = %q, true", p, b)
		}
	}
}

func TestParseWorkerID(t *testing.T) {
	t.Parallel()
	cases := []struct {
		id   string
		want wire.WorkerID
		ok   bool
	}{
		{W, wire.WorkerID{Host: "web1", PID: 4242, PIDStr: "4242", Queues: []string{"file_serve", "warm_cache"}}, true},
		{"web1:4242:*", wire.WorkerID{Host: "web1", PID: 4242, PIDStr: "4242", Queues: []string{"*"}}, true},
		{"web1:4242:critical,*", wire.WorkerID{Host: "web1", PID: 4242, PIDStr: "4242", Queues: []string{"critical", "*"}}, true},
		// node MultiWorker
		{"h:1+2:a", wire.WorkerID{Host: "h", PID: 1, PIDStr: "1+2", Queues: []string{"a"}}, true},
		// goworker slot and poller
		{"h:1-0:a", wire.WorkerID{Host: "h", PID: 1, PIDStr: "1-0", Queues: []string{"a"}}, true},
		{"h:77-poller:a,b", wire.WorkerID{Host: "h", PID: 77, PIDStr: "77-poller", Queues: []string{"a", "b"}}, true},
		// queue names with ':' stay whole; resq's multi-slot suffix lands in the last queue
		{"h:1:queue:foo:bar,b", wire.WorkerID{Host: "h", PID: 1, PIDStr: "1", Queues: []string{"queue:foo:bar", "b"}}, true},
		// resq's slot suffix: Ruby's display parser would show the last queue as "warm_cache:3".
		{"web1:4242:file_serve,warm_cache:3", wire.WorkerID{Host: "web1", PID: 4242, PIDStr: "4242", Queues: []string{"file_serve", "warm_cache"}, Slot: 3}, true},
		{"web1:4242:ns:queue", wire.WorkerID{Host: "web1", PID: 4242, PIDStr: "4242", Queues: []string{"ns:queue"}}, true},
		// odd pids
		{"h:abc:q", wire.WorkerID{Host: "h", PID: 0, PIDStr: "abc", Queues: []string{"q"}}, true},
		{"h::q", wire.WorkerID{Host: "h", PIDStr: "", Queues: []string{"q"}}, true},
		// empty third part: parsed, no queues
		{"h:1:", wire.WorkerID{Host: "h", PID: 1, PIDStr: "1"}, true},
		// fewer than three parts
		{"h:1", wire.WorkerID{}, false},
		{"h", wire.WorkerID{}, false},
		{"", wire.WorkerID{}, false},
	}
	for _, c := range cases {
		got, ok := wire.ParseWorkerID(c.id)
		if ok != c.ok || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseWorkerID(%q) = %+v, %v; want %+v, %v", c.id, got, ok, c.want, c.ok)
		}
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	k := wire.NewKeys("resque:GitHub")
	cases := [][2]string{
		{k.Queues(), "resque:GitHub:queues"},
		{k.Queue("foo:bar"), "resque:GitHub:queue:foo:bar"},
		{k.Workers(), "resque:GitHub:workers"},
		{k.Worker(W), "resque:GitHub:worker:" + W},
		{k.WorkerStarted(W), "resque:GitHub:worker:" + W + ":started"},
		{k.Heartbeats(), "resque:GitHub:workers:heartbeat"},
		{k.PruneLock(), "resque:GitHub:pruning_dead_workers_in_progress"},
		{k.StatProcessed(), "resque:GitHub:stat:processed"},
		{k.StatFailed(), "resque:GitHub:stat:failed"},
		{k.StatProcessedBy(W), "resque:GitHub:stat:processed:" + W},
		{k.StatFailedBy(W), "resque:GitHub:stat:failed:" + W},
		{k.Failed(), "resque:GitHub:failed"},
		{k.FailedQueues(), "resque:GitHub:failed_queues"},
		{k.PauseAll(), "resque:GitHub:pause-all-workers"},
		{k.AllPattern(), "resque:GitHub:*"},
		{k.QueuePrefix(), "resque:GitHub:queue:"},
		{k.Key("delayed_queue_schedule"), "resque:GitHub:delayed_queue_schedule"},
		{k.Strip("resque:GitHub:queue:a"), "queue:a"},
		{k.Strip("other:queue:a"), "other:queue:a"},
		{k.Namespace(), "resque:GitHub"},
		{wire.NewKeys("resque:GitHub:").Queues(), "resque:GitHub:queues"},
		{wire.NewKeys("").Queues(), "resque:queues"},
		{wire.NewKeys("myapp").Queue("q"), "myapp:queue:q"},
		{wire.NewKeys("").Namespace(), "resque"},
	}
	for _, c := range cases {
		if c[0] != c[1] {
			t.Errorf("got %q, want %q", c[0], c[1])
		}
	}
}

// SetFailurePayload replaces a record's payload and keeps every other field.
func TestSetFailurePayload(t *testing.T) {
	t.Parallel()
	got, err := wire.SetFailurePayload([]byte(tv05Failure), json.RawMessage(`{"class":"Archive","args":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(tv05Failure, `{"class":"Archive","args":[44,"masterbrew"]}`, `{"class":"Archive","args":[]}`, 1)
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if _, err := wire.SetFailurePayload([]byte(`not json`), json.RawMessage(`{}`)); err == nil {
		t.Error("a record that is not JSON was rewritten")
	}
}
