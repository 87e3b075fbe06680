package resq_test

import (
	"context"
	"fmt"
	"github.com/resq-go/resq/internal/testkit"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
)

// The ACL tests create each role's generated user on a real Redis, run
// that role's code paths as that user and fail on any denial Redis records
// in ACL LOG for it (the worker retries denied writes, so errors alone would
// not show them).

var aclUserCounter atomic.Int64

// aclConn creates a user with role's rules and returns a connection as it.
func aclConn(t *testing.T, b *bundle, role resq.ACLRole, scripting bool) (*resq.Conn, string) {
	t.Helper()
	rules, err := resq.ACLRules(role, b.ns, scripting)
	if err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("%s-%d", role, aclUserCounter.Add(1))
	b.srv.Do(t, append([]string{"ACL", "SETUSER", user, "on", ">pw-" + user}, rules...)...)
	t.Cleanup(func() { b.srv.Try("ACL", "DELUSER", user) })
	url := fmt.Sprintf("redis://%s:pw-%s@%s/%d", user, user, b.srv.Addr(), b.srv.DB())
	return openConn(t, resq.ConnConfig{URL: url, Namespace: b.ns}), user
}

func checkNoDenials(t *testing.T, srv *redistest.Server, user string, scripting bool) {
	t.Helper()
	if d := srv.ACLDenials(t, user, !scripting); len(d) > 0 {
		t.Errorf("user %s was denied:\n  %s", user, strings.Join(d, "\n  "))
	}
}

// mustNoperm checks that Redis refused: NOPERM, or EXECABORT for a MULTI
// with a refused command queued (go-redis reports the EXEC's error).
func mustNoperm(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil || !(strings.Contains(err.Error(), "NOPERM") || strings.Contains(err.Error(), "EXECABORT")) {
		t.Errorf("%s: err = %v, want NOPERM", what, err)
	}
}

func TestACLRoles(t *testing.T) {
	t.Parallel()
	runACLRoles(t, map[string]func(*testing.T, bool){
		"producer": aclProducer, "worker": aclWorker, "viewer": aclViewer, "admin": aclAdmin,
	})
}

// runACLRoles runs each role's test, in parallel, with and without
// @scripting in the role's generated user.
func runACLRoles(t *testing.T, roles map[string]func(t *testing.T, scripting bool)) {
	for _, scripting := range []bool{true, false} {
		name := "scripting"
		if !scripting {
			name = "no-scripting"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for role, fn := range roles {
				t.Run(role, func(t *testing.T) { t.Parallel(); fn(t, scripting) })
			}
		})
	}
}

func aclProducer(t *testing.T, scripting bool) {
	b := setup(t)
	ctx := context.Background()
	conn, user := aclConn(t, b, resq.ACLProducer, scripting)
	if err := conn.CheckAccess(ctx); err != nil {
		t.Fatal(err)
	}
	cl := testkit.Client(t, conn, resq.ClientConfig{QueueCaps: map[string]int64{"capped": 1}})
	if _, err := cl.Enqueue(ctx, "q", "Greet", greet{Name: "ann"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Enqueue(ctx, "q", "Login", secretArgs{User: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	res, err := cl.EnqueueBatch(ctx, []resq.EnqueueParams{{Queue: "a", Class: "X"}, {Queue: "b", Class: "X", Args: []any{1}}})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("batch: %v %+v", err, res)
	}
	if _, err := cl.Enqueue(ctx, "capped", "X"); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Enqueue(ctx, "capped", "X"); err == nil {
		t.Fatal("capped queue took a second job")
	}
	if n, err := cl.Dequeue(ctx, "q", "Greet", greet{Name: "ann"}); err != nil || n != 1 {
		t.Fatalf("Dequeue = %d, %v", n, err)
	}
	checkNoDenials(t, b.srv, user, scripting)
	if got := b.srv.Do(t, "LLEN", b.key("queue:q")); got != "1" {
		t.Errorf("queue q holds %s jobs, want 1", got)
	}

	// What a producer must not do.
	b.srv.Do(t, "RPUSH", b.key("failed"), `{"failed_at":"2024-01-15 10:23:45 UTC","payload":{"class":"X","args":[]},"exception":"E","error":"e","queue":"q","worker":"w"}`)
	adm := resq.NewAdmin(conn)
	_, err = adm.Failures(ctx, 0, 10)
	mustNoperm(t, "producer reading failures", err)
	mustNoperm(t, "producer removing a queue", adm.RemoveQueue(ctx, "q"))
	_, err = adm.ClearQueue(ctx, "q")
	mustNoperm(t, "producer clearing a queue", err)
	_, err = adm.Workers(ctx)
	mustNoperm(t, "producer listing workers", err)
	if got := b.srv.Do(t, "LLEN", b.key("queue:q")); got != "1" {
		t.Errorf("queue q holds %s jobs after the producer's attempts, want 1", got)
	}
	if got := b.srv.Do(t, "LLEN", b.key("failed")); got != "1" {
		t.Errorf("failed holds %s records after the producer's attempts, want 1", got)
	}
}

func aclWorker(t *testing.T, scripting bool) {
	b := setup(t)
	ctx := context.Background()
	conn, user := aclConn(t, b, resq.ACLWorker, scripting)
	// A dead worker on this host holding a job, a stale one on another
	// host, and a dead process's pickup list: pruning and pickup return.
	host, _ := os.Hostname()
	dead := host + ":999999:q:3"
	b.srv.Do(t, "SADD", b.key("workers"), dead, "web2:777:q")
	b.srv.Do(t, "SET", b.key("worker:"+dead), `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":{"class":"Work","args":[1],"id":"abc"}}`)
	b.srv.Do(t, "SET", b.key("worker:"+dead+":started"), "2024-01-15 10:23:45 +0000")
	b.srv.Do(t, "HSET", b.key("workers:heartbeat"), dead, time.Now().Format(time.RFC3339), "web2:777:q", time.Now().Add(-time.Hour).Format(time.RFC3339))
	b.srv.Do(t, "SET", b.key("worker:web2:777:q"), `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":{"class":"Work","args":[2]}}`)
	b.srv.Do(t, "RPUSH", b.key("resq:pickup:"+host+":999999:q"), `{"class":"Work","args":[3]}`)
	b.srv.Do(t, "SET", b.key("pause-all-workers"), "false")

	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"q", "*"}, Concurrency: 3, Logger: testkit.Logger(t),
		HeartbeatInterval: 100 * time.Millisecond, PollInterval: 50 * time.Millisecond, ClassConcurrency: map[string]int{"Lim": 1}})
	if err != nil {
		t.Fatal(err)
	}
	var ran atomic.Int64
	w.HandleFunc("Work", func(ctx context.Context, j *resq.Job) error { ran.Add(1); return nil })
	w.HandleFunc("Lim", func(ctx context.Context, j *resq.Job) error {
		ran.Add(1)
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	w.HandleFunc("Boom", func(ctx context.Context, j *resq.Job) error { ran.Add(1); return fmt.Errorf("boom") })
	pc := testkit.Client(t, b.conn, resq.ClientConfig{})
	for i := 0; i < 3; i++ {
		for _, c := range []string{"Work", "Lim", "Boom"} {
			if _, err := pc.Enqueue(ctx, "q", c, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	b.srv.Do(t, "RPUSH", b.key("queue:other"), `{"class":"Nope","args":[]}`, `not json`)
	b.srv.Do(t, "SADD", b.key("queues"), "other")
	stop := testkit.RunWorker(t, w)
	// 9 enqueued + recovered [1] + returned pickup [3] (+ [2] when requeued) + 2 bad.
	testkit.Eventually(t, "the jobs processed", func() bool {
		st, _ := b.admin.Stats(ctx)
		return st.Processed >= 13
	})
	time.Sleep(300 * time.Millisecond) // a few heartbeats and prune passes
	stop()
	checkNoDenials(t, b.srv, user, scripting)
	if ran.Load() < 11 {
		t.Errorf("ran %d jobs, want at least 11", ran.Load())
	}
	if n := b.srv.Do(t, "LLEN", b.key("failed")); n != "5" {
		t.Errorf("failed holds %s records, want 5 (3 Boom, unknown class, invalid payload)", n)
	}
}

// seedAdminData gives the Admin reads and writes something to work on.
func seedAdminData(t *testing.T, b *bundle) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := b.client.Enqueue(ctx, "q", "X", i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.client.Enqueue(ctx, "doomed", "X"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		b.srv.Do(t, "RPUSH", b.key("failed"), fmt.Sprintf(`{"failed_at":"2024-01-15 10:23:45 UTC","payload":{"class":"X","args":[%d]},"exception":"E","error":"e","queue":"q","worker":"w:1:q"}`, i))
	}
	b.srv.Do(t, "SADD", b.key("workers"), "web2:777:q")
	b.srv.Do(t, "HSET", b.key("workers:heartbeat"), "web2:777:q", time.Now().Add(-time.Hour).Format(time.RFC3339))
	b.srv.Do(t, "SET", b.key("worker:web2:777:q"), `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":{"class":"X","args":[9]}}`)
	b.srv.Do(t, "SET", b.key("stat:processed"), "10")
	if err := b.admin.RecordAudit(ctx, resq.AuditEntry{Time: time.Now(), User: "root", Action: "queue.clear"}); err != nil {
		t.Fatal(err)
	}
}

// adminReads runs every Admin read; it returns the first error.
func adminReads(ctx context.Context, a *resq.Admin) error {
	steps := []struct {
		name string
		fn   func() error
	}{
		{"Queues", func() error { _, err := a.Queues(ctx); return err }},
		{"QueueSize", func() error { _, err := a.QueueSize(ctx, "q"); return err }},
		{"Peek", func() error { _, err := a.Peek(ctx, "q", 0, 10); return err }},
		{"FailureCount", func() error { _, err := a.FailureCount(ctx); return err }},
		{"Failures", func() error { _, err := a.Failures(ctx, 0, 10); return err }},
		{"Workers", func() error { _, err := a.Workers(ctx); return err }},
		{"Stats", func() error { _, err := a.Stats(ctx); return err }},
		{"Keys", func() error { _, err := a.Keys(ctx); return err }},
		{"History", func() error { _, err := a.History(ctx, 60); return err }},
		{"JobCounts", func() error { _, err := a.JobCounts(ctx); return err }},
		{"OldestJobAge", func() error { _, _, err := a.OldestJobAge(ctx, "q"); return err }},
		{"AuditLog", func() error { _, _, err := a.AuditLog(ctx, 0, 10); return err }},
		{"RedisInfo", func() error { _, err := a.RedisInfo(ctx); return err }},
		{"KeyUsage", func() error { _, err := a.KeyUsage(ctx); return err }},
		{"Redactor", func() error { _, err := a.Redactor(ctx); return err }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func aclViewer(t *testing.T, scripting bool) {
	b := setup(t)
	ctx := context.Background()
	seedAdminData(t, b)
	conn, user := aclConn(t, b, resq.ACLViewer, scripting)
	if err := conn.CheckAccess(ctx); err != nil {
		t.Fatal(err)
	}
	a := resq.NewAdmin(conn)
	if err := adminReads(ctx, a); err != nil {
		t.Error(err)
	}
	checkNoDenials(t, b.srv, user, scripting)

	// A viewer writes nothing.
	_, err := a.ClearQueue(ctx, "q")
	mustNoperm(t, "viewer ClearQueue", err)
	mustNoperm(t, "viewer RemoveQueue", a.RemoveQueue(ctx, "q"))
	_, err = a.RetryFailure(ctx, 0)
	mustNoperm(t, "viewer RetryFailure", err)
	mustNoperm(t, "viewer RemoveFailure", a.RemoveFailure(ctx, 0))
	_, err = a.ClearFailures(ctx)
	mustNoperm(t, "viewer ClearFailures", err)
	mustNoperm(t, "viewer RecordAudit", a.RecordAudit(ctx, resq.AuditEntry{Time: time.Now(), User: "v", Action: "x"}))
	_, err = newTestClient(t, conn).Enqueue(ctx, "q", "X")
	mustNoperm(t, "viewer Enqueue", err)
	if n := b.srv.Do(t, "LLEN", b.key("queue:q")); n != "3" {
		t.Errorf("queue q holds %s jobs after the viewer's attempts, want 3", n)
	}
}

func aclAdmin(t *testing.T, scripting bool) {
	b := setup(t)
	ctx := context.Background()
	seedAdminData(t, b)
	conn, user := aclConn(t, b, resq.ACLAdmin, scripting)
	a := resq.NewAdmin(conn)
	if err := adminReads(ctx, a); err != nil {
		t.Error(err)
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"RecordAudit", func() error {
			return a.RecordAudit(ctx, resq.AuditEntry{Time: time.Now(), User: "admin", Action: "failure.retry"})
		}},
		{"RetryFailure", func() error { _, err := a.RetryFailure(ctx, 0); return err }},
		{"RemoveFailure", func() error { return a.RemoveFailure(ctx, 1) }},
		{"RemoveFailures", func() error { return a.RemoveFailures(ctx, []int64{1}, nil) }},
		{"ClearRetriedFailures", func() error { _, err := a.ClearRetriedFailures(ctx); return err }},
		{"RetryAllFailures", func() error { _, err := a.RetryAllFailures(ctx, nil); return err }},
		{"ClearFailures", func() error { _, err := a.ClearFailures(ctx); return err }},
		{"Prune", func() error { _, err := a.Prune(ctx, time.Minute, resq.FailDeadJobs); return err }},
		{"ClearQueue", func() error { _, err := a.ClearQueue(ctx, "q"); return err }},
		{"RemoveQueue", func() error { return a.RemoveQueue(ctx, "doomed") }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
	checkNoDenials(t, b.srv, user, scripting)
	if n := b.srv.Do(t, "SISMEMBER", b.key("queues"), "doomed"); n != "0" {
		t.Error("RemoveQueue left the queue registered")
	}
}

// Every role's rules, for plain, tagged and glob-character namespaces, are
// accepted by Redis, and the key patterns match the namespace's keys only.
func TestACLRulesAccepted(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	for _, ns := range []string{"resque", "{resque}", "app:re*[x]"} {
		for _, role := range resq.ACLRoles() {
			for _, scripting := range []bool{true, false} {
				rules, err := resq.ACLRules(role, ns, scripting)
				if err != nil {
					t.Fatal(err)
				}
				user := fmt.Sprintf("accept-%d", aclUserCounter.Add(1))
				if _, err := srv.Try(append([]string{"ACL", "SETUSER", user}, rules...)...); err != nil {
					t.Errorf("%s %q scripting=%v: %v\nrules: %v", role, ns, scripting, err, rules)
				}
				joined := strings.Join(rules, " ")
				if strings.Contains(joined, "+eval") != scripting && role != resq.ACLViewer {
					t.Errorf("%s scripting=%v: rules %v", role, scripting, rules)
				}
				// A key of another namespace is out of reach.
				if out, err := srv.Try("ACL", "DRYRUN", user, "GET", "other:queues"); err != nil || out == "OK" {
					t.Errorf("%s %q: GET other:queues allowed (%q, %v)", role, ns, out, err)
				}
				// Nor a channel of another namespace.
				if out, err := srv.Try("ACL", "DRYRUN", user, "PUBLISH", "other:resq:delayed:wake", "1"); err != nil || out == "OK" {
					t.Errorf("%s %q: PUBLISH on another namespace's channel allowed (%q, %v)", role, ns, out, err)
				}
				srv.Try("ACL", "DELUSER", user)
			}
		}
	}
	if _, err := resq.ACLRules("root", "resque", true); err == nil || !strings.Contains(err.Error(), "producer") {
		t.Errorf("unknown role: %v", err)
	}
}
