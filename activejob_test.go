package resq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// specActiveJob is the example of docs/protocol.md "ActiveJob jobs" (the
// spec's §3.4): what Rails 7.1's Resque adapter writes for
// ArchiveJob.set(queue: :file_serve).perform_later(44, "masterbrew").
const specActiveJob = `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"ArchiveJob","job_id":"5b1f0c3e-8c4e-4b8e-9d7a-0f3c2b1a9e77","provider_job_id":null,"queue_name":"file_serve","priority":null,"arguments":[44,"masterbrew"],"executions":0,"exception_executions":{},"locale":"en","timezone":"UTC","enqueued_at":"2024-01-15T10:23:45.123456789Z","scheduled_at":null}]}`

// railsWelcome is what Rails writes for
//
//	WelcomeJob.perform_later({user_id: 7, "opts" => {force: true}, at: Time.utc(2024,1,15,10,23,45.5r)}, :pending, gid)
//
// (symbol keys, a nested hash, a Time, a Symbol and a GlobalID), retried
// once (executions 1).
const railsWelcome = `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"WelcomeJob","job_id":"0f8b2a34-1c7d-4e5f-9a6b-3c2d1e0f9a8b","provider_job_id":null,"queue_name":"mail","priority":10,"arguments":[{"user_id":7,"opts":{"force":true,"_aj_symbol_keys":["force"]},"at":{"_aj_serialized":"ActiveJob::Serializers::TimeSerializer","value":"2024-01-15T10:23:45.500000000Z"},"_aj_symbol_keys":["user_id","at"]},{"_aj_serialized":"ActiveJob::Serializers::SymbolSerializer","value":"pending"},{"_aj_globalid":"gid://shop/User/7"}],"executions":1,"exception_executions":{"[Net::OpenTimeout]":1},"locale":"de","timezone":"Europe/Berlin","enqueued_at":"2024-01-15T10:23:45.123456789Z","scheduled_at":null}]}`

type welcome struct {
	UserID int                  `json:"user_id"`
	Opts   struct{ Force bool } `json:"opts"`
	At     time.Time            `json:"at"`
}

func TestActiveJobFromRailsRunsHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"mail", "file_serve"}, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		job  resq.Job
		args []json.RawMessage
		w    welcome
	}
	var mu sync.Mutex
	got := map[string]seen{}
	w.HandleFunc("WelcomeJob", func(ctx context.Context, job *resq.Job) error {
		var args []json.RawMessage
		if err := json.Unmarshal(job.Args, &args); err != nil {
			return err
		}
		var wa welcome
		if err := json.Unmarshal(args[0], &wa); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		got["WelcomeJob"] = seen{job: *job, args: args, w: wa}
		return nil
	})
	var archived []any
	resq.Handle(w, "ArchiveJob", func(ctx context.Context, a []any) error {
		mu.Lock()
		defer mu.Unlock()
		archived = a
		return nil
	})
	// Written byte for byte as Rails writes them.
	b.srv.Do(t, "RPUSH", b.key("queue:mail"), railsWelcome)
	b.srv.Do(t, "RPUSH", b.key("queue:file_serve"), specActiveJob)
	b.srv.Do(t, "SADD", b.key("queues"), "mail", "file_serve")
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "2 jobs processed", func() bool {
		st, _ := b.admin.Stats(ctx)
		return st.Processed == 2
	})
	stop()
	if st, _ := b.admin.Stats(ctx); st.Failed != 0 {
		fs, _ := b.admin.Failures(ctx, 0, 10)
		t.Fatalf("failures: %+v", fs)
	}
	mu.Lock()
	defer mu.Unlock()
	s := got["WelcomeJob"]
	if want := `[{"user_id":7,"opts":{"force":true},"at":"2024-01-15T10:23:45.500000000Z"},"pending","gid://shop/User/7"]`; string(s.job.Args) != want {
		t.Errorf("handler args\n%s\nwant\n%s", s.job.Args, want)
	}
	if !s.w.At.Equal(time.Date(2024, 1, 15, 10, 23, 45, 5e8, time.UTC)) || s.w.UserID != 7 || !s.w.Opts.Force {
		t.Errorf("typed decode = %+v", s.w)
	}
	aj := s.job.ActiveJob
	if s.job.Class != "WelcomeJob" || s.job.ID != "0f8b2a34-1c7d-4e5f-9a6b-3c2d1e0f9a8b" || s.job.Queue != "mail" || aj == nil {
		t.Fatalf("job = %+v", s.job)
	}
	if aj.JobClass != "WelcomeJob" || aj.Executions != 1 || aj.Priority == nil || *aj.Priority != 10 || aj.Locale != "de" ||
		aj.Timezone != "Europe/Berlin" || aj.ExceptionExecutions["[Net::OpenTimeout]"] != 1 || !aj.ScheduledAt.IsZero() ||
		!aj.EnqueuedAt.Equal(time.Date(2024, 1, 15, 10, 23, 45, 123456789, time.UTC)) || !strings.Contains(string(aj.Arguments), "_aj_symbol_keys") {
		t.Errorf("ActiveJob info = %+v", aj)
	}
	if len(archived) != 2 || archived[0] != json.Number("44") || archived[1] != "masterbrew" {
		t.Errorf("ArchiveJob args = %#v", archived)
	}
}

func TestActiveJobUnknownAndMalformed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"default"}, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan struct{}, 10)
	w.HandleFunc("ArchiveJob", func(ctx context.Context, job *resq.Job) error { ran <- struct{}{}; return nil })
	unknown := strings.Replace(specActiveJob, `"job_class":"ArchiveJob"`, `"job_class":"Admin::PurgeJob"`, 1)
	noClass := `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_id":"x","arguments":[1]}]}`
	twoArgs := `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"ArchiveJob","arguments":[]},2]}`
	badArg := strings.Replace(specActiveJob, `[44,"masterbrew"]`, `[{"_aj_serialized":"MoneySerializer","cents":100}]`, 1)
	for _, p := range []string{unknown, noClass, twoArgs, badArg} {
		b.srv.Do(t, "RPUSH", b.key("queue:default"), p)
	}
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "4 jobs processed", func() bool {
		st, _ := b.admin.Stats(ctx)
		return st.Processed == 4
	})
	stop()
	if len(ran) != 0 {
		t.Fatal("a handler ran")
	}
	fs, err := b.admin.Failures(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 4 {
		t.Fatalf("%d failures", len(fs))
	}
	want := []struct{ exc, msg, raw string }{
		{resq.ExceptionUnknownClass, `ActiveJob job_class "Admin::PurgeJob" is not registered on this worker`, unknown},
		{resq.ExceptionInvalidPayload, "invalid ActiveJob payload: job_class is missing or empty; the job was not run", noClass},
		{resq.ExceptionInvalidPayload, "exactly one element", twoArgs},
		{resq.ExceptionInvalidPayload, `arguments[0]: values of ActiveJob serializer "MoneySerializer" are not supported`, badArg},
	}
	for i, f := range fs {
		if f.Exception != want[i].exc || !strings.Contains(f.Error, want[i].msg) {
			t.Errorf("failure %d: %s: %s; want %s: …%s…", i, f.Exception, f.Error, want[i].exc, want[i].msg)
		}
		// The record keeps the payload as Rails wrote it, class JobWrapper,
		// so Ruby's tools show it "(via ActiveJob)".
		if f.Job.Class != resq.ActiveJobWrapperClass || f.Queue != "default" {
			t.Errorf("failure %d: job %+v queue %s", i, f.Job, f.Queue)
		}
	}
	// Views know Rails' jobs by their ActiveJob job_id.
	if fs[0].Job.ID != "5b1f0c3e-8c4e-4b8e-9d7a-0f3c2b1a9e77" || fs[1].Job.ID != "x" {
		t.Errorf("failure job ids %q, %q", fs[0].Job.ID, fs[1].Job.ID)
	}
	// The payload is embedded whole, byte for byte.
	rec := b.srv.Do(t, "LINDEX", b.key("failed"), "0")
	var r struct{ Payload json.RawMessage }
	if err := json.Unmarshal([]byte(rec), &r); err != nil || string(r.Payload) != unknown {
		t.Errorf("failure payload %s (%v)", r.Payload, err)
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestEnqueueActiveJobMatchesRails(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	at := time.Date(2024, 1, 15, 10, 23, 45, 123456789, time.UTC)
	c := testkit.Client(t, b.conn, resq.ClientConfig{NowFunc: func() time.Time { return at }})
	e, err := c.EnqueueActiveJob(ctx, "file_serve", "ArchiveJob", 44, "masterbrew")
	if err != nil {
		t.Fatal(err)
	}
	if !uuidV4.MatchString(e.ID) || e.Class != resq.ActiveJobWrapperClass || e.Queue != "file_serve" {
		t.Fatalf("enqueued %+v", e)
	}
	raw := b.srv.Do(t, "LINDEX", b.key("queue:file_serve"), "0")
	if got := strings.Replace(raw, e.ID, "5b1f0c3e-8c4e-4b8e-9d7a-0f3c2b1a9e77", 1); got != specActiveJob {
		t.Fatalf("payload\n%s\nwant (job_id aside)\n%s", raw, specActiveJob)
	}
	if e.Size != len(raw) {
		t.Errorf("size %d, payload %d bytes", e.Size, len(raw))
	}
	// Hashes get ActiveJob's string-key marker; keys ActiveJob reserves and
	// encryption are refused.
	if _, err := c.EnqueueActiveJob(ctx, "mail", "WelcomeJob", map[string]any{"user_id": 7, "opts": map[string]bool{"force": true}}); err != nil {
		t.Fatal(err)
	}
	raw = b.srv.Do(t, "LINDEX", b.key("queue:mail"), "0")
	if !strings.Contains(raw, `"arguments":[{"opts":{"force":true,"_aj_symbol_keys":[]},"user_id":7,"_aj_symbol_keys":[]}]`) {
		t.Errorf("hash arguments: %s", raw)
	}
	_, err = c.EnqueueActiveJob(ctx, "mail", "WelcomeJob", map[string]any{"_aj_globalid": "gid://x/User/1"})
	if !errors.Is(err, resq.ErrInvalidArgs) || !strings.Contains(err.Error(), "reserved by ActiveJob") {
		t.Errorf("reserved key: %v", err)
	}
	_, err = c.EnqueueWith(ctx, resq.EnqueueParams{Queue: "mail", Class: "WelcomeJob", ActiveJob: true, Encrypt: true})
	if err == nil || !strings.Contains(err.Error(), "cannot be encrypted") {
		t.Errorf("encrypted ActiveJob: %v", err)
	}
	if _, err := c.EnqueueActiveJob(ctx, "mail", "", 1); err == nil {
		t.Error("empty job class accepted")
	}
	if n := b.srv.Do(t, "LLEN", b.key("queue:mail")); n != "1" {
		t.Errorf("queue:mail holds %s jobs, want 1 (refused ones must not be pushed)", n)
	}
}

// A Go-enqueued ActiveJob, signed, batch-enqueued, runs on a resq worker
// with the signature verified.
func TestEnqueueActiveJobSignedRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	file, err := resq.NewKeyringFile(resq.KeyHMAC)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := resq.ParseKeyring(file)
	if err != nil {
		t.Fatal(err)
	}
	c := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: kr})
	res, err := c.EnqueueBatch(ctx, []resq.EnqueueParams{
		{Queue: "mail", Class: "WelcomeJob", ActiveJob: true, Args: []any{map[string]any{"user_id": 7}}},
		{Queue: "mail", Class: "Plain", Args: []any{1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	raw := b.srv.Do(t, "LINDEX", b.key("queue:mail"), "0")
	if !strings.HasPrefix(raw, `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"WelcomeJob","job_id":"`+res[0].Job.ID+`"`) ||
		!strings.Contains(raw, `"id":"`+res[0].Job.ID+`"`) || !strings.Contains(raw, `"sig":"`) {
		t.Fatalf("signed payload %s", raw)
	}
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"mail"}, Concurrency: 1, Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	type run struct {
		job  resq.Job
		args string
	}
	done := make(chan run, 2)
	w.HandleFunc("WelcomeJob", func(ctx context.Context, job *resq.Job) error {
		done <- run{*job, string(job.Args)}
		return nil
	})
	w.HandleFunc("Plain", func(ctx context.Context, job *resq.Job) error { done <- run{*job, string(job.Args)}; return nil })
	testkit.RunWorker(t, w)
	for range 2 {
		select {
		case r := <-done:
			if r.job.Class == "WelcomeJob" && (r.args != `[{"user_id":7}]` || !r.job.Signed || r.job.ID != res[0].Job.ID || r.job.ActiveJob == nil) {
				t.Errorf("ActiveJob run: %+v %s", r.job, r.args)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("jobs did not run")
		}
	}
}

// A handler registered under the wrapper class itself gets every ActiveJob
// job undecoded.
func TestActiveJobWrapperHandlerSeesRaw(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"file_serve"}, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan resq.Job, 1)
	w.HandleFunc(resq.ActiveJobWrapperClass, func(ctx context.Context, job *resq.Job) error { got <- *job; return nil })
	w.HandleFunc("ArchiveJob", func(ctx context.Context, job *resq.Job) error { t.Error("ArchiveJob ran"); return nil })
	b.srv.Do(t, "RPUSH", b.key("queue:file_serve"), specActiveJob)
	testkit.RunWorker(t, w)
	select {
	case j := <-got:
		if j.Class != resq.ActiveJobWrapperClass || j.ActiveJob != nil || !strings.HasPrefix(string(j.Args), `[{"job_class":"ArchiveJob"`) {
			t.Errorf("job %+v", j)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("job did not run")
	}
}

// WorkerConfig.ClassConcurrency caps ActiveJob jobs by their job_class.
func TestActiveJobClassConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for range 6 {
		if _, err := b.client.EnqueueActiveJob(ctx, "q", "ArchiveJob", 1); err != nil {
			t.Fatal(err)
		}
	}
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 3, PollInterval: 20 * time.Millisecond,
		ClassConcurrency: map[string]int{"ArchiveJob": 1}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var running, maxRunning, done int
	w.HandleFunc("ArchiveJob", func(ctx context.Context, j *resq.Job) error {
		mu.Lock()
		running++
		maxRunning = max(maxRunning, running)
		mu.Unlock()
		time.Sleep(30 * time.Millisecond)
		mu.Lock()
		running--
		done++
		mu.Unlock()
		return nil
	})
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "6 jobs", func() bool { mu.Lock(); defer mu.Unlock(); return done == 6 })
	stop()
	if maxRunning != 1 {
		t.Fatalf("%d ActiveJob jobs of a job_class capped at 1 ran at once", maxRunning)
	}
}

type signup struct {
	Email string `json:"email"`
	Code  string `json:"code" resq:"secret"`
}

// The secret fields of an ActiveJob's argument type are hidden in views of
// the JobWrapper job.
func TestActiveJobArgsRedacted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	if _, err := b.client.EnqueueActiveJob(ctx, "mail", "SignupJob", signup{Email: "a@example.com", Code: "777-secret-code"}); err != nil {
		t.Fatal(err)
	}
	jobs, err := b.admin.Peek(ctx, "mail", 0, 1)
	if err != nil || len(jobs) != 1 {
		t.Fatal(jobs, err)
	}
	args := string(jobs[0].Args)
	if strings.Contains(args, "777-secret-code") || !strings.Contains(args, `"code":"[REDACTED]"`) || !strings.Contains(args, "a@example.com") {
		t.Errorf("view args %s", args)
	}
}

// Delayed ActiveJobs: one as Rails writes it for set(wait:) (a
// resque-scheduler item, class JobWrapper, scheduled_at set) and one from
// EnqueueParams{ActiveJob, At}, stored as Rails would store it; the
// scheduler moves both and the worker runs them by job_class.
func TestActiveJobDelayed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	past := time.Now().Add(-10 * time.Second).Unix()
	ts := fmt.Sprint(past)
	item := `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"RemindJob","job_id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","provider_job_id":null,"queue_name":"mail","priority":null,"arguments":[{"user_id":3,"_aj_ruby2_keywords":["user_id"]}],"executions":0,"exception_executions":{},"locale":"en","timezone":"UTC","enqueued_at":"2024-01-15T10:23:45.123456789Z","scheduled_at":"2024-01-15T10:28:45.123456789Z"}],"queue":"mail"}`
	b.srv.Do(t, "RPUSH", b.key("delayed:"+ts), item)
	b.srv.Do(t, "SADD", b.key("timestamps:"+item), "delayed:"+ts)
	b.srv.Do(t, "ZADD", b.key("delayed_queue_schedule"), ts, ts)

	now := time.Date(2024, 1, 15, 10, 23, 45, 123456789, time.UTC)
	due := time.Now().Add(1500 * time.Millisecond)
	c := testkit.Client(t, b.conn, resq.ClientConfig{NowFunc: func() time.Time { return now }})
	e, err := c.EnqueueWith(ctx, resq.EnqueueParams{Queue: "mail", Class: "RemindJob", ActiveJob: true, At: due, Args: []any{map[string]int{"user_id": 4}}})
	if err != nil {
		t.Fatal(err)
	}
	dueTS := fmt.Sprint(due.Unix())
	stored := b.srv.Do(t, "LRANGE", b.key("delayed:"+dueTS), "0", "-1")
	want := `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"RemindJob","job_id":"` + e.ID +
		`","provider_job_id":null,"queue_name":"mail","priority":null,"arguments":[{"user_id":4,"_aj_symbol_keys":[]}],"executions":0,"exception_executions":{},"locale":"en","timezone":"UTC","enqueued_at":"2024-01-15T10:23:45.123456789Z","scheduled_at":"` +
		due.UTC().Format("2006-01-02T15:04:05.000000000Z") + `"}],"queue":"mail"}`
	if stored != want {
		t.Fatalf("delayed item\n%s\nwant\n%s", stored, want)
	}
	if got := b.srv.Do(t, "SMEMBERS", b.key("timestamps:"+want)); got != "delayed:"+dueTS {
		t.Errorf("timestamps index = %q", got)
	}

	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"mail"}, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	type run struct {
		id, args  string
		scheduled time.Time
	}
	var mu sync.Mutex
	var runs []run
	w.HandleFunc("RemindJob", func(ctx context.Context, j *resq.Job) error {
		mu.Lock()
		defer mu.Unlock()
		runs = append(runs, run{j.ID, string(j.Args), j.ActiveJob.ScheduledAt})
		return nil
	})
	testkit.RunWorker(t, w)
	runScheduler(t, b, resq.SchedulerConfig{})
	testkit.Eventually(t, "both delayed ActiveJobs run", func() bool { mu.Lock(); defer mu.Unlock(); return len(runs) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if r := runs[0]; r.id != "7c9e6679-7425-40de-944b-e07fc1f90ae7" || r.args != `[{"user_id":3}]` ||
		!r.scheduled.Equal(time.Date(2024, 1, 15, 10, 28, 45, 123456789, time.UTC)) {
		t.Errorf("Rails' delayed job ran as %+v", r)
	}
	if r := runs[1]; r.id != e.ID || r.args != `[{"user_id":4}]` || !r.scheduled.Equal(due) {
		t.Errorf("Go's delayed job ran as %+v (due %s)", r, due)
	}
}
