package resq_test

// End-to-end checks that a real resq Worker, Client and Admin leave exactly
// the Redis state Ruby Resque 3 does (docs/protocol.md §2.4–§6.2, test
// vectors recorded from Ruby, §10; the bare § numbers below are that page's).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/internal/wire"
)

const wcArchive = `{"class":"Archive","args":[44,"masterbrew"]}`

// wcWorker builds a worker with the test vectors' host and pid (web1:4242)
// and a short poll.
func wcWorker(t *testing.T, b *bundle, queues []string, concurrency int) *resq.Worker {
	t.Helper()
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{
		Queues: queues, Concurrency: concurrency, Hostname: "web1", PID: 4242,
		PollInterval: 10 * time.Millisecond, Logger: testkit.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (b *bundle) get(t *testing.T, rel string) string {
	t.Helper()
	return b.srv.Do(t, "GET", b.key(rel))
}

func (b *bundle) want(t *testing.T, want string, args ...string) {
	t.Helper()
	if got := b.srv.Do(t, args...); got != want {
		t.Errorf("%s:\n got %q\nwant %q", strings.Join(args, " "), got, want)
	}
}

// rubyKeys lists the namespace's keys, without the namespace and without
// resq's own keys (under resq:), sorted.
func (b *bundle) rubyKeys(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, k := range strings.Split(b.srv.Do(t, "KEYS", b.ns+":*"), "\n") {
		if k == "" || strings.HasPrefix(k, b.ns+":resq:") {
			continue
		}
		out = append(out, strings.TrimPrefix(k, b.ns+":"))
	}
	sort.Strings(out)
	return out
}

func (b *bundle) waitProcessed(t *testing.T, n int) {
	t.Helper()
	want := fmt.Sprint(n)
	testkit.Eventually(t, "stat:processed = "+want, func() bool { return b.get(t, "stat:processed") == want })
}

// ruby pushes a job the way a Ruby producer does (TV-01).
func (b *bundle) ruby(t *testing.T, queue, payload string) {
	t.Helper()
	b.srv.Do(t, "SADD", b.key("queues"), queue)
	b.srv.Do(t, "RPUSH", b.key("queue:"+queue), payload)
}

// jsonKeys returns the top-level keys of a JSON object in order, and the raw
// values.
func jsonKeys(t *testing.T, raw string) ([]string, map[string]json.RawMessage) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("not a JSON object: %s", raw)
	}
	var keys []string
	vals := map[string]json.RawMessage{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatalf("bad JSON %s: %v", raw, err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("bad JSON %s: %v", raw, err)
		}
		keys = append(keys, k.(string))
		vals[k.(string)] = v
	}
	return keys, vals
}

var (
	runAtRe    = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
	failedAtRe = regexp.MustCompile(`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d [A-Za-z0-9+\-]+$`)
)

// TV-03, TV-04, TV-06, TV-07 with a real worker (one slot): registration,
// the working-on record while the handler runs, counters after it, and the
// six deletions at shutdown.
func TestWireWorkerSuccessLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const id = "web1:4242:file_serve,warm_cache"
	w := wcWorker(t, b, []string{"file_serve", "warm_cache"}, 1)
	if got := w.IDs(); !reflect.DeepEqual(got, []string{id}) {
		t.Fatalf("IDs() = %q, want [%s]", got, id)
	}
	started := make(chan *resq.Job, 1)
	release := make(chan struct{})
	w.HandleFunc("Archive", func(ctx context.Context, job *resq.Job) error {
		started <- job
		<-release
		return nil
	})
	b.ruby(t, "file_serve", wcArchive)
	before := time.Now()
	stop := testkit.RunWorker(t, w)

	var job *resq.Job
	select {
	case job = <-started:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the job did not start")
	}
	if job.WorkerID != id || job.Queue != "file_serve" || job.Class != "Archive" || string(job.Args) != `[44,"masterbrew"]` || job.ID != "" {
		t.Errorf("job = %+v", job)
	}
	// Registration (TV-06).
	b.want(t, id, "SMEMBERS", b.key("workers"))
	st := b.get(t, "worker:"+id+":started")
	if ts, err := time.Parse(wire.StartedLayout, st); err != nil {
		t.Errorf("worker:<id>:started = %q does not parse with Ruby's Time#to_s layout: %v", st, err)
	} else if ts.Before(before.Add(-2*time.Second)) || ts.After(time.Now().Add(time.Second)) {
		t.Errorf("worker:<id>:started = %q, not the start time", st)
	}
	hb := b.srv.Do(t, "HGET", b.key("workers:heartbeat"), id)
	if _, err := time.Parse(wire.HeartbeatLayout, hb); err != nil {
		t.Errorf("heartbeat = %q does not parse with Time#iso8601's layout: %v", hb, err)
	}
	// The working-on record (TV-03): queue, run_at, the popped bytes.
	rec := b.get(t, "worker:"+id)
	m := regexp.MustCompile(`^\{"queue":"file_serve","run_at":"([^"]*)","payload":` + regexp.QuoteMeta(wcArchive) + `\}$`).FindStringSubmatch(rec)
	if m == nil {
		t.Errorf("worker:<id> = %s", rec)
	} else if !runAtRe.MatchString(m[1]) {
		t.Errorf("run_at = %q, want Ruby's UTC ISO 8601 with Z", m[1])
	}
	b.want(t, "0", "EXISTS", b.key("queue:file_serve"))
	b.want(t, "(nil)", "GET", b.key("stat:processed")) // counted only after the job

	close(release)
	b.waitProcessed(t, 1)
	// TV-04.
	b.want(t, "0", "EXISTS", b.key("worker:"+id))
	b.want(t, "1", "GET", b.key("stat:processed:"+id))
	b.want(t, "(nil)", "GET", b.key("stat:failed"))
	b.want(t, "(nil)", "GET", b.key("stat:failed:"+id))
	b.want(t, "0", "LLEN", b.key("failed"))

	stop()
	// TV-07: the six keys are gone, the global counter stays.
	b.want(t, "0", "SISMEMBER", b.key("workers"), id)
	b.want(t, "0", "EXISTS", b.key("worker:"+id), b.key("worker:"+id+":started"), b.key("stat:processed:"+id), b.key("stat:failed:"+id))
	b.want(t, "0", "HEXISTS", b.key("workers:heartbeat"), id)
	b.want(t, "1", "GET", b.key("stat:processed"))
	if keys := b.rubyKeys(t); !reflect.DeepEqual(keys, []string{"queues", "stat:processed"}) {
		t.Errorf("keys after shutdown = %q, want [queues stat:processed]", keys)
	}
}

// TV-05 with a real worker: Ruby's key order, the popped bytes as payload,
// both failure counters; after shutdown only the global ones remain.
func TestWireWorkerFailureRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := wcWorker(t, b, []string{"file_serve"}, 1)
	const id = "web1:4242:file_serve"
	w.HandleFunc("Boom", func(ctx context.Context, job *resq.Job) error { return errors.New("disk full") })
	if _, err := b.client.Enqueue(context.Background(), "file_serve", "Boom", 44, "masterbrew"); err != nil {
		t.Fatal(err)
	}
	// A Ruby/node payload with formatting Ruby would normalise: kept verbatim.
	odd := `{"class":"Boom","queue":"file_serve","args":[1.0,"a\/b","\u00e9",12345678901234567890]}`
	b.srv.Do(t, "RPUSH", b.key("queue:file_serve"), odd)
	enqueued := strings.Split(b.srv.Do(t, "LRANGE", b.key("queue:file_serve"), "0", "-1"), "\n")
	if len(enqueued) != 2 {
		t.Fatalf("queue = %q", enqueued)
	}
	before := time.Now()
	stop := testkit.RunWorker(t, w)
	b.waitProcessed(t, 2)
	b.want(t, "2", "GET", b.key("stat:failed"))
	b.want(t, "2", "GET", b.key("stat:failed:"+id))
	b.want(t, "2", "GET", b.key("stat:processed:"+id))
	b.want(t, "0", "EXISTS", b.key("worker:"+id))

	records := strings.Split(b.srv.Do(t, "LRANGE", b.key("failed"), "0", "-1"), "\n")
	if len(records) != 2 {
		t.Fatalf("failed = %q", records)
	}
	for i, r := range records {
		keys, vals := jsonKeys(t, r)
		if want := []string{"failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"}; !reflect.DeepEqual(keys, want) {
			t.Errorf("record %d keys %v, want %v", i, keys, want)
		}
		if string(vals["payload"]) != enqueued[i] {
			t.Errorf("record %d payload:\n got %s\nwant %s", i, vals["payload"], enqueued[i])
		}
		var f struct {
			FailedAt  string   `json:"failed_at"`
			Exception string   `json:"exception"`
			Error     string   `json:"error"`
			Backtrace []string `json:"backtrace"`
			Worker    string   `json:"worker"`
			Queue     string   `json:"queue"`
		}
		if err := json.Unmarshal([]byte(r), &f); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if f.Exception != resq.ExceptionError || f.Error != "disk full" || f.Worker != id || f.Queue != "file_serve" || f.Backtrace == nil {
			t.Errorf("record %d = %+v", i, f)
		}
		if !failedAtRe.MatchString(f.FailedAt) {
			t.Errorf("failed_at %q is not %%Y/%%m/%%d %%H:%%M:%%S %%Z", f.FailedAt)
		} else if ts, err := time.ParseInLocation(wire.FailedAtLayout, f.FailedAt, time.Local); err != nil ||
			ts.Before(before.Add(-2*time.Second)) || ts.After(time.Now().Add(2*time.Second)) {
			t.Errorf("failed_at %q is not the failure time (%v)", f.FailedAt, err)
		}
	}

	stop()
	b.want(t, "2", "GET", b.key("stat:failed"))
	b.want(t, "2", "GET", b.key("stat:processed"))
	b.want(t, "0", "EXISTS", b.key("stat:failed:"+id), b.key("stat:processed:"+id))
	if keys := b.rubyKeys(t); !reflect.DeepEqual(keys, []string{"failed", "queues", "stat:failed", "stat:processed"}) {
		t.Errorf("keys after shutdown = %q", keys)
	}
}

// A popped element that is not a job object becomes a failure whose record
// is still valid JSON (docs/protocol.md: payload {"class":"","args":[],
// "raw":…}), and retrying it pushes the original bytes back.
func TestWireInvalidPayloadFailureRecord(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := wcWorker(t, b, []string{"q"}, 1)
	w.HandleFunc("A", func(ctx context.Context, job *resq.Job) error { return nil })
	raws := []string{"not json", "[1,2]", "{oops}", `{"class":"A","args":{}}`}
	for _, r := range raws {
		b.ruby(t, "q", r)
	}
	stop := testkit.RunWorker(t, w)
	b.waitProcessed(t, len(raws))
	stop()
	b.want(t, fmt.Sprint(len(raws)), "GET", b.key("stat:failed"))
	records := strings.Split(b.srv.Do(t, "LRANGE", b.key("failed"), "0", "-1"), "\n")
	if len(records) != len(raws) {
		t.Fatalf("failed = %q", records)
	}
	for i, r := range records {
		if !json.Valid([]byte(r)) {
			t.Errorf("failure record for %q is not valid JSON: %s", raws[i], r)
		}
	}
	if want := `"payload":{"class":"","args":[],"raw":"not json"},"exception":"Resq::InvalidPayload"`; !strings.Contains(records[0], want) {
		t.Errorf("record = %s, want it to contain %s", records[0], want)
	}
	// A JSON object with a bad args value is kept verbatim.
	if !strings.Contains(records[3], `"payload":{"class":"A","args":{}},`) {
		t.Errorf("record = %s", records[3])
	}
	views, err := b.admin.Failures(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range views {
		if v.Unparsable || v.Exception != resq.ExceptionInvalidPayload {
			t.Errorf("view %d: unparsable %v, exception %q, raw %s", i, v.Unparsable, v.Exception, v.Raw)
		}
	}
	for i := range raws {
		if _, err := b.admin.RetryFailure(context.Background(), int64(i)); err != nil {
			t.Errorf("RetryFailure(%d) for %q: %v", i, raws[i], err)
		}
	}
	b.want(t, strings.Join(raws, "\n"), "LRANGE", b.key("queue:q"), "0", "-1")
}

// Worker ids (§4.1, §4.15 rule 3): host:pid:queues with one slot,
// host:pid:queues:N with several; exclusions are not part of the id.
func TestWireWorkerIDs(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct {
		queues []string
		n      int
		want   []string
	}{
		{[]string{"file_serve", "warm_cache"}, 1, []string{"web1:4242:file_serve,warm_cache"}},
		{[]string{"file_serve,warm_cache"}, 1, []string{"web1:4242:file_serve,warm_cache"}},
		{[]string{"critical", "*", "!low"}, 1, []string{"web1:4242:critical,*"}},
		{[]string{" a , b ", "!x"}, 2, []string{"web1:4242:a,b:1", "web1:4242:a,b:2"}},
	} {
		if got := wcWorker(t, b, c.queues, c.n).IDs(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("queues %q x%d: IDs() = %q, want %q", c.queues, c.n, got, c.want)
		}
	}

	w := wcWorker(t, b, []string{"a", "b"}, 3)
	w.HandleFunc("A", func(ctx context.Context, job *resq.Job) error { return nil })
	ids := []string{"web1:4242:a,b:1", "web1:4242:a,b:2", "web1:4242:a,b:3"}
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "3 ids registered", func() bool { return b.srv.Do(t, "SCARD", b.key("workers")) == "3" })
	b.want(t, strings.Join(ids, "\n"), "SORT", b.key("workers"), "ALPHA")
	for _, id := range ids {
		if _, err := time.Parse(wire.StartedLayout, b.get(t, "worker:"+id+":started")); err != nil {
			t.Errorf("%s started: %v", id, err)
		}
		if _, err := time.Parse(wire.HeartbeatLayout, b.srv.Do(t, "HGET", b.key("workers:heartbeat"), id)); err != nil {
			t.Errorf("%s heartbeat: %v", id, err)
		}
		// Ruby's parse: host, pid, queues split on ','.
		if p, ok := wire.ParseWorkerID(id); !ok || p.Host != "web1" || p.PID != 4242 {
			t.Errorf("ParseWorkerID(%s) = %+v", id, p)
		}
	}
	// Each slot runs one job at a time with its own record and counters.
	for i := 0; i < 6; i++ {
		b.ruby(t, "a", `{"class":"A","args":[]}`)
	}
	b.waitProcessed(t, 6)
	sum := 0
	for _, id := range ids {
		var n int
		fmt.Sscan(b.get(t, "stat:processed:"+id), &n)
		sum += n
	}
	if sum != 6 {
		t.Errorf("per-slot processed counters sum to %d, want 6", sum)
	}
	stop()
	b.want(t, "0", "SCARD", b.key("workers"))
	b.want(t, "0", "EXISTS", b.key("workers:heartbeat"))
	if keys := b.rubyKeys(t); !reflect.DeepEqual(keys, []string{"queues", "stat:processed"}) {
		t.Errorf("keys after shutdown = %q", keys)
	}
}

// Client.Enqueue: {"class","args"} first in Ruby's encoding, then id and
// enqueued_at; SADD queues (TV-01, TV-02).
func TestWireClientEnqueueBytes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	at := time.UnixMilli(1705314225123)
	c := testkit.Client(t, b.conn, resq.ClientConfig{NowFunc: func() time.Time { return at }})
	e, err := c.Enqueue(ctx, "q", "X", 1, "a")
	if err != nil {
		t.Fatal(err)
	}
	got := b.srv.Do(t, "LRANGE", b.key("queue:q"), "0", "-1")
	m := regexp.MustCompile(`^\{"class":"X","args":\[1,"a"\],"id":"([0-9a-f]{32})","enqueued_at":1705314225\.123\}$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("stored %s", got)
	}
	if m[1] != e.ID || e.Class != "X" || e.Queue != "q" || e.Size != len(got) {
		t.Errorf("Enqueued = %+v, stored id %s", e, m[1])
	}
	b.want(t, "q", "SMEMBERS", b.key("queues"))

	type mail struct {
		To   string `json:"to"`
		Name string `json:"name"`
		HTML string `json:"html"`
	}
	if _, err := c.Enqueue(ctx, "mail", "Mailer", mail{"a/b@example.com", "Zoë", "<b>&</b>"}, 1.5, nil, true); err != nil {
		t.Fatal(err)
	}
	got = b.srv.Do(t, "LRANGE", b.key("queue:mail"), "0", "-1")
	if want := `{"class":"Mailer","args":[{"to":"a/b@example.com","name":"Zoë","html":"<b>&</b>"},1.5,null,true],"id":"`; !strings.HasPrefix(got, want) {
		t.Errorf("stored %s, want prefix %s", got, want)
	}
	if _, err := c.Enqueue(ctx, "q", "NoArgs"); err != nil {
		t.Fatal(err)
	}
	got = b.srv.Do(t, "LINDEX", b.key("queue:q"), "1")
	if !strings.HasPrefix(got, `{"class":"NoArgs","args":[],"id":"`) {
		t.Errorf("stored %s", got)
	}
	b.want(t, "mail\nq", "SORT", b.key("queues"), "ALPHA")
	// Ruby's rules: an empty queue or class is refused, nothing written.
	if _, err := c.Enqueue(ctx, "", "X"); err == nil {
		t.Error("empty queue accepted")
	}
	if _, err := c.Enqueue(ctx, "q", ""); err == nil {
		t.Error("empty class accepted")
	}
	b.want(t, "2", "LLEN", b.key("queue:q"))
}

// Client.Dequeue: by class reuses the stored bytes (TV-08); by args compares
// decoded arguments, so extra fields do not hide a job (unlike TV-09).
func TestWireClientDequeue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, p := range []string{`{"class":"A","args":[1]}`, `{"class":"B","args":[1]}`, `{"class":"A","args":[2]}`, `{"class":"A","queue":"q","args":[3]}`} {
		b.ruby(t, "q", p)
	}
	n, err := b.client.Dequeue(ctx, "q", "A")
	if err != nil || n != 3 {
		t.Fatalf("Dequeue(A) = %d, %v; want 3", n, err)
	}
	b.want(t, `{"class":"B","args":[1]}`, "LRANGE", b.key("queue:q"), "0", "-1")

	b.srv.Do(t, "DEL", b.key("queue:q"))
	if _, err := b.client.Enqueue(ctx, "q", "A", 3); err != nil { // resq payload with id and enqueued_at
		t.Fatal(err)
	}
	for _, p := range []string{`{"class":"A","args":[3]}`, `{"class":"A","queue":"q","args":[3]}`, `{"class":"A", "args": [ 3 ]}`,
		`{"class":"A","args":[4]}`, `{"class":"B","args":[3]}`, `{"class":"A","args":["3"]}`, `not json`} {
		b.ruby(t, "q", p)
	}
	n, err = b.client.Dequeue(ctx, "q", "A", 3)
	if err != nil || n != 4 {
		t.Fatalf("Dequeue(A, 3) = %d, %v; want 4", n, err)
	}
	b.want(t, "{\"class\":\"A\",\"args\":[4]}\n{\"class\":\"B\",\"args\":[3]}\n{\"class\":\"A\",\"args\":[\"3\"]}\nnot json", "LRANGE", b.key("queue:q"), "0", "-1")
	if n, err := b.client.Dequeue(ctx, "missing", "A"); err != nil || n != 0 {
		t.Errorf("Dequeue on a missing queue = %d, %v", n, err)
	}
}

// Admin.RetryFailure: the record stays and gains retried_at at the end; the
// original payload bytes are pushed to the record's queue (TV-11).
func TestWireAdminRetryFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	payload := `{"class":"Archive","args":[44,"masterbrew"],"id":"0123456789abcdef0123456789abcdef","enqueued_at":1705314225.123}`
	rec := `{"failed_at":"2024/01/15 10:23:46 UTC","payload":` + payload + `,"exception":"RuntimeError","error":"disk full","backtrace":["/app/jobs/archive.rb:12:in ` + "`perform'" + `"],"worker":"web1:4242:file_serve,warm_cache","queue":"file_serve"}`
	b.srv.Do(t, "RPUSH", b.key("failed"), rec)
	q, err := b.admin.RetryFailure(ctx, 0)
	if err != nil || q != "file_serve" {
		t.Fatalf("RetryFailure = %q, %v", q, err)
	}
	b.want(t, payload, "LRANGE", b.key("queue:file_serve"), "0", "-1")
	b.want(t, "file_serve", "SMEMBERS", b.key("queues"))
	b.want(t, "1", "LLEN", b.key("failed"))
	after := b.srv.Do(t, "LINDEX", b.key("failed"), "0")
	prefix := rec[:len(rec)-1] + `,"retried_at":"`
	if !strings.HasPrefix(after, prefix) || !strings.HasSuffix(after, `"}`) {
		t.Fatalf("record after retry = %s", after)
	}
	retried := strings.TrimSuffix(strings.TrimPrefix(after, prefix), `"}`)
	if !failedAtRe.MatchString(retried) {
		t.Errorf("retried_at = %q, want %%Y/%%m/%%d %%H:%%M:%%S %%Z", retried)
	}
	views, err := b.admin.Failures(ctx, 0, 1)
	if err != nil || len(views) != 1 || views[0].RetriedAt != retried || views[0].Job.ID != "0123456789abcdef0123456789abcdef" {
		t.Errorf("Failures = %+v, %v", views, err)
	}
	// Retrying again replaces retried_at and pushes another copy.
	if _, err := b.admin.RetryFailure(ctx, 0); err != nil {
		t.Fatal(err)
	}
	after = b.srv.Do(t, "LINDEX", b.key("failed"), "0")
	if strings.Count(after, `"retried_at"`) != 1 || !strings.HasPrefix(after, prefix) {
		t.Errorf("record after second retry = %s", after)
	}
	b.want(t, payload+"\n"+payload, "LRANGE", b.key("queue:file_serve"), "0", "-1")
	if _, err := b.admin.RetryFailure(ctx, 3); err == nil {
		t.Error("RetryFailure past the end succeeded")
	}
}

// TV-18 through Admin.Stats: failed is LLEN failed, not stat:failed.
func TestWireAdminStatsTV18(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.Do(t, "SADD", b.key("queues"), "a", "b")
	b.srv.Do(t, "RPUSH", b.key("queue:a"), "1", "2")
	b.srv.Do(t, "RPUSH", b.key("queue:b"), "1", "2", "3")
	b.srv.Do(t, "SET", b.key("stat:processed"), "10")
	b.srv.Do(t, "SET", b.key("stat:failed"), "4")
	b.srv.Do(t, "SADD", b.key("workers"), "h:1:a", "h:2:b")
	b.srv.Do(t, "SET", b.key("worker:h:1:a"), `{"queue":"a","run_at":"2024-01-15T10:23:45Z","payload":{"class":"A","args":[]}}`)
	b.srv.Do(t, "RPUSH", b.key("failed"), "{}")
	st, err := b.admin.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 5 || st.Processed != 10 || st.Queues != 2 || st.Workers != 2 || st.Working != 1 || st.Failed != 1 || st.StatFailed != 4 {
		t.Errorf("Stats = %+v", st)
	}
}

// Queue globs end to end (§4.8, TV-19).
func TestWireQueueGlobs(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, queues []string, jobs []string, wantDone []string, wantID string) {
		b := setup(t)
		for _, q := range jobs {
			b.ruby(t, q, `{"class":"J","args":["`+q+`"]}`)
		}
		w := wcWorker(t, b, queues, 1)
		if got := w.IDs(); !reflect.DeepEqual(got, []string{"web1:4242:" + wantID}) {
			t.Errorf("IDs() = %q, want web1:4242:%s", got, wantID)
		}
		var mu sync.Mutex
		var done []string
		resq.Handle(w, "J", func(ctx context.Context, args []string) error {
			mu.Lock()
			defer mu.Unlock()
			done = append(done, args[0])
			return nil
		})
		stop := testkit.RunWorker(t, w)
		if len(wantDone) > 0 {
			b.waitProcessed(t, len(wantDone))
		}
		time.Sleep(150 * time.Millisecond) // several more polls: nothing else may run
		stop()
		mu.Lock()
		defer mu.Unlock()
		if !reflect.DeepEqual(done, wantDone) && !(len(done) == 0 && len(wantDone) == 0) {
			t.Errorf("queues %q ran %q, want %q in that order", queues, done, wantDone)
		}
		left := map[string]bool{}
		for _, q := range jobs {
			left[q] = true
		}
		for _, q := range wantDone {
			delete(left, q)
		}
		for q := range left {
			b.want(t, "1", "LLEN", b.key("queue:"+q))
		}
	}
	all := []string{"test_one", "low", "high", ".hidden", "critical", "test_two"}
	t.Run("star minus low", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"*", "!low"}, all, []string{"critical", "high", "test_one", "test_two"}, "*")
	})
	t.Run("critical star minus low", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"critical,*,!low"}, all, []string{"critical", "high", "test_one", "test_two"}, "critical,*")
	})
	t.Run("prefix glob", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"test_*"}, all, []string{"test_one", "test_two"}, "test_*")
	})
	t.Run("star minus glob", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"*,!test_*"}, all, []string{"critical", "high", "low"}, "*")
	})
	t.Run("static", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"low,high"}, all, []string{"low", "high"}, "low,high")
	})
	t.Run("braces literal", func(t *testing.T) {
		t.Parallel()
		run(t, []string{"{high,low}"}, all, nil, "{high,low}")
	})
}

// Dequeue by args compares decoded values; integers must compare exactly
// (§0.4: integers of any size are exact), so a job whose argument differs
// only beyond float64 precision is not removed.
func TestWireClientDequeueLargeIntegers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cases := []struct {
		stored string
		arg    any
		want   int64
	}{
		{`[9007199254740993]`, int64(9007199254740992), 0},
		{`[9007199254740993]`, int64(9007199254740993), 1},
		{`[1180591620717411303425]`, json.Number("1180591620717411303424"), 0},
		{`[1180591620717411303425]`, json.Number("1180591620717411303425"), 1},
		{`[1.0]`, 1, 1}, // Ruby's 1.0 and Go's 1 are the same value
	}
	for i, c := range cases {
		q := fmt.Sprintf("q%d", i)
		b.ruby(t, q, `{"class":"A","args":`+c.stored+`}`)
		n, err := b.client.Dequeue(ctx, q, "A", c.arg)
		if err != nil || n != c.want {
			t.Errorf("Dequeue(A, %v) of args %s = %d, %v; want %d", c.arg, c.stored, n, err, c.want)
		}
	}
}

// TV-13 (clear retried, highest index first) and TV-10 (remove queue)
// through Admin.
func TestWireAdminClearRetriedAndRemoveQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	r0 := `{"failed_at":"2024/01/15 10:23:46 UTC","payload":{"class":"A","args":[0]},"exception":"E","error":"e","backtrace":[],"worker":"w","queue":"q","retried_at":"2024/01/15 10:30:00 UTC"}`
	r1 := `{"failed_at":"2024/01/15 10:23:46 UTC","payload":{"class":"A","args":[1]},"exception":"E","error":"e","backtrace":[],"worker":"w","queue":"q"}`
	r2 := `{"failed_at":"2024/01/15 10:23:46 UTC","payload":{"class":"A","args":[2]},"exception":"E","error":"e","backtrace":[],"worker":"w","queue":"q","retried_at":"2024/01/15 10:31:00 UTC"}`
	b.srv.Do(t, "RPUSH", b.key("failed"), r0, r1, r2)
	n, err := b.admin.ClearRetriedFailures(ctx)
	if err != nil || n != 2 {
		t.Fatalf("ClearRetriedFailures = %d, %v", n, err)
	}
	b.want(t, r1, "LRANGE", b.key("failed"), "0", "-1")

	b.ruby(t, "q", wcArchive)
	b.ruby(t, "keep", wcArchive)
	if err := b.admin.RemoveQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	b.want(t, "keep", "SMEMBERS", b.key("queues"))
	b.want(t, "0", "EXISTS", b.key("queue:q"))
	b.want(t, "1", "LLEN", b.key("queue:keep"))
}

// A dead worker whose in-flight record holds a non-object payload (stored
// as a JSON string, docs/protocol.md) is failed with that payload's original
// text, so that a retry pushes the job back, not the working-on record.
func TestWireDeadWorkerNonObjectPayload(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	dead := "web9:1:q"
	b.srv.Do(t, "SADD", b.key("workers"), dead)
	b.srv.Do(t, "SET", b.key("worker:"+dead), `{"queue":"q","run_at":"2024-01-15T10:17:30Z","payload":"not json"}`)
	b.srv.Do(t, "SET", b.key("worker:"+dead+":started"), "2024-01-15 10:17:00 +0000")
	b.srv.Do(t, "HSET", b.key("workers:heartbeat"), dead, "2024-01-15T10:18:00+00:00")
	res, err := b.admin.Prune(ctx, 0, resq.FailDeadJobs)
	if err != nil || len(res.Pruned) != 1 || res.Failed != 1 {
		t.Fatalf("Prune = %+v, %v", res, err)
	}
	b.want(t, "0", "EXISTS", b.key("worker:"+dead), b.key("worker:"+dead+":started"))
	b.want(t, "0", "SCARD", b.key("workers"))
	rec := b.srv.Do(t, "LINDEX", b.key("failed"), "0")
	keys, vals := jsonKeys(t, rec)
	if want := []string{"failed_at", "payload", "exception", "error", "backtrace", "worker", "queue"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("keys %v", keys)
	}
	if got := string(vals["payload"]); got != `{"class":"","args":[],"raw":"not json"}` {
		t.Errorf("payload = %s, want the wrapped original text", got)
	}
	if got := string(vals["exception"]); got != `"Resque::PruneDeadWorkerDirtyExit"` {
		t.Errorf("exception = %s", got)
	}
	if _, err := b.admin.RetryFailure(ctx, 0); err != nil {
		t.Fatal(err)
	}
	b.want(t, "not json", "LRANGE", b.key("queue:q"), "0", "-1")
}
