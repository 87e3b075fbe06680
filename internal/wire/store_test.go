package wire_test

import (
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/wire"
)

// TV-01: SADD queues + RPUSH queue:<q>, nothing else.
func TestPushTV01(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	if err := s.Push(bg, "q", wire.RubyJob("X", json.RawMessage(`[1,"a"]`))); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "q", "SMEMBERS", "resque:queues")
	expect(t, srv, `{"class":"X","args":[1,"a"]}`, "LRANGE", "resque:queue:q", "0", "-1")
	if err := s.Push(bg, "q", wire.RubyJob("X", nil)); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "{\"class\":\"X\",\"args\":[1,\"a\"]}\n{\"class\":\"X\",\"args\":[]}", "LRANGE", "resque:queue:q", "0", "-1")
	expect(t, srv, "q", "SMEMBERS", "resque:queues")
	expect(t, srv, "resque:queue:q\nresque:queues", "EVAL", "local k = redis.call('KEYS','*') table.sort(k) return k", "0")
}

func TestPushNamespaces(t *testing.T) {
	t.Parallel()
	s, srv := newStoreNS(t, "myapp")
	if err := s.Push(bg, "foo:bar", []byte(archivePayload)); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "myapp:queue:foo:bar\nmyapp:queues", "EVAL", "local k = redis.call('KEYS','*') table.sort(k) return k", "0")
	expect(t, srv, "foo:bar", "SMEMBERS", "myapp:queues") // values carry no namespace

	s2, srv2 := newStoreNS(t, "resque:GitHub")
	if err := s2.Push(bg, "q", []byte(archivePayload)); err != nil {
		t.Fatal(err)
	}
	expect(t, srv2, "resque:GitHub:queue:q\nresque:GitHub:queues", "EVAL", "local k = redis.call('KEYS','*') table.sort(k) return k", "0")
}

// TV-03: one LPOP, and worker:<id> = {"queue","run_at","payload"} with the
// payload bytes as popped.
func TestFetchTV03(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:file_serve", archivePayload)
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"file_serve", "warm_cache"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant.Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("fetched %d jobs, want 1: %+v", len(got), got)
	}
	f := got[0]
	if f.Slot != 0 || f.Queue != "file_serve" || string(f.Raw) != archivePayload || f.RunAt != "2024-01-15T10:23:45Z" {
		t.Errorf("Fetched = %+v", f)
	}
	expect(t, srv, tv03Record, "GET", "resque:worker:"+W)
	if string(f.Record()) != tv03Record {
		t.Errorf("Record() = %s, want %s", f.Record(), tv03Record)
	}
	expect(t, srv, "0", "EXISTS", "resque:queue:file_serve")
	expect(t, srv, "resque:worker:"+W, "KEYS", "*")

	// Empty queues: nothing, no record written for the idle slot.
	got, err = s.FetchWith(bg, wire.FetchRequest{Queues: []string{"file_serve", "warm_cache"}, WorkerIDs: []string{"web1:4242:other"}, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 0 {
		t.Errorf("Fetch of empty queues = %+v, %v", got, err)
	}
	expect(t, srv, "0", "EXISTS", "resque:worker:web1:4242:other")

	// Nothing to do without queues or slots.
	if got, err := s.FetchWith(bg, wire.FetchRequest{Queues: nil, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant); err != nil || got != nil {
		t.Errorf("Fetch with no queues = %+v, %v", got, err)
	}
	if got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"file_serve"}, WorkerIDs: nil, MaxBytes: maxPayload, CheckHeld: true}, specInstant); err != nil || got != nil {
		t.Errorf("Fetch with no slots = %+v, %v", got, err)
	}
}

// Queues are tried in the given order; one call fills several slots; a
// lower queue is used only once the higher ones are empty.
func TestFetchPriorityAndBatch(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	job := func(q string, n int) string { return fmt.Sprintf(`{"class":"J","args":[%q,%d]}`, q, n) }
	srv.Do(t, "RPUSH", "resque:queue:high", job("high", 1))
	srv.Do(t, "RPUSH", "resque:queue:low", job("low", 1), job("low", 2), job("low", 3))
	ids := []string{"h:1:high,low:1", "h:1:high,low:2", "h:1:high,low:3"}
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"high", "empty", "low"}, WorkerIDs: ids, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		queue, raw string
	}{{"high", job("high", 1)}, {"low", job("low", 1)}, {"low", job("low", 2)}}
	if len(got) != len(want) {
		t.Fatalf("fetched %d, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		f := got[i]
		if f.Slot != i || f.Queue != w.queue || string(f.Raw) != w.raw {
			t.Errorf("job %d = slot %d queue %s raw %s; want slot %d queue %s raw %s", i, f.Slot, f.Queue, f.Raw, i, w.queue, w.raw)
		}
		rec := `{"queue":"` + w.queue + `","run_at":"2024-01-15T10:23:45Z","payload":` + w.raw + `}`
		expect(t, srv, rec, "GET", "resque:worker:"+ids[i])
	}
	expect(t, srv, job("low", 3), "LRANGE", "resque:queue:low", "0", "-1")

	// More slots than jobs: the last job goes to the first slot, the rest stay idle.
	more := []string{"h:1:high,low:4", "h:1:high,low:5"}
	got, err = s.FetchWith(bg, wire.FetchRequest{Queues: []string{"high", "low"}, WorkerIDs: more, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 1 || got[0].Slot != 0 || string(got[0].Raw) != job("low", 3) {
		t.Fatalf("second fetch = %+v, %v", got, err)
	}
	expect(t, srv, "0", "EXISTS", "resque:worker:"+more[1])
	expect(t, srv, "0", "EXISTS", "resque:queue:low")

	// Reversed priority.
	srv.Do(t, "RPUSH", "resque:queue:high", job("high", 2))
	srv.Do(t, "RPUSH", "resque:queue:low", job("low", 4))
	got, err = s.FetchWith(bg, wire.FetchRequest{Queues: []string{"low", "high"}, WorkerIDs: []string{"x:1:a"}, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 1 || got[0].Queue != "low" {
		t.Fatalf("reversed fetch = %+v, %v", got, err)
	}
}

// TV-20: "true" in any case, with surrounding whitespace, pauses; other
// values do not.
func TestFetchPauseAllWorkers(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q", archivePayload)
	for _, v := range []string{"true", " TRUE ", "True", "\ttrue\n"} {
		srv.Do(t, "SET", "resque:pause-all-workers", v)
		got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
		if !errors.Is(err, wire.ErrPaused) || len(got) != 0 {
			t.Errorf("pause-all-workers=%q: Fetch = %+v, %v; want ErrPaused", v, got, err)
		}
		expect(t, srv, "1", "LLEN", "resque:queue:q")
		expect(t, srv, "0", "EXISTS", "resque:worker:"+W)
	}
	for _, v := range []string{"1", "yes", "false", "", "truex"} {
		srv.Do(t, "SET", "resque:pause-all-workers", v)
		got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
		if err != nil || len(got) != 1 {
			t.Errorf("pause-all-workers=%q: Fetch = %+v, %v; want the job", v, got, err)
		}
		srv.Do(t, "DEL", "resque:worker:"+W)
		srv.Do(t, "RPUSH", "resque:queue:q", archivePayload)
	}
	srv.Do(t, "DEL", "resque:pause-all-workers")
	if got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant); err != nil || len(got) != 1 {
		t.Errorf("after DEL: Fetch = %+v, %v", got, err)
	}
}

// A popped element that is not a JSON object is stored in the record as a
// JSON string (the record stays valid JSON), and Record() is nil.
func TestFetchNonObjectPayload(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	raws := []string{"not json", "[1,2]", `"str"`, "42", "a/b \"q\" é"}
	for _, r := range raws {
		srv.Do(t, "RPUSH", "resque:queue:q", r)
	}
	for _, r := range raws {
		got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
		if err != nil || len(got) != 1 {
			t.Fatalf("Fetch = %+v, %v", got, err)
		}
		if string(got[0].Raw) != r {
			t.Errorf("Raw = %q, want %q", got[0].Raw, r)
		}
		if rec := got[0].Record(); rec != nil {
			t.Errorf("Record() for %q = %s, want nil", r, rec)
		}
		stored := srv.Do(t, "GET", "resque:worker:"+W)
		w, err := wire.DecodeWorkingOn([]byte(stored))
		if err != nil {
			t.Errorf("record for %q is not valid JSON: %s", r, stored)
			continue
		}
		var asString string
		if w.Queue != "q" || w.RunAt != "2024-01-15T10:23:45Z" || json.Unmarshal(w.Payload, &asString) != nil || asString != r {
			t.Errorf("record for %q = %s", r, stored)
		}
		if r == "not json" && stored != `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":"not json"}` {
			t.Errorf("record = %s", stored)
		}
		srv.Do(t, "DEL", "resque:worker:"+W)
	}
}

// An element that merely starts with '{' and ends with '}' is not
// necessarily JSON: Ruby tools (resque-web's Working page, Worker#job)
// decode worker:<id>, so the record must stay valid JSON.
func TestFetchRecordValidJSONForBraceGarbage(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q", "{oops}")
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 1 || string(got[0].Raw) != "{oops}" {
		t.Fatalf("Fetch = %+v, %v", got, err)
	}
	stored := srv.Do(t, "GET", "resque:worker:"+W)
	if !json.Valid([]byte(stored)) {
		t.Errorf("worker:<id> holds invalid JSON: %s", stored)
	}
	if rec := got[0].Record(); rec != nil && !json.Valid(rec) {
		t.Errorf("Record() is invalid JSON: %s", rec)
	}
}

// A valid job object with surrounding whitespace (Ruby's JSON.parse accepts
// it) must be recorded as an object, and Record() must describe what was
// stored so that a fast stop can requeue it.
func TestFetchWhitespaceWrappedObject(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	raw := " {\"class\":\"Archive\",\"args\":[44,\"masterbrew\"]}\n"
	srv.Do(t, "RPUSH", "resque:queue:q", raw)
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 1 || string(got[0].Raw) != raw {
		t.Fatalf("Fetch = %+v, %v", got, err)
	}
	stored := srv.Do(t, "GET", "resque:worker:"+W)
	w, err := wire.DecodeWorkingOn([]byte(stored))
	if err != nil {
		t.Fatalf("record is not JSON: %s", stored)
	}
	if p, err := wire.DecodePayload(w.Payload); err != nil || p.Class != "Archive" {
		t.Errorf("record's payload is not the job object: %s (%v)", stored, err)
	}
	if rec := got[0].Record(); rec == nil || string(rec) != stored {
		t.Errorf("Record() = %q, stored %q", rec, stored)
	}
}

// A payload over the size limit is not transferred: the slot gets its size,
// SHA-1 and first KiB, and the record stays valid JSON.
func TestFetchOversize(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	big := `{"class":"Big","args":["` + strings.Repeat("x", 3000) + `"]}`
	srv.Do(t, "RPUSH", "resque:queue:q", big)
	srv.Do(t, "RPUSH", "resque:queue:q", archivePayload)
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{"h:1:q:1", "h:1:q:2"}, MaxBytes: 2048, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 2 {
		t.Fatalf("Fetch = %+v, %v", got, err)
	}
	o := got[0].Oversize
	if o == nil || o.Size != len(big) || o.SHA1 != fmt.Sprintf("%x", sha1.Sum([]byte(big))) || string(got[0].Raw) != big[:1024] {
		t.Errorf("oversize fetch = %+v (raw %d bytes)", o, len(got[0].Raw))
	}
	if got[0].Record() != nil {
		t.Errorf("Record() of an oversize job = %s", got[0].Record())
	}
	stored := srv.Do(t, "GET", "resque:worker:h:1:q:1")
	w, err := wire.DecodeWorkingOn([]byte(stored))
	var head string
	if err != nil || w.Queue != "q" || json.Unmarshal(w.Payload, &head) != nil || head != big[:1024] {
		t.Errorf("oversize record = %.200s… (%v)", stored, err)
	}
	if got[1].Oversize != nil || string(got[1].Raw) != archivePayload {
		t.Errorf("second job = %+v", got[1])
	}
	obj := wire.OversizePayloadObject(got[0].Raw, *o)
	if !json.Valid(obj) || !strings.HasSuffix(string(obj), fmt.Sprintf(`,"truncated":true,"bytes":%d,"sha1":"%s"}`, len(big), o.SHA1)) {
		t.Errorf("OversizePayloadObject = %.100s…", obj)
	}
	if raw, ok := wire.RawOfInvalid(obj); !ok || string(raw) != big[:1024] {
		t.Errorf("RawOfInvalid(oversize object) = %d bytes, %v", len(raw), ok)
	}
}

// TV-04: DEL worker:<id>, +1 processed, +1 processed:<id>; no failure keys.
func TestAckSuccessTV04(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "SET", "resque:worker:"+W, tv03Record)
	if _, _, err := s.AckAndFetch(bg, []wire.Ack{{WorkerID: W, Processed: true, Queue: "file_serve", Class: "Archive"}}, specInstant, nil, wire.AckMark{}); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "0", "EXISTS", "resque:worker:"+W)
	expect(t, srv, "1", "GET", "resque:stat:processed")
	expect(t, srv, "1", "GET", "resque:stat:processed:"+W)
	expect(t, srv, "(nil)", "GET", "resque:stat:failed")
	expect(t, srv, "(nil)", "GET", "resque:stat:failed:"+W)
	expect(t, srv, "0", "EXISTS", "resque:failed")
	expect(t, srv, "resque:stat:processed\nresque:stat:processed:"+W, "EVAL", rubyKeysScript, "0")
	if _, _, err := s.AckAndFetch(bg, nil, specInstant, nil, wire.AckMark{}); err != nil {
		t.Errorf("AckAndFetch(nil) = %v", err)
	}
}

// TV-05: RPUSH failed <record>, +1 failed and failed:<id>, then the TV-04
// pipeline.
func TestAckFailureTV05(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "SET", "resque:worker:"+W, tv03Record)
	if _, _, err := s.AckAndFetch(bg, []wire.Ack{{WorkerID: W, Failure: []byte(tv05Failure), CountFailed: true, Processed: true, Queue: "file_serve", Class: "Archive"}}, specInstant, nil, wire.AckMark{}); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "0", "EXISTS", "resque:worker:"+W)
	expect(t, srv, "1", "GET", "resque:stat:processed")
	expect(t, srv, "1", "GET", "resque:stat:processed:"+W)
	expect(t, srv, "1", "GET", "resque:stat:failed")
	expect(t, srv, "1", "GET", "resque:stat:failed:"+W)
	expect(t, srv, tv05Failure, "LRANGE", "resque:failed", "0", "-1")
	expect(t, srv, "resque:failed\nresque:stat:failed\nresque:stat:failed:"+W+"\nresque:stat:processed\nresque:stat:processed:"+W, "EVAL", rubyKeysScript, "0")
}

// resq's own counters live under <ns>:resq: and nowhere else.
func TestAckResqCounters(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	_, _, err := s.AckAndFetch(bg, []wire.Ack{
		{WorkerID: "h:1:q:1", Processed: true, Queue: "q", Class: "A"},
		{WorkerID: "h:1:q:2", Failure: []byte("{}"), CountFailed: true, Processed: true, Queue: "q", Class: "A"},
	}, specInstant, nil, wire.AckMark{})
	if err != nil {
		t.Fatal(err)
	}
	hist := fmt.Sprintf("resque:resq:history:%d", specInstant.Unix()/60)
	expect(t, srv, hist+"\nresque:resq:jobs", "EVAL", "local k = redis.call('KEYS','resque:resq:*') table.sort(k) return k", "0")
	expect(t, srv, "2", "HGET", "resque:resq:jobs", "processed\x1fq\x1fA")
	expect(t, srv, "1", "HGET", "resque:resq:jobs", "failed\x1fq\x1fA")
	expect(t, srv, "2\n1", "HMGET", hist, "processed", "failed")
	if ttl := srv.Do(t, "TTL", hist); ttl == "-1" || ttl == "-2" {
		t.Errorf("history key TTL = %s", ttl)
	}
}

func TestAckBatch(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	a, b, c := "h:1:q:1", "h:1:q:2", "h:1:q:3"
	for _, id := range []string{a, b, c} {
		srv.Do(t, "SET", "resque:worker:"+id, "x")
	}
	srv.Do(t, "SET", "resque:stat:processed", "10")
	srv.Do(t, "SET", "resque:stat:failed", "4")
	srv.Do(t, "RPUSH", "resque:failed", "old")
	_, _, err := s.AckAndFetch(bg, []wire.Ack{
		{WorkerID: a, Processed: true},
		{WorkerID: b, Failure: []byte(`{"f":1}`), CountFailed: true, Processed: true},
		// a dirty-exit style failure: recorded, not counted as failed
		{WorkerID: c, Failure: []byte(`{"f":2}`), Processed: true},
		// the same slot again in one batch
		{WorkerID: a, Failure: []byte(`{"f":3}`), CountFailed: true, Processed: true},
	}, specInstant, nil, wire.AckMark{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "14", "GET", "resque:stat:processed")
	expect(t, srv, "6", "GET", "resque:stat:failed")
	expect(t, srv, "2", "GET", "resque:stat:processed:"+a)
	expect(t, srv, "1", "GET", "resque:stat:failed:"+a)
	expect(t, srv, "1", "GET", "resque:stat:processed:"+b)
	expect(t, srv, "1", "GET", "resque:stat:failed:"+b)
	expect(t, srv, "1", "GET", "resque:stat:processed:"+c)
	expect(t, srv, "(nil)", "GET", "resque:stat:failed:"+c)
	expect(t, srv, "old\n{\"f\":1}\n{\"f\":2}\n{\"f\":3}", "LRANGE", "resque:failed", "0", "-1")
	for _, id := range []string{a, b, c} {
		expect(t, srv, "0", "EXISTS", "resque:worker:"+id)
	}
	// Processed=false (a skipped job the node way): no counters at all.
	srv.Do(t, "SET", "resque:worker:"+a, "x")
	if _, _, err := s.AckAndFetch(bg, []wire.Ack{{WorkerID: a}}, specInstant, nil, wire.AckMark{}); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "0", "EXISTS", "resque:worker:"+a)
	expect(t, srv, "14", "GET", "resque:stat:processed")
	expect(t, srv, "2", "GET", "resque:stat:processed:"+a)
}

// TV-06: SADD workers, SET worker:<id>:started (Time#to_s), heartbeat field.
func TestRegisterTV06(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "HSET", "resque:workers:heartbeat", W, "2000-01-01T00:00:00+00:00") // a stale beat from an earlier run
	if err := s.Register(bg, []string{W}, specInstant); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, W, "SMEMBERS", "resque:workers")
	started := srv.Do(t, "GET", "resque:worker:"+W+":started")
	if started != wire.Started(specInstant) {
		t.Errorf("started = %q, want %q", started, wire.Started(specInstant))
	}
	if ts, err := time.Parse(wire.StartedLayout, started); err != nil || !ts.Equal(specInstant) {
		t.Errorf("started %q does not parse with Ruby's Time#to_s layout as %v: %v", started, specInstant, err)
	}
	checkHeartbeat(t, srv, W)
	expect(t, srv, "-1", "TTL", "resque:worker:"+W+":started")
	expect(t, srv, "resque:worker:"+W+":started\nresque:workers\nresque:workers:heartbeat", "EVAL", "local k = redis.call('KEYS','*') table.sort(k) return k", "0")

	// Several ids at once.
	ids := []string{"h:1:a:1", "h:1:a:2"}
	if err := s.Register(bg, ids, specInstant); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		expect(t, srv, "1", "SISMEMBER", "resque:workers", id)
		expect(t, srv, wire.Started(specInstant), "GET", "resque:worker:"+id+":started")
		checkHeartbeat(t, srv, id)
	}
}

// checkHeartbeat asserts that id's heartbeat is Ruby's Time#iso8601 of the
// Redis server time, to the second.
func checkHeartbeat(t *testing.T, srv *redistest.Server, id string) {
	t.Helper()
	hb := srv.Do(t, "HGET", "resque:workers:heartbeat", id)
	ts, err := time.Parse(wire.HeartbeatLayout, hb)
	if err != nil {
		t.Errorf("heartbeat %q of %s does not parse with %s: %v", hb, id, wire.HeartbeatLayout, err)
		return
	}
	if ts.Nanosecond() != 0 {
		t.Errorf("heartbeat %q has a fraction", hb)
	}
	var sec int64
	fmt.Sscan(strings.SplitN(srv.Do(t, "TIME"), "\n", 2)[0], &sec)
	if d := sec - ts.Unix(); d < 0 || d > 5 {
		t.Errorf("heartbeat %q is %d s from Redis TIME %d", hb, d, sec)
	}
}

// TV-07: the six deletions; global counters and other workers untouched.
func TestUnregisterTV07(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	other := "web2:777:file_serve"
	for _, id := range []string{W, other} {
		srv.Do(t, "SADD", "resque:workers", id)
		srv.Do(t, "SET", "resque:worker:"+id, tv03Record)
		srv.Do(t, "SET", "resque:worker:"+id+":started", "2024-01-15 10:23:45 +0000")
		srv.Do(t, "HSET", "resque:workers:heartbeat", id, "2024-01-15T10:23:45+00:00")
		srv.Do(t, "SET", "resque:stat:processed:"+id, "3")
		srv.Do(t, "SET", "resque:stat:failed:"+id, "1")
	}
	srv.Do(t, "SET", "resque:stat:processed", "6")
	srv.Do(t, "SET", "resque:stat:failed", "2")
	if err := s.Unregister(bg, []string{W}); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, other, "SMEMBERS", "resque:workers")
	expect(t, srv, "0", "EXISTS", "resque:worker:"+W, "resque:worker:"+W+":started", "resque:stat:processed:"+W, "resque:stat:failed:"+W)
	expect(t, srv, other+"\n2024-01-15T10:23:45+00:00", "HGETALL", "resque:workers:heartbeat")
	expect(t, srv, "4", "EXISTS", "resque:worker:"+other, "resque:worker:"+other+":started", "resque:stat:processed:"+other, "resque:stat:failed:"+other)
	expect(t, srv, "6", "GET", "resque:stat:processed")
	expect(t, srv, "2", "GET", "resque:stat:failed")
	// Unregistering an unknown id is harmless.
	if err := s.Unregister(bg, []string{"nobody:1:q"}); err != nil {
		t.Error(err)
	}
}

// TV-11: the record stays (LLEN unchanged) and gains retried_at at the end;
// the job is pushed to the record's queue; a second retry replaces
// retried_at.
func TestRetryFailureTV11(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:failed", tv05Failure)
	at := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	q, err := s.RetryFailure(bg, 0, at)
	if err != nil {
		t.Fatal(err)
	}
	if q != "file_serve" {
		t.Errorf("queue = %q", q)
	}
	// wire.FailedAt renders in the local zone; with TZ=UTC this is exactly
	// TV-11 (TestLocalZoneFormats checks the format itself).
	want := tv05Failure[:len(tv05Failure)-1] + `,"retried_at":"` + wire.FailedAt(at) + `"}`
	if wire.FailedAt(at) == "2024/01/15 10:30:00 UTC" && want != tv11Failure {
		t.Fatalf("test setup: %s", want)
	}
	expect(t, srv, "1", "LLEN", "resque:failed")
	expect(t, srv, want, "LINDEX", "resque:failed", "0")
	expect(t, srv, "file_serve", "SMEMBERS", "resque:queues")
	expect(t, srv, archivePayload, "LRANGE", "resque:queue:file_serve", "0", "-1")

	at2 := at.Add(time.Hour)
	if _, err := s.RetryFailure(bg, 0, at2); err != nil {
		t.Fatal(err)
	}
	want2 := tv05Failure[:len(tv05Failure)-1] + `,"retried_at":"` + wire.FailedAt(at2) + `"}`
	expect(t, srv, "1", "LLEN", "resque:failed")
	expect(t, srv, want2, "LINDEX", "resque:failed", "0")
	expect(t, srv, archivePayload+"\n"+archivePayload, "LRANGE", "resque:queue:file_serve", "0", "-1")

	if _, err := s.RetryFailure(bg, 5, at); !errors.Is(err, wire.ErrNoFailure) {
		t.Errorf("RetryFailure past the end = %v, want ErrNoFailure", err)
	}
}

func TestRetryFailurePayloadVariants(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	at := specInstant
	resqPayload := `{"class":"A","args":[1.0,"a\/b"],"id":"0123456789abcdef0123456789abcdef","enqueued_at":1705314225.123}`
	nodeFailure := `{"worker":"h:1+1","queue":"nq","payload":{"class":"N","queue":"nq","args":[1]},"exception":"Error","error":"e","backtrace":[],"failed_at":"Mon Jan 15 2024 10:23:45 GMT+0000 (Coordinated Universal Time)"}`
	records := []string{
		string(wire.Failure{FailedAt: "t", Payload: json.RawMessage(resqPayload), Exception: "E", Worker: "w", Queue: "rq"}.Encode()),
		string(wire.Failure{FailedAt: "t", Payload: wire.InvalidPayloadObject([]byte("not json")), Exception: "E", Worker: "w", Queue: "bad"}.Encode()),
		nodeFailure,
		string(wire.Failure{FailedAt: "t", Payload: json.RawMessage(archivePayload), Exception: "E", Worker: "w"}.Encode()), // no queue
		string(wire.Failure{FailedAt: "t", Exception: "E", Worker: "w", Queue: "q"}.Encode()),                               // payload null
		"not a record",
	}
	for _, r := range records {
		srv.Do(t, "RPUSH", "resque:failed", r)
	}
	// Original bytes are pushed (extra fields and formatting kept).
	if q, err := s.RetryFailure(bg, 0, at); err != nil || q != "rq" {
		t.Fatalf("retry resq payload: %q, %v", q, err)
	}
	expect(t, srv, resqPayload, "LRANGE", "resque:queue:rq", "0", "-1")
	// A wrapped invalid payload goes back as the original bytes.
	if q, err := s.RetryFailure(bg, 1, at); err != nil || q != "bad" {
		t.Fatalf("retry invalid payload: %q, %v", q, err)
	}
	expect(t, srv, "not json", "LRANGE", "resque:queue:bad", "0", "-1")
	// node record: key order kept, retried_at appended.
	if q, err := s.RetryFailure(bg, 2, at); err != nil || q != "nq" {
		t.Fatalf("retry node record: %q, %v", q, err)
	}
	expect(t, srv, nodeFailure[:len(nodeFailure)-1]+`,"retried_at":"`+wire.FailedAt(at)+`"}`, "LINDEX", "resque:failed", "2")
	expect(t, srv, `{"class":"N","queue":"nq","args":[1]}`, "LRANGE", "resque:queue:nq", "0", "-1")
	// Unretryable records are left alone.
	for i := int64(3); i < 6; i++ {
		if _, err := s.RetryFailure(bg, i, at); err == nil {
			t.Errorf("RetryFailure(%d) succeeded on %s", i, records[i])
		}
		expect(t, srv, records[i], "LINDEX", "resque:failed", fmt.Sprint(i))
	}
	expect(t, srv, "6", "LLEN", "resque:failed")
	expect(t, srv, "bad\nnq\nrq", "SORT", "resque:queues", "ALPHA")
}

// TV-12: removing index 3 of 5 leaves 4, former index 4 becomes 3.
func TestRemoveFailureTV12(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	recs := []string{`{"r":0}`, `{"r":1}`, `{"r":2}`, `{"r":3}`, `{"r":4}`}
	for _, r := range recs {
		srv.Do(t, "RPUSH", "resque:failed", r)
	}
	if err := s.RemoveFailure(bg, 3, nil); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "{\"r\":0}\n{\"r\":1}\n{\"r\":2}\n{\"r\":4}", "LRANGE", "resque:failed", "0", "-1")
	// With an expected record: refused when it differs, done when it matches.
	if err := s.RemoveFailure(bg, 1, []byte(`{"r":2}`)); !errors.Is(err, wire.ErrFailureChanged) {
		t.Errorf("RemoveFailure with a stale record = %v, want ErrFailureChanged", err)
	}
	expect(t, srv, "4", "LLEN", "resque:failed")
	if err := s.RemoveFailure(bg, 1, []byte(`{"r":1}`)); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "{\"r\":0}\n{\"r\":2}\n{\"r\":4}", "LRANGE", "resque:failed", "0", "-1")
	if err := s.RemoveFailure(bg, 3, nil); !errors.Is(err, wire.ErrNoFailure) {
		t.Errorf("RemoveFailure past the end = %v, want ErrNoFailure", err)
	}
	// Identical records and an empty-string record: only the indexed one goes.
	srv.Do(t, "DEL", "resque:failed")
	srv.Do(t, "RPUSH", "resque:failed", "", "dup", "dup", "dup")
	if err := s.RemoveFailure(bg, 2, nil); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "\ndup\ndup", "LRANGE", "resque:failed", "0", "-1")
	if err := s.RemoveFailure(bg, 1, nil); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, "\ndup", "LRANGE", "resque:failed", "0", "-1")
	if raw, err := s.FailureAt(bg, 1); err != nil || string(raw) != "dup" {
		t.Errorf("FailureAt(1) = %q, %v", raw, err)
	}
	if _, err := s.FailureAt(bg, 9); !errors.Is(err, wire.ErrNoFailure) {
		t.Errorf("FailureAt(9) = %v", err)
	}
}

func TestClearFailures(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:failed", "a", "b", "c")
	srv.Do(t, "SET", "resque:stat:failed", "3")
	n, err := s.ClearFailures(bg)
	if err != nil || n != 3 {
		t.Fatalf("ClearFailures = %d, %v", n, err)
	}
	expect(t, srv, "0", "EXISTS", "resque:failed")
	expect(t, srv, "3", "GET", "resque:stat:failed") // the counter is not a list length
	if n, err := s.FailedCount(bg); err != nil || n != 0 {
		t.Errorf("FailedCount = %d, %v", n, err)
	}
	if n, err := s.ClearFailures(bg); err != nil || n != 0 {
		t.Errorf("ClearFailures of nothing = %d, %v", n, err)
	}
}

// TV-08 style: removal by class reuses each element's bytes, so extra fields
// and formatting never prevent a match; duplicates are counted.
func TestRemoveMatchingTV08(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q",
		`{"class":"A","args":[1]}`, `{"class":"B","args":[1]}`, `{"class":"A","args":[2]}`, `{"class":"A","queue":"q","args":[3]}`)
	byClass := func(class string) func([]byte) bool {
		return func(raw []byte) bool {
			p, err := wire.DecodePayload(raw)
			return err == nil && p.Class == class
		}
	}
	n, err := s.RemoveMatching(bg, "q", byClass("A"))
	if err != nil || n != 3 {
		t.Fatalf("RemoveMatching(A) = %d, %v; want 3", n, err)
	}
	expect(t, srv, `{"class":"B","args":[1]}`, "LRANGE", "resque:queue:q", "0", "-1")

	// TV-09 style: by args (decoded), whatever the extra fields.
	srv.Do(t, "DEL", "resque:queue:q")
	srv.Do(t, "RPUSH", "resque:queue:q",
		`{"class":"A","args":[1]}`, `{"class":"A","queue":"q","args":[3]}`, `{"class":"A","args":[3],"id":"x"}`, `{"class":"A","args":[1]}`, `not json`)
	n, err = s.RemoveMatching(bg, "q", func(raw []byte) bool {
		p, err := wire.DecodePayload(raw)
		return err == nil && p.Class == "A" && string(p.Args) == "[3]"
	})
	if err != nil || n != 2 {
		t.Fatalf("RemoveMatching(A, 3) = %d, %v; want 2", n, err)
	}
	expect(t, srv, "{\"class\":\"A\",\"args\":[1]}\n{\"class\":\"A\",\"args\":[1]}\nnot json", "LRANGE", "resque:queue:q", "0", "-1")
	// Duplicates: one LREM removes both copies and both are counted.
	n, err = s.RemoveMatching(bg, "q", byClass("A"))
	if err != nil || n != 2 {
		t.Fatalf("RemoveMatching(duplicates) = %d, %v; want 2", n, err)
	}
	expect(t, srv, "not json", "LRANGE", "resque:queue:q", "0", "-1")
	// Missing queue.
	if n, err := s.RemoveMatching(bg, "none", byClass("A")); err != nil || n != 0 {
		t.Errorf("RemoveMatching(missing queue) = %d, %v", n, err)
	}
}

// TV-18: failed is LLEN failed, not stat:failed.
func TestInfoTV18(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "SADD", "resque:queues", "a", "b")
	srv.Do(t, "RPUSH", "resque:queue:a", "1", "2")
	srv.Do(t, "RPUSH", "resque:queue:b", "1", "2", "3")
	srv.Do(t, "SET", "resque:stat:processed", "10")
	srv.Do(t, "SET", "resque:stat:failed", "4")
	srv.Do(t, "SADD", "resque:workers", "h:1:a", "h:2:b")
	srv.Do(t, "SET", "resque:worker:h:1:a", tv03Record)
	srv.Do(t, "RPUSH", "resque:failed", tv05Failure)
	in, err := s.Info(bg)
	if err != nil {
		t.Fatal(err)
	}
	want := wire.Info{Pending: 5, Processed: 10, Failed: 1, StatFailed: 4, Queues: 2, Workers: 2, Working: 1}
	if in != want {
		t.Errorf("Info = %+v, want %+v", in, want)
	}
	// An empty record does not count as working (Worker.working).
	srv.Do(t, "SET", "resque:worker:h:2:b", "")
	if in, err := s.Info(bg); err != nil || in.Working != 1 {
		t.Errorf("Info with an empty record = %+v, %v", in, err)
	}
}

func TestInfoEmpty(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	in, err := s.Info(bg)
	if err != nil || in != (wire.Info{}) {
		t.Errorf("Info of an empty database = %+v, %v", in, err)
	}
}

// setupDeadWorker writes all of a worker's keys plus global counters.
func setupDeadWorker(t *testing.T, srv *redistest.Server, id, record string) {
	t.Helper()
	srv.Do(t, "SADD", "resque:workers", id)
	if record != "" {
		srv.Do(t, "SET", "resque:worker:"+id, record)
	}
	srv.Do(t, "SET", "resque:worker:"+id+":started", "2024-01-15 10:23:45 +0000")
	srv.Do(t, "HSET", "resque:workers:heartbeat", id, "2024-01-15T10:18:00+00:00")
	srv.Do(t, "SET", "resque:stat:processed:"+id, "5")
	srv.Do(t, "SET", "resque:stat:failed:"+id, "1")
	srv.Do(t, "SET", "resque:stat:processed", "50")
	srv.Do(t, "SET", "resque:stat:failed", "7")
}

func expectUnregistered(t *testing.T, srv *redistest.Server, id string) {
	t.Helper()
	expect(t, srv, "0", "SISMEMBER", "resque:workers", id)
	expect(t, srv, "0", "EXISTS", "resque:worker:"+id, "resque:worker:"+id+":started", "resque:stat:processed:"+id, "resque:stat:failed:"+id)
	expect(t, srv, "0", "HEXISTS", "resque:workers:heartbeat", id)
	expect(t, srv, "50", "GET", "resque:stat:processed")
	expect(t, srv, "7", "GET", "resque:stat:failed")
}

func TestRecoverWorkerRequeue(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	dead := "web2:777:file_serve"
	rec := `{"queue":"file_serve","run_at":"2024-01-15T10:17:30Z","payload":{"class":"Archive","args":[44,"masterbrew"],"id":"x"}}`
	setupDeadWorker(t, srv, dead, rec)
	srv.Do(t, "RPUSH", "resque:queue:file_serve", `{"class":"Next","args":[]}`)
	w, err := wire.DecodeWorkingOn([]byte(rec))
	if err != nil {
		t.Fatal(err)
	}
	ok, err := s.RecoverWorker(bg, dead, []byte(rec), w, wire.RecoverRequeue, nil)
	if err != nil || !ok {
		t.Fatalf("RecoverWorker = %v, %v", ok, err)
	}
	// Back at the head of its queue, byte for byte.
	expect(t, srv, "{\"class\":\"Archive\",\"args\":[44,\"masterbrew\"],\"id\":\"x\"}\n{\"class\":\"Next\",\"args\":[]}", "LRANGE", "resque:queue:file_serve", "0", "-1")
	expect(t, srv, "file_serve", "SMEMBERS", "resque:queues")
	expect(t, srv, "0", "EXISTS", "resque:failed")
	expectUnregistered(t, srv, dead)
}

func TestRecoverWorkerFail(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	dead := "web2:777:file_serve"
	rec := `{"queue":"file_serve","run_at":"2024-01-15T10:17:30Z","payload":` + archivePayload + `}`
	setupDeadWorker(t, srv, dead, rec)
	srv.Do(t, "RPUSH", "resque:failed", "older")
	w, _ := wire.DecodeWorkingOn([]byte(rec))
	// TV-14's record.
	failure := wire.Failure{FailedAt: "2024/01/15 10:23:45 UTC", Payload: w.Payload, Exception: "Resque::PruneDeadWorkerDirtyExit",
		Error: "Worker web2:777:file_serve did not gracefully exit while processing Archive", Backtrace: []string{}, Worker: dead, Queue: w.Queue}.Encode()
	const tv14 = `{"failed_at":"2024/01/15 10:23:45 UTC","payload":{"class":"Archive","args":[44,"masterbrew"]},"exception":"Resque::PruneDeadWorkerDirtyExit","error":"Worker web2:777:file_serve did not gracefully exit while processing Archive","backtrace":[],"worker":"web2:777:file_serve","queue":"file_serve"}`
	if string(failure) != tv14 {
		t.Fatalf("TV-14 record:\n got %s\nwant %s", failure, tv14)
	}
	ok, err := s.RecoverWorker(bg, dead, []byte(rec), w, wire.RecoverFail, failure)
	if err != nil || !ok {
		t.Fatalf("RecoverWorker = %v, %v", ok, err)
	}
	expect(t, srv, "older\n"+tv14, "LRANGE", "resque:failed", "0", "-1")
	expect(t, srv, "0", "EXISTS", "resque:queue:file_serve", "resque:queues") // not requeued
	expectUnregistered(t, srv, dead)                                          // stat:failed unchanged
}

func TestRecoverWorkerNoOpWhenRecordChanged(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	dead := "web2:777:file_serve"
	old := `{"queue":"file_serve","run_at":"2024-01-15T10:17:30Z","payload":` + archivePayload + `}`
	cur := `{"queue":"file_serve","run_at":"2024-01-15T10:20:00Z","payload":{"class":"Other","args":[]}}`
	setupDeadWorker(t, srv, dead, cur)
	w, _ := wire.DecodeWorkingOn([]byte(old))
	for _, mode := range []wire.RecoverMode{wire.RecoverRequeue, wire.RecoverFail} {
		ok, err := s.RecoverWorker(bg, dead, []byte(old), w, mode, []byte(tv05Failure))
		if err != nil || ok {
			t.Errorf("mode %d: RecoverWorker = %v, %v; want false", mode, ok, err)
		}
	}
	// Expected "no record" while one exists: also nothing.
	if ok, err := s.RecoverWorker(bg, dead, nil, wire.WorkingOn{}, wire.RecoverRequeue, nil); err != nil || ok {
		t.Errorf("nil expected with a record present = %v, %v", ok, err)
	}
	expect(t, srv, cur, "GET", "resque:worker:"+dead)
	expect(t, srv, "1", "SISMEMBER", "resque:workers", dead)
	expect(t, srv, "3", "EXISTS", "resque:worker:"+dead+":started", "resque:stat:processed:"+dead, "resque:stat:failed:"+dead)
	expect(t, srv, "1", "HEXISTS", "resque:workers:heartbeat", dead)
	expect(t, srv, "0", "EXISTS", "resque:failed", "resque:queue:file_serve", "resque:queues")
}

func TestRecoverWorkerIdle(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	dead := "web2:777:file_serve"
	setupDeadWorker(t, srv, dead, "")
	ok, err := s.RecoverWorker(bg, dead, nil, wire.WorkingOn{}, wire.RecoverRequeue, nil)
	if err != nil || !ok {
		t.Fatalf("RecoverWorker(idle) = %v, %v", ok, err)
	}
	expectUnregistered(t, srv, dead)
	expect(t, srv, "0", "EXISTS", "resque:failed", "resque:queues")
}

func TestRequeue(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:file_serve", archivePayload)
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"file_serve"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 1 {
		t.Fatalf("Fetch = %+v, %v", got, err)
	}
	srv.Do(t, "RPUSH", "resque:queue:file_serve", `{"class":"Next","args":[]}`)
	srv.Do(t, "SREM", "resque:queues", "file_serve")
	f := got[0]
	expect(t, srv, tv03Record, "GET", "resque:worker:"+W)
	expect(t, srv, "1", "LLEN", "resque:queue:file_serve")
	// The slot's record exists: back to the head, record deleted.
	if ok, err := s.Requeue(bg, W, f.Queue, f.Raw); err != nil || !ok {
		t.Fatalf("Requeue = %v, %v", ok, err)
	}
	expect(t, srv, archivePayload+"\n{\"class\":\"Next\",\"args\":[]}", "LRANGE", "resque:queue:file_serve", "0", "-1")
	expect(t, srv, "0", "EXISTS", "resque:worker:"+W)
	expect(t, srv, "file_serve", "SMEMBERS", "resque:queues")
	// Twice: the record is gone, so no duplicate.
	if ok, err := s.Requeue(bg, W, f.Queue, f.Raw); err != nil || ok {
		t.Errorf("second Requeue = %v, %v", ok, err)
	}
	expect(t, srv, "2", "LLEN", "resque:queue:file_serve")
}

func TestWorkerStates(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	setupDeadWorker(t, srv, W, tv03Record)
	srv.Do(t, "HSET", "resque:workers:heartbeat", "ghost:1:q", "2024-01-15T10:00:00+00:00") // heartbeat only
	states, err := s.WorkerStates(bg)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]wire.WorkerState{}
	for _, st := range states {
		byID[st.ID] = st
	}
	if len(states) != 2 {
		t.Fatalf("states = %+v", states)
	}
	w := byID[W]
	if string(w.Record) != tv03Record || w.Started != "2024-01-15 10:23:45 +0000" || w.Heartbeat != "2024-01-15T10:18:00+00:00" || w.Processed != 5 || w.Failed != 1 {
		t.Errorf("state of W = %+v", w)
	}
	g := byID["ghost:1:q"]
	if g.Record != nil || g.Heartbeat != "2024-01-15T10:00:00+00:00" || g.Started != "" {
		t.Errorf("state of ghost = %+v", g)
	}
	if !w.Registered || g.Registered {
		t.Errorf("registered: W %v, ghost %v; want only W (in the workers set)", w.Registered, g.Registered)
	}
}

// QueueRange and FailedRange are Ruby's peek and Failure.all: a window of the
// list, failure records decoded with their payloads.
func TestQueueAndFailedRange(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q", "j0", "j1", "j2")
	for _, c := range []struct {
		start, count int64
		want         string
	}{{0, 2, "j0,j1"}, {1, 10, "j1,j2"}, {3, 1, ""}, {0, 0, ""}} {
		got, err := s.QueueRange(bg, "q", c.start, c.count)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, g := range got {
			names = append(names, string(g))
		}
		if strings.Join(names, ",") != c.want {
			t.Errorf("QueueRange(%d, %d) = %q, want %q", c.start, c.count, names, c.want)
		}
	}
	if got, err := s.QueueRange(bg, "missing", 0, 5); err != nil || len(got) != 0 {
		t.Errorf("QueueRange of a missing queue = %q, %v", got, err)
	}

	srv.Do(t, "RPUSH", "resque:failed", tv05Failure, "not json", `{"payload":{"class":"B","args":[]},"queue":"q2"}`)
	recs, err := s.FailedRange(bg, 0, 10)
	if err != nil || len(recs) != 3 {
		t.Fatalf("FailedRange = %+v, %v", recs, err)
	}
	if r := recs[0]; r.Index != 0 || string(r.Raw) != tv05Failure || r.Err != nil || r.Failure.Queue != "file_serve" ||
		r.Failure.Exception != "RuntimeError" || !json.Valid(r.Failure.Payload) || !strings.Contains(string(r.Failure.Payload), `"class":"Archive"`) {
		t.Errorf("record 0 = %+v", r)
	}
	if r := recs[1]; r.Index != 1 || string(r.Raw) != "not json" || r.Err == nil || r.Failure.Payload != nil {
		t.Errorf("record 1 = %+v; want an unparsable record", r)
	}
	if r := recs[2]; r.Index != 2 || r.Err != nil || string(r.Failure.Payload) != `{"class":"B","args":[]}` || r.Failure.Queue != "q2" {
		t.Errorf("record 2 = %+v", r)
	}
	if recs, err := s.FailedRange(bg, 2, 5); err != nil || len(recs) != 1 || recs[0].Index != 2 {
		t.Errorf("FailedRange(2, 5) = %+v, %v; want record 2 with its index", recs, err)
	}
}
