package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

func TestEnqueueQueuesPeekStats(t *testing.T) {
	t.Parallel()
	f := setup(t)

	out := f.ok("enqueue", "--queue", "mail", "SendWelcome", `[{"user_id": 42, "plan": "pro", "token": "s3cret"}]`)
	if !strings.HasPrefix(out, "enqueued SendWelcome to mail id=") {
		t.Fatalf("enqueue output = %q", out)
	}
	id := strings.TrimSpace(strings.TrimPrefix(out, "enqueued SendWelcome to mail id="))
	var e struct {
		ID, Class, Queue string
		Bytes            int
	}
	f.okJSON(&e, "enqueue", "Cleanup", "--queue", "mail") // flags after the class; args default to []
	if e.ID == "" || e.Class != "Cleanup" || e.Queue != "mail" || e.Bytes <= 0 {
		t.Fatalf("enqueue --json = %+v", e)
	}
	f.ok("--json", "enqueue", "--queue", "low", "Report", "[1, 2]") // global flag before the command

	// Redis holds what Ruby's Resque.enqueue_to would write.
	if got := f.srv.Do(t, "LLEN", f.key("queue:mail")); got != "2" {
		t.Fatalf("LLEN queue:mail = %s", got)
	}
	if got := f.srv.Do(t, "SMEMBERS", f.key("queues")); !strings.Contains(got, "mail") || !strings.Contains(got, "low") {
		t.Fatalf("queues set = %q", got)
	}
	var payload struct {
		Class string          `json:"class"`
		Args  json.RawMessage `json:"args"`
		ID    string          `json:"id"`
	}
	if err := json.Unmarshal([]byte(f.srv.Do(t, "LINDEX", f.key("queue:mail"), "0")), &payload); err != nil {
		t.Fatal(err)
	}
	if payload.Class != "SendWelcome" || payload.ID != id || compactJSON(payload.Args) != `[{"user_id":42,"plan":"pro","token":"s3cret"}]` {
		t.Fatalf("payload = %+v args %s", payload, payload.Args)
	}

	out = f.ok("queues")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || strings.Fields(lines[0])[0] != "NAME" ||
		strings.Join(strings.Fields(lines[1]), " ") != "low 1" || strings.Join(strings.Fields(lines[2]), " ") != "mail 2" {
		t.Fatalf("queues output:\n%s", out)
	}
	var qs []resq.QueueInfo
	f.okJSON(&qs, "queues")
	if len(qs) != 2 || qs[0] != (resq.QueueInfo{Name: "low", Size: 1}) || qs[1] != (resq.QueueInfo{Name: "mail", Size: 2}) {
		t.Fatalf("queues --json = %+v", qs)
	}

	out = f.ok("peek", "mail")
	mustContain(t, "peek output", out, "SendWelcome", id, `"user_id":42`, `"plan":"pro"`, "Cleanup", "[]")
	if strings.Contains(out, "s3cret") { // resq's redactor hides secret-looking fields from people
		t.Errorf("peek showed a secret field's value:\n%s", out)
	}
	out = f.ok("peek", "mail", "--start", "1", "--count", "1")
	if strings.Contains(out, "SendWelcome") || !strings.Contains(out, "Cleanup") {
		t.Fatalf("peek --start 1 --count 1:\n%s", out)
	}
	var jobs []resq.JobView
	f.okJSON(&jobs, "peek", "mail", "--count", "5")
	if len(jobs) != 2 || jobs[0].Class != "SendWelcome" || jobs[0].ID != id || jobs[1].Class != "Cleanup" {
		t.Fatalf("peek --json = %+v", jobs)
	}
	f.okJSON(&jobs, "peek", "nothing-here")
	if jobs == nil || len(jobs) != 0 {
		t.Fatalf("peek of an empty queue --json = %#v, want []", jobs)
	}

	var st resq.Stats
	f.okJSON(&st, "stats")
	if st.Pending != 3 || st.Queues != 2 || st.Processed != 0 || st.Workers != 0 || st.Failed != 0 {
		t.Fatalf("stats = %+v", st)
	}
	if len(st.Servers) != 1 || !strings.HasSuffix(st.Servers[0], "/"+f.ns) {
		t.Fatalf("stats servers = %v", st.Servers)
	}
	var raw map[string]any
	f.okJSON(&raw, "stats")
	for _, k := range []string{"pending", "processed", "queues", "workers", "working", "failed", "stat_failed", "servers", "environment"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("stats --json has no %q: %v", k, raw)
		}
	}
	out = f.ok("stats")
	mustContain(t, "stats output", out, "pending", "processed", "stat_failed", "environment")
}

func TestClear(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for i := 0; i < 3; i++ {
		f.ok("enqueue", "--queue", "bulk", "Job", fmt.Sprintf("[%d]", i))
	}
	f.ok("enqueue", "--queue", "keep", "Job")
	if out := f.ok("clear", "bulk"); strings.TrimSpace(out) != "deleted 3 jobs from queue bulk" {
		t.Fatalf("clear output = %q", out)
	}
	if got := f.srv.Do(t, "EXISTS", f.key("queue:bulk")); got != "0" {
		t.Fatalf("queue:bulk still exists")
	}
	if got := f.srv.Do(t, "SISMEMBER", f.key("queues"), "bulk"); got != "1" {
		t.Fatalf("clear without --remove must keep the queue listed")
	}
	var res map[string]any
	f.okJSON(&res, "clear", "bulk", "--remove")
	if res["deleted"] != 0.0 || res["removed"] != true {
		t.Fatalf("clear --remove --json = %v", res)
	}
	if got := f.srv.Do(t, "SISMEMBER", f.key("queues"), "bulk"); got != "0" {
		t.Fatalf("clear --remove left the queue listed")
	}
	if got := f.srv.Do(t, "LLEN", f.key("queue:keep")); got != "1" {
		t.Fatalf("another queue was touched: LLEN keep = %s", got)
	}
}

// failWithWorker runs a real worker that fails n jobs of class Boom (each
// with its number as argument) and returns their job ids in order.
func failWithWorker(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := resq.Open(resq.ConnConfig{URL: f.srv.URL(), Namespace: f.ns, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testkit.Client(t, conn, resq.ClientConfig{})
	var ids []string
	for i := 0; i < n; i++ {
		e, err := client.Enqueue(ctx, "work", "Boom", i)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"work"}, Concurrency: 1, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("Boom", func(ctx context.Context, job *resq.Job) error { return errors.New("boom\nsecond line") })
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	admin := resq.NewAdmin(conn)
	testkit.Eventually(t, "failures recorded", func() bool {
		st, err := admin.Stats(ctx)
		return err == nil && st.Failed == int64(n) && st.Processed == int64(n)
	})
	if err := w.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestFailedListRetryRemove(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ids := failWithWorker(t, f, 5)

	out := f.ok("failed", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 {
		t.Fatalf("failed list: want header + 5 rows:\n%s", out)
	}
	mustContain(t, "failed list header", lines[0], "INDEX", "FAILED_AT", "QUEUE", "CLASS", "EXCEPTION", "ERROR", "WORKER", "RETRIED_AT")
	for i, l := range lines[1:] {
		cols := strings.Fields(l)
		if cols[0] != strconv.Itoa(i) || !strings.Contains(l, "work") || !strings.Contains(l, "Boom") ||
			!strings.Contains(l, resq.ExceptionError) || !strings.Contains(l, "boom") || strings.Contains(l, "second line") {
			t.Errorf("failed list row %d = %q", i, l)
		}
	}
	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list", "--start", "1", "--count", "2")
	if len(fails) != 2 || fails[0].Index != 1 || fails[0].Job.ID != ids[1] || fails[1].Job.ID != ids[2] ||
		fails[0].Error != "boom\nsecond line" || fails[0].Worker == "" || fails[0].Queue != "work" {
		t.Fatalf("failed list --json = %+v", fails)
	}

	// Retry two by index, with progress on a "terminal".
	var errb syncBuffer
	var outb syncBuffer
	code := run(context.Background(), []string{"failed", "retry", "3", "1"},
		system{Stdout: &outb, Stderr: &errb, Env: f.env, StderrIsTerminal: true})
	if code != 0 {
		t.Fatalf("failed retry: exit %d: %s", code, errb.String())
	}
	mustContain(t, "retry output", outb.String(), "retried failure 1 onto queue work", "retried failure 3 onto queue work")
	mustContain(t, "retry progress", errb.String(), "\rretried 1/2", "\rretried 2/2")
	if got := f.srv.Do(t, "LLEN", f.key("queue:work")); got != "2" {
		t.Fatalf("queue length after retry = %s", got)
	}
	f.okJSON(&fails, "failed", "list")
	for i, fv := range fails {
		if retried := fv.RetriedAt != ""; retried != (i == 1 || i == 3) {
			t.Errorf("failure %d retried_at = %q", i, fv.RetriedAt)
		}
	}
	// No progress when stderr is not a terminal.
	r := f.run("failed", "retry", "0")
	if r.code != 0 || strings.Contains(r.stderr, "retried") {
		t.Fatalf("failed retry 0 (no TTY): %v", r)
	}

	// A missing index changes nothing.
	r = f.run("failed", "remove", "1", "9")
	if r.code != 1 || !strings.Contains(r.stderr, "failure 9") || !strings.Contains(r.stderr, "nothing was changed") {
		t.Fatalf("failed remove 9: %v", r)
	}
	// Remove two: indexes refer to the list before the command.
	if out := f.ok("failed", "remove", "0", "4"); strings.TrimSpace(out) != "removed 2 failures" {
		t.Fatalf("failed remove output = %q", out)
	}
	f.okJSON(&fails, "failed", "list")
	var left []string
	for _, fv := range fails {
		left = append(left, fv.Job.ID)
	}
	if strings.Join(left, ",") != strings.Join(ids[1:4], ",") {
		t.Fatalf("after removing 0 and 4: %v, want %v", left, ids[1:4])
	}

	var res map[string]any
	f.okJSON(&res, "failed", "retry", "--all")
	if res["retried"] != 3.0 {
		t.Fatalf("failed retry --all --json = %v", res)
	}
	if got := f.srv.Do(t, "LLEN", f.key("queue:work")); got != "6" {
		t.Fatalf("queue length after retry --all = %s", got)
	}
	if out := f.ok("failed", "remove", "--all"); strings.TrimSpace(out) != "removed 3 failures" {
		t.Fatalf("failed remove --all output = %q", out)
	}
	if got := f.srv.Do(t, "LLEN", f.key("failed")); got != "0" {
		t.Fatalf("failed list not empty: %s", got)
	}
	if out := f.ok("failed", "list"); strings.TrimSpace(out) != "no failures" {
		t.Fatalf("failed list when empty = %q", out)
	}
}

func TestPruneRecoversDeadWorker(t *testing.T) {
	t.Parallel()
	f := setup(t)
	id := "gone-host:4242:jobs"
	job := `{"class":"Resize","args":[7],"id":"abc"}`
	f.srv.Do(t, "SADD", f.key("workers"), id)
	f.srv.Do(t, "SET", f.key("worker:"+id+":started"), "2020-01-01 00:00:00 +0000")
	f.srv.Do(t, "HSET", f.key("workers:heartbeat"), id, "2020-01-01T00:00:00+00:00")
	f.srv.Do(t, "SET", f.key("worker:"+id), `{"queue":"jobs","run_at":"2020-01-01T00:00:00Z","payload":`+job+`}`)

	var ws []resq.WorkerView
	f.okJSON(&ws, "workers")
	if len(ws) != 1 || ws[0].ID != id || ws[0].Working == nil || ws[0].Working.Job.Class != "Resize" {
		t.Fatalf("workers --json = %+v", ws)
	}
	out := f.ok("workers")
	mustContain(t, "workers output", out, "ID", "HEARTBEAT", "STATE", id, "gone-host", "4242", "working on Resize from jobs since 2020-01-01T00:00:00Z")

	out = f.ok("prune", "--stale", "60s")
	mustContain(t, "prune output", out, "pruned "+id, "pruned 1 dead worker; their jobs: 1 requeued, 0 failed")
	if got := f.srv.Do(t, "LINDEX", f.key("queue:jobs"), "0"); got != job {
		t.Fatalf("requeued job = %q", got)
	}
	if got := f.srv.Do(t, "SCARD", f.key("workers")); got != "0" {
		t.Fatalf("dead worker still registered")
	}
	var res map[string]any
	f.okJSON(&res, "prune")
	if fmt.Sprint(res["pruned"]) != "[]" || res["requeued"] != 0.0 {
		t.Fatalf("second prune --json = %v", res)
	}
	if out := f.ok("workers"); !strings.Contains(out, "no workers registered") {
		t.Fatalf("workers with none = %q", out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "plain.txt")
	if err := os.WriteFile(notExec, []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "ok.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"REDIS_URL=redis://127.0.0.1:1/0", "RESQ_NO_TITLE=1"}
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"wrok"}, []string{`unknown command "wrok"`, `did you mean "work"`, "run 'resq help'"}},
		{[]string{"--bogus", "queues"}, []string{"unknown flag --bogus", "resq help"}},
		{[]string{"queues", "--bogus"}, []string{"unknown flag --bogus", "resq queues --help"}},
		{[]string{"queues", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"enqueue", "--queue", "q", "Job", `[1, 2`}, []string{"not valid JSON", "must be a JSON array", `'[42, "text", {"key": "value"}]'`}},
		{[]string{"enqueue", "--queue", "q", "Job", `{"a": "secret-value"}`}, []string{"not an array", "must be a JSON array"}},
		{[]string{"enqueue", "Job"}, []string{"missing --queue"}},
		{[]string{"enqueue", "--queue", "q"}, []string{"missing CLASS"}},
		{[]string{"peek"}, []string{"missing QUEUE"}},
		{[]string{"peek", "q", "--count", "x"}, []string{`invalid value "x" for --count`}},
		{[]string{"failed"}, []string{"needs an action"}},
		{[]string{"failed", "redo"}, []string{`unknown action "redo"`}},
		{[]string{"failed", "retry"}, []string{"give the indexes", "--all"}},
		{[]string{"failed", "retry", "one"}, []string{`"one" is not a failure index`}},
		{[]string{"failed", "remove", "1", "--all"}, []string{"not both"}},
		{[]string{"work", "--queues", "q"}, []string{"resq work needs at least one --exec CLASS=PATH (Go programs register handlers with the resq library)"}},
		{[]string{"work", "--exec", "A=" + script}, []string{"no queues to work"}},
		{[]string{"work", "--queues", "q", "--exec", "A=" + script, "--memory", "100"}, []string{"job limits: memory limit 100 B is below 1 MiB"}},
		{[]string{"work", "--queues", "q", "--exec", "A=" + script, "--cpu", "10ms"}, []string{"CPU-time limit 10ms is below 1s"}},
		{[]string{"work", "--queues", "q", "--exec", "A=" + script, "--max-procs", "-4"}, []string{"process limit -4 is negative"}},
		{[]string{"work", "--queues", "q", "--exec", "A=" + filepath.Join(dir, "missing")}, []string{"does not exist"}},
		{[]string{"work", "--queues", "q", "--exec", "A=" + notExec}, []string{"is not executable", "chmod +x"}},
		{[]string{"work", "--queues", "q", "--exec", "A=" + dir}, []string{"is a directory"}},
		{[]string{"work", "--queues", "q", "--exec", "nopath"}, []string{"want CLASS=PATH"}},
		{[]string{"work", "--queues", "q", "--exec", "A=" + script, "--timeout", "soon"}, []string{`"soon" is not a duration`}},
		{[]string{"work", "--queues", "q", "--exec", "A=" + script, "--max-output", "12XB"}, []string{"unknown unit"}},
		{[]string{"work", "--queues", "q", "--exec", "A=" + script, "--dead-jobs", "drop"}, []string{"want requeue"}},
		{[]string{"--log-level", "loud", "stats"}, []string{"want debug, info, warn or error"}},
		{[]string{"demo", "--listen", "0.0.0.0:8080"}, []string{"only listens on loopback"}},
		{[]string{}, []string{"Usage: resq"}},
	} {
		r := runWith(env, tc.args...)
		if r.code != 2 {
			t.Errorf("resq %q: want exit 2, got %v", tc.args, r)
			continue
		}
		mustContain(t, fmt.Sprintf("resq %q stderr", tc.args), r.stderr, tc.wants...)
		if strings.Contains(r.stderr, "secret-value") {
			t.Errorf("resq %q echoed the job arguments: %s", tc.args, r.stderr)
		}
	}
}

func TestEnqueueRedisDownSaysNotEnqueued(t *testing.T) {
	t.Parallel()
	url := fmt.Sprintf("redis://app:hunter2@127.0.0.1:%d/0", deadPort(t))
	r := runWith(nil, "--redis", url, "enqueue", "--queue", "q", "Job", "[1]")
	if r.code != 1 {
		t.Fatalf("want exit 1: %v", r)
	}
	mustContain(t, "stderr", r.stderr, "resq: enqueue Job to queue q", "the job was NOT enqueued", "app:xxxxx@127.0.0.1")
	if strings.Contains(r.stderr+r.stdout, "hunter2") {
		t.Fatalf("the password was printed: %v", r)
	}
	// Other commands say what failed, without the password either.
	r = runWith([]string{"REDIS_URL=" + url}, "queues")
	if r.code != 1 || !strings.HasPrefix(r.stderr, "resq: list queues on redis://app:xxxxx@") || strings.Contains(r.stderr, "hunter2") {
		t.Fatalf("queues against a dead Redis: %v", r)
	}
	// Help shows the default from the environment without the password.
	r = runWith([]string{"REDIS_URL=" + url}, "queues", "--help")
	if r.code != 0 || strings.Contains(r.stdout, "hunter2") || !strings.Contains(r.stdout, "app:xxxxx@") {
		t.Fatalf("queues --help: %v", r)
	}
}

func TestGlobalFlagsAnywhere(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.ok("enqueue", "--queue", "a", "Job")
	other := []string{"REDIS_URL=" + f.srv.URL(), "RESQ_NO_TITLE=1"} // default namespace "resque"
	for _, args := range [][]string{
		{"--namespace", f.ns, "--json", "queues"},
		{"queues", "--namespace", f.ns, "--json"},
		{"--json", "queues", "--namespace=" + f.ns},
	} {
		r := runWith(other, args...)
		if r.code != 0 || !strings.Contains(r.stdout, `"name": "a"`) {
			t.Errorf("resq %q: %v", args, r)
		}
	}
	if r := runWith(other, "queues"); r.code != 0 || !strings.Contains(r.stdout, "no queues") {
		t.Errorf("default namespace must be resque, not %s: %v", f.ns, r)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	r := runWith(nil, "help")
	if r.code != 0 {
		t.Fatalf("help: %v", r)
	}
	for _, cmd := range commands() {
		mustContain(t, "help", r.stdout, cmd.name)
	}
	mustContain(t, "help", r.stdout, "--redis URL", "REDIS_URL", "--namespace NS", "RESQ_NAMESPACE", "--json", "--log-level")

	r = runWith(nil, "work", "--help")
	if r.code != 0 {
		t.Fatalf("work --help: %v", r)
	}
	mustContain(t, "work --help", r.stdout, "Usage: resq work", "--queues QUEUES", "--concurrency N", "--exec CLASS=PATH",
		"--timeout D", "--memory SIZE", "--cpu D", "--max-procs N", "--max-files N", "--max-output SIZE", "--max-output-total SIZE", "--class-concurrency CLASS=N", "--dead-jobs requeue", "--poll D",
		"Global flags:", "--redis URL", "QUIT")
	for _, args := range [][]string{{"help", "failed", "retry"}, {"failed", "retry", "--help"}, {"failed", "retry", "-h"}} {
		r = runWith(nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: resq failed retry (INDEX… | --all)") || !strings.Contains(r.stdout, "--all") {
			t.Errorf("resq %q: %v", args, r)
		}
	}
	for _, cmd := range commands() {
		if cmd.name == "help" {
			continue
		}
		r = runWith(nil, append(strings.Fields(cmd.name), "--help")...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: resq "+cmd.name) {
			t.Errorf("resq %s --help: %v", cmd.name, r)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runWith(nil, "version")
	if r.code != 0 {
		t.Fatalf("version: %v", r)
	}
	mustContain(t, "version", r.stdout, "resq "+version, "go go1.")
	r = runWith(nil, "version", "--json")
	var v versionInfo
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 {
		t.Fatalf("version --json: %v %v", err, r)
	}
	if v.Version != version || !strings.HasPrefix(v.Go, "go1.") || v.Dependencies == nil {
		t.Fatalf("version --json = %+v", v)
	}
	// The test binary carries module information: the Redis client is listed.
	found := false
	for _, d := range v.Dependencies {
		if d.Path == "github.com/redis/go-redis/v9" && d.Version != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("go-redis is not among the dependencies: %+v", v.Dependencies)
	}
}

func TestParseSizeAndDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"1000": 1000, "64KiB": 64 << 10, "256MiB": 256 << 20, "1GB": 1e9, "1.5GiB": 3 << 29, "2kb": 2000, "10 B": 10} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5B", "12XB", "1e3"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
	for in, want := range map[string]time.Duration{"3s": 3 * time.Second, "1m30s": 90 * time.Second, "2": 2 * time.Second, "0.5": 500 * time.Millisecond, "250ms": 250 * time.Millisecond} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "soon", "-1s", "-3"} {
		if _, err := parseDuration(bad); err == nil {
			t.Errorf("parseDuration(%q) accepted", bad)
		}
	}
}
