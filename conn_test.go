package resq_test

import (
	"context"
	"errors"
	"github.com/resq-go/resq/internal/testkit"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
)

// Deployment tests: TLS, Sentinel and Cluster on real processes.

// newTestClient is the one place these tests build a Client.
func newTestClient(t *testing.T, conn *resq.Conn) *resq.Client {
	t.Helper()
	return testkit.Client(t, conn, resq.ClientConfig{})
}

func openConn(t *testing.T, cfg resq.ConnConfig) *resq.Conn {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testkit.Logger(t)
	}
	conn, err := resq.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

type seqArg struct {
	N int `json:"n"`
}

// roundTrip enqueues a job through conn and has a worker on conn run it.
func roundTrip(t *testing.T, conn *resq.Conn) {
	t.Helper()
	ctx := context.Background()
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"q"}, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan int, 1)
	resq.Handle(w, "Seq", func(ctx context.Context, a seqArg) error { ran <- a.N; return nil })
	stop := testkit.RunWorker(t, w)
	defer stop()
	if _, err := newTestClient(t, conn).Enqueue(ctx, "q", "Seq", seqArg{N: 7}); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-ran:
		if n != 7 {
			t.Fatalf("ran job %d, want 7", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("job not run within 10s")
	}
}

func TestTLSClientCertificate(t *testing.T) {
	t.Parallel()
	s := redistest.StartTLS(t, redistest.TLSOptions{})
	ctx := context.Background()
	tlsFor := func(f resq.TLSFiles) resq.ConnConfig {
		cfg, err := f.Config()
		if err != nil {
			t.Fatal(err)
		}
		return resq.ConnConfig{URL: s.TLSURL(), Namespace: "tls", TLS: cfg}
	}
	good := resq.TLSFiles{CAFile: s.Certs.CAFile, CertFile: s.Certs.ClientCertFile, KeyFile: s.Certs.ClientKeyFile, MinVersion: "1.3"}
	conn := openConn(t, tlsFor(good))
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("with CA and client certificate: %v", err)
	}
	roundTrip(t, conn)

	// permanent: the error names the certificate problem. With TLS 1.3 a
	// server refusing the client's certificate may just reset the
	// connection (its alert races the close), which is not recognisable.
	cases := []struct {
		name      string
		f         resq.TLSFiles
		permanent bool
	}{
		{"no client certificate", resq.TLSFiles{CAFile: s.Certs.CAFile}, false},
		{"client certificate from another CA", resq.TLSFiles{CAFile: s.Certs.CAFile, CertFile: s.Certs.OtherClientCertFile, KeyFile: s.Certs.OtherClientKeyFile}, false},
		{"untrusted server (system roots)", resq.TLSFiles{CertFile: s.Certs.ClientCertFile, KeyFile: s.Certs.ClientKeyFile}, true},
		{"untrusted server (other CA)", resq.TLSFiles{CAFile: s.Certs.OtherCAFile, CertFile: s.Certs.ClientCertFile, KeyFile: s.Certs.ClientKeyFile}, true},
		{"wrong server name", resq.TLSFiles{CAFile: s.Certs.CAFile, CertFile: s.Certs.ClientCertFile, KeyFile: s.Certs.ClientKeyFile, ServerName: "redis.example.com"}, true},
	}
	for _, c := range cases {
		conn := openConn(t, tlsFor(c.f))
		err := conn.Ping(ctx)
		if err == nil {
			t.Errorf("%s: Ping succeeded, want refusal", c.name)
			continue
		}
		if c.permanent && !resq.IsPermanent(err) {
			t.Errorf("%s: IsPermanent(%v) = false, want true", c.name, err)
		}
	}
	// A plain redis:// URL with ConnConfig.TLS still speaks TLS.
	cfg := tlsFor(good)
	cfg.URL = "redis://" + s.TLSAddr() + "/0"
	if err := openConn(t, cfg).Ping(ctx); err != nil {
		t.Fatalf("redis:// URL with ConnConfig.TLS: %v", err)
	}
}

func TestTLSFilesErrors(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	for _, c := range []struct {
		f    resq.TLSFiles
		want string
	}{
		{resq.TLSFiles{CAFile: certs.Dir + "/missing.crt"}, "CA file"},
		{resq.TLSFiles{CAFile: certs.ClientKeyFile}, "no PEM certificate"},
		{resq.TLSFiles{CertFile: certs.ClientCertFile}, "both"},
		{resq.TLSFiles{CertFile: certs.ClientCertFile, KeyFile: certs.OtherClientKeyFile}, "client certificate"},
		{resq.TLSFiles{MinVersion: "1.1"}, "1.2 or 1.3"},
	} {
		if _, err := c.f.Config(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want it to mention %q", c.f, err, c.want)
		}
	}
}

func TestOpenURLForms(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		cfg  resq.ConnConfig
		want string // substring of the error, "" for success
		desc string // substring of String()
	}{
		{resq.ConnConfig{URL: "redis+sentinel://u:pw@h1:26379,h2:26379/mymaster/2?sentinel_password=sp"}, "", "redis+sentinel://u:xxxxx@h1:26379,h2:26379/mymaster/2/resque"},
		{resq.ConnConfig{URL: "redis://u:pw@ignored:6379/1", Sentinel: resq.SentinelConfig{MasterName: "m", Addrs: []string{"s1:26379"}}}, "", "redis+sentinel://u:xxxxx@s1:26379/m/1"},
		{resq.ConnConfig{URL: "redis+sentinel://h1:26379"}, "no master name", ""},
		{resq.ConnConfig{Sentinel: resq.SentinelConfig{MasterName: "m"}}, "no sentinel addresses", ""},
		{resq.ConnConfig{URL: "redis+sentinel://h1:26379/m?bogus=1"}, "unknown parameter", ""},
		{resq.ConnConfig{URL: "redis+cluster://a:7000,b:7001", Namespace: "{resque}"}, "", "redis+cluster://a:7000,b:7001/{resque}"},
		{resq.ConnConfig{URL: "redis+cluster://a:7000,b:7001"}, "hash tag", ""},
		{resq.ConnConfig{URL: "redis://x:1/0", Cluster: resq.ClusterConfig{Addrs: []string{"a:1"}}, Namespace: "app"}, `"{app}"`, ""},
		{resq.ConnConfig{URL: "redis+cluster://a:7000/3", Namespace: "{r}"}, "only database 0", ""},
		{resq.ConnConfig{URL: "redis+cluster://a", Namespace: "{r}"}, "host:port", ""},
		{resq.ConnConfig{URL: "redis+sentinel://a:1/m", Cluster: resq.ClusterConfig{Addrs: []string{"a:1"}}}, "choose one", ""},
		{resq.ConnConfig{URL: "memcached://a:1"}, "unknown scheme", ""},
		{resq.ConnConfig{URL: "redis+sentinel://u:pw@h1:26379,h2:26379/m?sentinel_password=pw&bogus=1"}, "unknown parameter", ""},
		{resq.ConnConfig{URL: "redis+cluster://u:pw@a:1,b", Namespace: "{r}"}, "host:port", ""},
		{resq.ConnConfig{URL: "redis://u:pw@h:1/0?replica_acks=1&replica_ack_timeout=250ms"}, "", "redis://u:xxxxx@h:1/0/resque (enqueues confirmed by 1 replica(s))"},
		{resq.ConnConfig{URL: "redis+sentinel://h1:26379/m?replica_acks=2&sentinel_password=pw"}, "", "redis+sentinel://h1:26379/m/0/resque"},
		{resq.ConnConfig{URL: "redis://u:pw@h:1/0?replica_acks=all"}, "want a number of replicas", ""},
		{resq.ConnConfig{URL: "redis://h:1/0?replica_ack_timeout=5"}, "want a duration", ""},
		{resq.ConnConfig{URL: "redis://h:1/0", ReplicaAcks: -1}, "ReplicaAcks is -1", ""},
		{resq.ConnConfig{URL: "redis://h:1/0", ReplicaAckTimeout: -time.Second}, "want a positive duration", ""},
	} {
		conn, err := resq.Open(c.cfg)
		if c.want != "" {
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%+v: err = %v, want it to mention %q", c.cfg, err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "pw") {
				t.Errorf("error shows the password: %v", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", c.cfg, err)
			continue
		}
		if !strings.Contains(conn.String(), c.desc) || strings.Contains(conn.String(), "pw") {
			t.Errorf("String() = %q, want %q and no password", conn.String(), c.desc)
		}
		conn.Close()
	}
	_, err := resq.Open(resq.ConnConfig{URL: "redis+cluster://a:1"})
	if !errors.Is(err, resq.ErrNoHashTag) || !resq.IsPermanent(err) {
		t.Errorf("no-hash-tag error %v: want ErrNoHashTag and permanent", err)
	}
}

func TestClusterThroughAnySeed(t *testing.T) {
	t.Parallel()
	c := redistest.StartCluster(t, redistest.Options{})
	const ns = "{resque}"
	owner := c.SlotOwner(t, ns+":queues")
	var seed *redistest.Server
	for _, n := range c.Nodes {
		if n != owner {
			seed = n
			break
		}
	}
	ctx := context.Background()
	// The only seed given does not own the namespace's slot.
	conn := openConn(t, resq.ConnConfig{URL: "redis+cluster://" + seed.Addr(), Namespace: ns})
	if err := conn.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	roundTrip(t, conn)
	admin := resq.NewAdmin(conn)
	// Keyless reads (SCAN, INFO) go to the namespace's node.
	keys, err := admin.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(keys, "queues") || !contains(keys, "stat:processed") {
		t.Errorf("Admin.Keys = %v, want queues and stat:processed", keys)
	}
	if got := owner.Do(t, "GET", ns+":stat:processed"); got != "1" {
		t.Errorf("stat:processed on the owning node = %q, want 1", got)
	}
	// Batches, failures and their retry stay in the slot too.
	cl := newTestClient(t, conn)
	res, err := cl.EnqueueBatch(ctx, []resq.EnqueueParams{{Queue: "a", Class: "X"}, {Queue: "b", Class: "X"}})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("EnqueueBatch: %v %+v", err, res)
	}
	if n, err := admin.QueueSize(ctx, "b"); err != nil || n != 1 {
		t.Fatalf("QueueSize(b) = %d, %v", n, err)
	}

	// Without a hash tag the connection is refused before any write.
	_, err = resq.Open(resq.ConnConfig{URL: c.URL(), Namespace: "resque"})
	if !errors.Is(err, resq.ErrNoHashTag) {
		t.Fatalf("cluster with namespace resque: %v, want ErrNoHashTag", err)
	}
	for _, n := range c.Nodes {
		if k := n.Do(t, "DBSIZE"); n != owner && k != "0" {
			t.Errorf("node %s holds %s keys, want none outside the namespace's slot", n.Addr(), k)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestSentinelFailover runs a worker and a producer through Sentinel while
// the sentinels switch the master. Every enqueue that returned success
// (confirmed by the replica: ConnConfig.ReplicaAcks) must be run; enqueues
// may fail during the switch; processing resumes.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	t.Run("SENTINEL FAILOVER", func(t *testing.T) {
		t.Parallel()
		sentinelFailover(t, func(t *testing.T, d *redistest.Sentinel) { d.Failover(t) })
	})
	t.Run("master killed", func(t *testing.T) {
		t.Parallel()
		sentinelFailover(t, func(t *testing.T, d *redistest.Sentinel) {
			old := d.MasterAddr(t)
			d.ServerAt(t, old).Kill(t)
			d.WaitNewMaster(t, old, 60*time.Second)
		})
	})
}

func sentinelFailover(t *testing.T, failover func(*testing.T, *redistest.Sentinel)) {
	// Two replicas: the new master has one to confirm enqueues while the
	// old master is down or still rejoining as a replica.
	d := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: 2})
	ctx := context.Background()
	// Redis replicates asynchronously, and SENTINEL FAILOVER promotes the
	// replica while the old master still takes writes: without replica
	// acknowledgements an enqueue acknowledged in that instant is lost
	// (CI saw one in ~700). With them it is refused instead.
	conn := openConn(t, resq.ConnConfig{URL: d.URL(), Namespace: "sf", ReplicaAcks: 1, ReplicaAckTimeout: 500 * time.Millisecond})
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 2, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ran := map[int]int{}
	var runTimes []time.Time
	resq.Handle(w, "Seq", func(ctx context.Context, a seqArg) error {
		mu.Lock()
		ran[a.N]++
		runTimes = append(runTimes, time.Now())
		mu.Unlock()
		return nil
	})
	// A job that is running while the master switches: its ack must reach
	// the new master, or the job must run again; it is not dropped.
	slowStarted := make(chan struct{}, 4)
	var slowDone atomic.Int64
	resq.Handle(w, "Slow", func(ctx context.Context, a seqArg) error {
		slowStarted <- struct{}{}
		time.Sleep(1500 * time.Millisecond)
		slowDone.Add(1)
		return nil
	})
	stop := testkit.RunWorker(t, w)
	cl := newTestClient(t, conn)
	if _, err := cl.Enqueue(ctx, "q", "Slow", seqArg{N: -1}); err != nil {
		t.Fatal(err)
	}
	<-slowStarted

	var acked, failed []int
	var enqErrs []string
	pctx, stopProducer := context.WithCancel(ctx)
	producerDone := make(chan struct{})
	go func() {
		defer close(producerDone)
		for n := 0; pctx.Err() == nil; n++ {
			ectx, cancel := context.WithTimeout(pctx, 2*time.Second)
			_, err := cl.Enqueue(ectx, "q", "Seq", seqArg{N: n})
			cancel()
			mu.Lock()
			if err != nil {
				failed = append(failed, n)
				if len(enqErrs) < 5 {
					enqErrs = append(enqErrs, err.Error())
				}
			} else {
				acked = append(acked, n)
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	testkit.Eventually(t, "jobs running before the failover", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) > 20
	})
	switchStart := time.Now()
	failover(t, d)
	switched := time.Since(switchStart)
	// Keep producing for a while on the new master.
	time.Sleep(3 * time.Second)
	stopProducer()
	<-producerDone

	deadline := time.Now().Add(30 * time.Second)
	var lost []int
	for {
		mu.Lock()
		lost = lost[:0]
		for _, n := range acked {
			if ran[n] == 0 {
				lost = append(lost, n)
			}
		}
		mu.Unlock()
		if len(lost) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	testkit.Eventually(t, "the slow job done", func() bool { return slowDone.Load() > 0 })
	stop()
	st, err := resq.NewAdmin(conn).Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Working != 0 || st.Workers != 0 || st.Failed != 0 {
		t.Errorf("after the worker stopped: %+v; want no workers, no job in progress, no failures", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lost) > 0 {
		t.Errorf("%d acknowledged enqueues were never run (e.g. %v)", len(lost), lost[:min(len(lost), 10)])
	}
	// The longest pause between two job starts is the processing stall.
	sort.Slice(runTimes, func(i, j int) bool { return runTimes[i].Before(runTimes[j]) })
	var stall time.Duration
	for i := 1; i < len(runTimes); i++ {
		if g := runTimes[i].Sub(runTimes[i-1]); g > stall {
			stall = g
		}
	}
	twice := 0
	for _, c := range ran {
		if c > 1 {
			twice++
		}
	}
	t.Logf("sentinel failover: sentinels switched in %v; longest processing stall %v; enqueues acknowledged %d, failed %d (e.g. %q), run twice %d; the job running across the switch ran %d time(s)",
		switched.Round(time.Millisecond), stall.Round(time.Millisecond), len(acked), len(failed), enqErrs, twice, slowDone.Load())
	if last := runTimes[len(runTimes)-1]; !last.After(switchStart.Add(switched)) {
		t.Errorf("no job ran after the failover (last at %v)", last)
	}
}

// Job.Metadata set by enqueue middleware travels in the payload's
// "metadata" field and reaches the worker's middleware and handler.
func TestJobMetadataTravels(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	cl := testkit.Client(t, b.conn, resq.ClientConfig{Middleware: []resq.EnqueueMiddleware{
		func(next resq.EnqueueFunc) resq.EnqueueFunc {
			return func(ctx context.Context, j *resq.Job) error {
				j.Metadata = map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "b": "2"}
				return next(ctx, j)
			}
		},
	}})
	if _, err := cl.Enqueue(ctx, "q", "X", 1); err != nil {
		t.Fatal(err)
	}
	raw := b.srv.Do(t, "LINDEX", b.key("queue:q"), "0")
	if !strings.Contains(raw, `"metadata":{"b":"2","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}`) || !strings.HasPrefix(raw, `{"class":"X","args":[1]`) {
		t.Fatalf("payload %s", raw)
	}
	b.srv.Do(t, "RPUSH", b.key("queue:q"), `{"class":"X","args":[2],"metadata":"not an object"}`)
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	got := make(chan map[string]string, 2)
	w.HandleFunc("X", func(ctx context.Context, j *resq.Job) error { got <- j.Metadata; return nil })
	testkit.RunWorker(t, w)
	if m := <-got; m["traceparent"] == "" || m["b"] != "2" {
		t.Errorf("worker saw metadata %v", m)
	}
	if m := <-got; m != nil {
		t.Errorf("a malformed metadata field gave %v, want nil", m)
	}
}

// The sentinels' password and the data nodes' are separate settings.
func TestSentinelSeparateAuth(t *testing.T) {
	t.Parallel()
	d := redistest.StartSentinel(t, redistest.SentinelOptions{Options: redistest.Options{Password: "data-pw"}, SentinelPassword: "sent-pw"})
	hosts := strings.Join(d.Addrs(), ",")
	ctx := context.Background()
	conn := openConn(t, resq.ConnConfig{URL: "redis+sentinel://:data-pw@" + hosts + "/" + d.MasterName + "/0?sentinel_password=sent-pw", Namespace: "sa"})
	roundTrip(t, conn)
	conn = openConn(t, resq.ConnConfig{URL: "redis://:data-pw@/0", Namespace: "sa",
		Sentinel: resq.SentinelConfig{MasterName: d.MasterName, Addrs: d.Addrs(), Password: "sent-pw"}})
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("flags form: %v", err)
	}
	if strings.Contains(conn.String(), "pw") {
		t.Errorf("String() shows a password: %s", conn.String())
	}
	// Wrong data password: a permanent error. Wrong sentinel password: the
	// sentinels refuse, and no master is found.
	bad := openConn(t, resq.ConnConfig{URL: "redis://:wrong@/0", Sentinel: resq.SentinelConfig{MasterName: d.MasterName, Addrs: d.Addrs(), Password: "sent-pw"}})
	if err := bad.Ping(ctx); err == nil || !resq.IsPermanent(err) {
		t.Errorf("wrong data password: %v, want a permanent error", err)
	}
	bad = openConn(t, resq.ConnConfig{URL: "redis://:data-pw@/0", Sentinel: resq.SentinelConfig{MasterName: d.MasterName, Addrs: d.Addrs(), Password: "wrong"}})
	if err := bad.Ping(ctx); err == nil {
		t.Error("wrong sentinel password: Ping succeeded")
	} else {
		t.Logf("wrong sentinel password: %v (permanent: %v)", err, resq.IsPermanent(err))
	}
}
