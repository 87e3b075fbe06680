package resq_test

import (
	"context"
	"testing"

	"github.com/resq-go/resq"
)

// Admin.Workers lists the ids in the workers set, not ids that only have a
// heartbeat left, and shows what a registered worker is running.
func TestAdminWorkersRegisteredOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const busy, idle, ghost = "h1:10:q", "h1:11:q", "h2:12:q"
	b.srv.Do(t, "SADD", b.key("workers"), busy, idle)
	b.srv.Do(t, "SET", b.key("worker:"+busy), `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":{"class":"Work","args":[1],"id":"abc"}}`)
	b.srv.Do(t, "HSET", b.key("workers:heartbeat"), busy, "2024-01-15T10:23:45+00:00", ghost, "2024-01-15T10:00:00+00:00")
	ws, err := b.admin.Workers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].ID != busy || ws[1].ID != idle {
		t.Fatalf("workers = %+v; want %s and %s only", ws, busy, idle)
	}
	if w := ws[0]; w.Working == nil || w.Working.Queue != "q" || w.Working.Job.Class != "Work" || w.Working.Job.ID != "abc" ||
		w.Heartbeat != "2024-01-15T10:23:45+00:00" || w.Host != "h1" || w.PID != 10 {
		t.Errorf("busy worker = %+v", w)
	}
	if ws[1].Working != nil {
		t.Errorf("idle worker = %+v", ws[1])
	}
}

// A payload carrying ciphertext is shown as encrypted even when it is not a
// usable job (the dashboard then hides it as encrypted), in a queue and in
// a failure record; "enc" inside the args is just data.
func TestAdminViewsMarkCiphertext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const (
		badEnc    = `{"class":"Vault","args":[],"enc":"not an object"}`
		nestedEnc = `{"class":"Vault","args":[{"enc":1}]}`
	)
	b.srv.Do(t, "RPUSH", b.key("queue:q"), badEnc, nestedEnc)
	b.srv.Do(t, "RPUSH", b.key("failed"),
		`{"failed_at":"2024/01/15 10:23:46 UTC","payload":`+badEnc+`,"exception":"E","error":"x","backtrace":[],"worker":"w","queue":"q"}`,
		`{"failed_at":"2024/01/15 10:23:46 UTC","payload":`+nestedEnc+`,"exception":"E","error":"x","backtrace":[],"worker":"w","queue":"q"}`,
		`not a record`)
	jobs, err := b.admin.Peek(ctx, "q", 0, 10)
	if err != nil || len(jobs) != 2 {
		t.Fatalf("peek = %+v, %v", jobs, err)
	}
	fs, err := b.admin.Failures(ctx, 0, 10)
	if err != nil || len(fs) != 3 {
		t.Fatalf("failures = %+v, %v", fs, err)
	}
	for what, v := range map[string]resq.JobView{"queued": jobs[0], "failed": fs[0].Job} {
		if !v.Encrypted || v.Invalid == "" {
			t.Errorf("%s payload with a bad enc field: %+v; want invalid and encrypted", what, v)
		}
	}
	for what, v := range map[string]resq.JobView{"queued": jobs[1], "failed": fs[1].Job} {
		if v.Encrypted || v.Invalid != "" || string(v.Args) != `[{"enc":1}]` {
			t.Errorf("%s payload with enc in its args: %+v", what, v)
		}
	}
	if f := fs[1]; f.Index != 1 || f.Queue != "q" || f.Exception != "E" || f.Unparsable {
		t.Errorf("failure 1 = %+v", f)
	}
	if f := fs[2]; f.Index != 2 || !f.Unparsable || string(f.Raw) != "not a record" {
		t.Errorf("failure 2 = %+v; want an unparsable record", f)
	}
}
