package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// A Rails job (written byte for byte as Rails' Resque adapter writes it),
// an unknown job_class, and a job from resq enqueue --activejob, worked by
// resq work --exec JOB_CLASS=PATH.
func TestWorkExecActiveJob(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	rec := script(t, dir, "record.sh", `cat > "`+dir+`/in-$RESQ_JOB_ID.json"
echo "$RESQ_JOB_CLASS $RESQ_JOB_QUEUE $RESQ_JOB_ID" > "`+dir+`/env-$RESQ_JOB_ID.txt"`)

	rails := `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"WelcomeJob","job_id":"0f8b2a34-1c7d-4e5f-9a6b-3c2d1e0f9a8b","provider_job_id":null,"queue_name":"mailers","priority":null,"arguments":[{"user_id":7,"opts":{"force":true,"_aj_symbol_keys":["force"]},"at":{"_aj_serialized":"ActiveJob::Serializers::TimeSerializer","value":"2024-01-15T10:23:45.500000000Z"},"_aj_symbol_keys":["user_id","at"]},{"_aj_serialized":"ActiveJob::Serializers::SymbolSerializer","value":"pending"}],"executions":0,"exception_executions":{},"locale":"en","timezone":"UTC","enqueued_at":"2024-01-15T10:23:45.123456789Z","scheduled_at":null}]}`
	unknown := strings.Replace(rails, `"job_class":"WelcomeJob"`, `"job_class":"PurgeJob"`, 1)
	f.srv.Do(t, "SADD", f.key("queues"), "mailers")
	f.srv.Do(t, "RPUSH", f.key("queue:mailers"), rails, unknown)

	var e struct {
		ID, Class string
		JobClass  string `json:"job_class"`
	}
	f.okJSON(&e, "enqueue", "--activejob", "--queue", "mailers", "WelcomeJob", `[{"user_id": 8}, "x"]`)
	if e.JobClass != "WelcomeJob" || e.Class != resq.ActiveJobWrapperClass || e.ID == "" {
		t.Errorf("enqueue --activejob --json = %+v", e)
	}
	raw := f.srv.Do(t, "LINDEX", f.key("queue:mailers"), "2")
	mustContain(t, "enqueued payload", raw, `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"WelcomeJob","job_id":"`+e.ID+`"`,
		`"arguments":[{"user_id":8,"_aj_symbol_keys":[]},"x"],"executions":0`)
	if r := f.run("enqueue", "--activejob", "--encrypt", "--queue", "mailers", "WelcomeJob"); r.code != exitUsage || !strings.Contains(r.stderr, "cannot be combined with --encrypt") {
		t.Errorf("--activejob --encrypt: %+v", r)
	}

	b := f.start("work", "--queues", "mailers", "--poll", "0.05", "--exec", "WelcomeJob="+rec)
	testkit.Eventually(t, "3 jobs processed", func() bool { return f.stats().Processed == 3 })
	b.cancel()
	if code := b.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("work exit %d\n%s", code, b.stderr.String())
	}

	for id, want := range map[string]string{
		"0f8b2a34-1c7d-4e5f-9a6b-3c2d1e0f9a8b": `[{"user_id":7,"opts":{"force":true},"at":"2024-01-15T10:23:45.500000000Z"},"pending"]`,
		e.ID:                                   `[{"user_id":8},"x"]`,
	} {
		in, err := os.ReadFile(filepath.Join(dir, "in-"+id+".json"))
		if err != nil || string(in) != want {
			t.Errorf("stdin of %s = %q, %v; want %s", id, in, err, want)
		}
		env, err := os.ReadFile(filepath.Join(dir, "env-"+id+".txt"))
		if err != nil || strings.TrimSpace(string(env)) != "WelcomeJob mailers "+id {
			t.Errorf("environment of %s = %q, %v", id, env, err)
		}
	}
	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list")
	if len(fails) != 1 || fails[0].Exception != resq.ExceptionUnknownClass || !strings.Contains(fails[0].Error, `ActiveJob job_class "PurgeJob" is not registered`) ||
		fails[0].Job.Class != resq.ActiveJobWrapperClass {
		t.Fatalf("failures = %+v", fails)
	}
	// The log names the job by ActiveJob's job_id and never shows arguments.
	mustContain(t, "work log", b.stderr.String(), "job_id=0f8b2a34-1c7d-4e5f-9a6b-3c2d1e0f9a8b", "class=<unknown>")
	if strings.Contains(b.stderr.String(), "pending") {
		t.Errorf("arguments reached the log")
	}

	// --activejob --in: a resque-scheduler item as Rails' set(wait:) stores it.
	f.ok("enqueue", "--activejob", "--in", "1h", "--queue", "mailers", "RemindJob", `[3]`)
	ts := f.srv.Do(t, "ZRANGE", f.key("delayed_queue_schedule"), "0", "-1")
	item := f.srv.Do(t, "LINDEX", f.key("delayed:"+ts), "0")
	mustContain(t, "delayed item", item, `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"RemindJob"`,
		`"arguments":[3],`, `"scheduled_at":"20`, `"}],"queue":"mailers"}`)
}
