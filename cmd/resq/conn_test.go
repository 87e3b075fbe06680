package main

import (
	"fmt"
	"github.com/resq-go/resq/internal/testkit"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/redistest"
)

// The connection flags reach every command: TLS files, Sentinel, Cluster.

func TestTLSFlags(t *testing.T) {
	t.Parallel()
	s := redistest.StartTLS(t, redistest.TLSOptions{})
	c := s.Certs
	base := []string{"REDIS_URL=" + s.TLSURL(), "RESQ_NAMESPACE=tlsns", "RESQ_NO_TITLE=1"}
	// flags
	r := runWith(base, "enqueue", "--queue", "q", "X", "--redis-ca", c.CAFile, "--redis-cert", c.ClientCertFile, "--redis-key", c.ClientKeyFile, "--redis-tls-min", "1.3")
	if r.code != 0 {
		t.Fatalf("enqueue with TLS flags: %v", r)
	}
	// environment
	env := append(base, "RESQ_REDIS_CA="+c.CAFile, "RESQ_REDIS_CERT="+c.ClientCertFile, "RESQ_REDIS_KEY="+c.ClientKeyFile)
	r = runWith(env, "queues")
	if r.code != 0 || !strings.Contains(r.stdout, "q") {
		t.Fatalf("queues with TLS env: %v", r)
	}
	if got := s.Do(t, "LLEN", "tlsns:queue:q"); got != "1" {
		t.Fatalf("queue holds %s jobs, want 1", got)
	}
	// untrusted server: one clear failure
	r = runWith(append(base, "RESQ_REDIS_CA="+c.OtherCAFile, "RESQ_REDIS_CERT="+c.ClientCertFile, "RESQ_REDIS_KEY="+c.ClientKeyFile), "stats")
	if r.code != 1 || !strings.Contains(r.stderr, "certificate") {
		t.Fatalf("untrusted server: %v", r)
	}
	// a key without its certificate is a usage error
	r = runWith(base, "stats", "--redis-key", c.ClientKeyFile)
	if r.code != 2 || !strings.Contains(r.stderr, "both") {
		t.Fatalf("--redis-key alone: %v", r)
	}
	// the worker refuses to start against an untrusted server
	r = runWith(append(base, "RESQ_REDIS_CA="+c.OtherCAFile), "work", "--queues", "q", "--exec", "X=/bin/true")
	if r.code != 1 || strings.Count(r.stderr, "certificate") < 1 || strings.Contains(r.stderr, "retrying") {
		t.Fatalf("work against an untrusted server: %v", r)
	}
}

func TestClusterFlags(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, redistest.Options{})
	env := []string{"RESQ_CLUSTER_ADDRS=" + cl.Nodes[1].Addr(), "RESQ_NAMESPACE={cli}", "RESQ_NO_TITLE=1"}
	for _, q := range []string{"a", "b", "c"} {
		if r := runWith(env, "enqueue", "--queue", q, "X"); r.code != 0 {
			t.Fatalf("enqueue through a cluster seed: %v", r)
		}
	}
	r := runWith(env, "queues")
	if r.code != 0 || !strings.Contains(r.stdout, "a") || !strings.Contains(r.stdout, "c") {
		t.Fatalf("queues: %v", r)
	}
	// the URL form
	r = runWith([]string{"REDIS_URL=" + cl.URL(), "RESQ_NAMESPACE={cli}"}, "stats", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"queues": 3`) {
		t.Fatalf("stats through redis+cluster://: %v", r)
	}
	// no hash tag: refused before anything is written, for every command
	for _, args := range [][]string{{"enqueue", "--queue", "q", "X"}, {"work", "--queues", "q", "--exec", "X=/bin/true"}, {"web"}} {
		r = runWith([]string{"RESQ_CLUSTER_ADDRS=" + cl.Nodes[0].Addr(), "RESQ_NAMESPACE=resque"}, args...)
		if r.code == 0 || !strings.Contains(r.stderr, "hash tag") || !strings.Contains(r.stderr, `"{resque}"`) {
			t.Errorf("resq %s without a hash tag: %v", args[0], r)
		}
	}
	if got := cl.SlotOwner(t, "resque:queues").Do(t, "EXISTS", "resque:queues"); got != "0" {
		t.Error("resque:queues was written")
	}
}

func TestSentinelFlags(t *testing.T) {
	t.Parallel()
	d := redistest.StartSentinel(t, redistest.SentinelOptions{})
	env := []string{"RESQ_SENTINEL_MASTER=" + d.MasterName, "RESQ_SENTINEL_ADDRS=" + strings.Join(d.Addrs(), ","), "RESQ_NAMESPACE=sen", "RESQ_NO_TITLE=1"}
	if r := runWith(env, "enqueue", "--queue", "q", "X"); r.code != 0 {
		t.Fatalf("enqueue through sentinels: %v", r)
	}
	if got := d.Master.Do(t, "LLEN", "sen:queue:q"); got != "1" {
		t.Fatalf("master queue holds %s", got)
	}
	d.Failover(t)
	if r := runWith([]string{"REDIS_URL=" + d.URL(), "RESQ_NAMESPACE=sen"}, "enqueue", "--queue", "q", "X"); r.code != 0 {
		t.Fatalf("enqueue after failover through redis+sentinel://: %v", r)
	}
	if got := d.Replica.Do(t, "LLEN", "sen:queue:q"); got != "2" {
		t.Fatalf("new master's queue holds %s, want 2", got)
	}
}

// replica_acks in the URL: without a replica the enqueue ends with exit 1
// and says the job is on the master; with one it succeeds.
func TestEnqueueReplicaAcksFlag(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	url := srv.URL() + "?replica_acks=1&replica_ack_timeout=100ms"
	env := []string{"REDIS_URL=" + url, "RESQ_NAMESPACE=ra", "RESQ_NO_TITLE=1"}
	r := runWith(env, "enqueue", "--queue", "q", "X")
	if r.code != 1 {
		t.Fatalf("enqueue without a replica: want exit 1: %v", r)
	}
	mustContain(t, "stderr", r.stderr, "0 of 1 replicas confirmed it within 100ms", "the job IS on the master")
	if got := srv.Do(t, "LLEN", "ra:queue:q"); got != "1" {
		t.Errorf("master queue holds %s, want the unconfirmed job", got)
	}
	replica := redistest.StartReplica(t, srv, redistest.Options{})
	env[0] = "REDIS_URL=" + srv.URL() + "?replica_acks=1&replica_ack_timeout=5s"
	if r := runWith(env, "enqueue", "--queue", "q", "X"); r.code != 0 {
		t.Fatalf("enqueue with a replica: %v", r)
	}
	if got := replica.Do(t, "LLEN", "ra:queue:q"); got != "2" {
		t.Errorf("replica's queue holds %s, want 2", got)
	}
}

// Permanent errors end resq work and resq web with one message; they do
// not retry forever.
func TestPermanentErrorsExit(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	srv.Do(t, "ACL", "SETUSER", "app", "on", ">right", "+@all", "~other:*")
	cases := []struct {
		name, url, want string
	}{
		{"wrong password", fmt.Sprintf("redis://app:wrong@%s/0", srv.Addr()), "WRONGPASS"},
		{"namespace outside the ACL", fmt.Sprintf("redis://app:right@%s/0", srv.Addr()), "NOPERM"},
	}
	for _, c := range cases {
		for _, args := range [][]string{{"work", "--queues", "q", "--exec", "X=/bin/true"}, {"web", "--listen", "127.0.0.1:0"}} {
			start := time.Now()
			r := runWith([]string{"REDIS_URL=" + c.url, "RESQ_NAMESPACE=mine"}, args...)
			if r.code != 1 || !strings.Contains(r.stderr, c.want) || strings.Contains(r.stderr, "retrying") {
				t.Errorf("%s: resq %s: %v", c.name, args[0], r)
			}
			if strings.Count(r.stderr, c.want) != 1 {
				t.Errorf("%s: resq %s: want one message, got:\n%s", c.name, args[0], r.stderr)
			}
			t.Logf("%s: resq %s exited after %v", c.name, args[0], time.Since(start).Round(time.Millisecond))
		}
	}
	// An unreachable Redis is not permanent: the worker starts and retries.
	f := &fixture{t: t, env: []string{fmt.Sprintf("REDIS_URL=redis://127.0.0.1:%d/0", deadPort(t)), "RESQ_NO_TITLE=1"}}
	b := f.start("work", "--queues", "q", "--exec", "X=/bin/true")
	testkit.Eventually(t, "the worker retrying", func() bool { return strings.Contains(b.stderr.String(), "retrying") })
}

func TestACLCommand(t *testing.T) {
	t.Parallel()
	r := runWith(nil, "acl", "--namespace", "{app}")
	if r.code != 0 {
		t.Fatal(r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 5 users, got:\n%s", r.stdout)
	}
	srv := pool.Get(t)
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 4 || f[0] != "ACL" || f[1] != "SETUSER" || !strings.HasPrefix(f[2], "resq-") {
			t.Fatalf("line %q", l)
		}
		if !strings.Contains(l, "{app}:") || strings.Contains(l, "~*") {
			t.Errorf("line %q: keys not confined to the namespace", l)
		}
		f[2] += "-cmdtest"
		if _, err := srv.Try(f...); err != nil {
			t.Errorf("%s: %v", l, err)
		}
		srv.Try("ACL", "DELUSER", f[2])
	}
	r = runWith(nil, "acl", "--role", "producer", "--no-scripting")
	if r.code != 0 || strings.Contains(r.stdout, "eval") || !strings.Contains(r.stdout, "~resque:queue:*") {
		t.Fatalf("producer without scripting: %v", r)
	}
	if r := runWith(nil, "acl", "--role", "root"); r.code != 2 {
		t.Fatalf("unknown role: %v", r)
	}
	// The aclfile form is what redis-server loads at start.
	r = runWith(nil, "acl", "--aclfile")
	dir := t.TempDir()
	file := filepath.Join(dir, "users.acl")
	if err := os.WriteFile(file, []byte("user default on nopass ~* &* +@all\n"+r.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	s := redistest.StartWith(t, redistest.Options{Args: []string{"--aclfile", file}})
	users := s.Do(t, "ACL", "USERS")
	for _, role := range []string{"producer", "worker", "scheduler", "viewer", "admin"} {
		if !strings.Contains(users, "resq-"+role) {
			t.Errorf("aclfile did not create resq-%s: %s", role, users)
		}
	}
}
