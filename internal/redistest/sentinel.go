package redistest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SentinelOptions configures StartSentinel.
type SentinelOptions struct {
	// Options apply to the master and the replicas.
	Options
	// MasterName is the monitored name. Default "mymaster".
	MasterName string
	// DownAfter is sentinel down-after-milliseconds: how long a silent
	// master takes to count as down. Default 1s.
	DownAfter time.Duration
	// SentinelPassword, when set, is the sentinels' own password
	// (requirepass and sentinel-pass in sentinel.conf); Options.Password is
	// the master's and replica's (the sentinels get it as auth-pass).
	SentinelPassword string
	// SentinelArgs are extra sentinel.conf lines.
	SentinelArgs []string
	// Replicas is the number of replicas. Default 1.
	Replicas int
}

// Sentinel is a master, its replicas (one unless SentinelOptions.Replicas
// says more) and three redis-sentinel processes (quorum 2) watching them,
// all private to the test. Roles change on a failover: Master and Replicas
// are the processes started in those roles (Replica is the first replica);
// MasterAddr asks the sentinels which one is the master now.
type Sentinel struct {
	MasterName      string
	Master, Replica *Server
	Replicas        []*Server
	Sentinels       []*Server
}

// StartSentinel starts the deployment and returns once every sentinel
// knows the replica and the other two sentinels, so a failover can start at
// once. It fails the test (never skips) if redis-sentinel is not on PATH.
func StartSentinel(tb testing.TB, o SentinelOptions) *Sentinel {
	tb.Helper()
	if o.MasterName == "" {
		o.MasterName = "mymaster"
	}
	if o.DownAfter == 0 {
		o.DownAfter = time.Second
	}
	d := &Sentinel{MasterName: o.MasterName}
	d.Master = StartWith(tb, o.Options)
	if o.Password != "" {
		// the old master becomes a replica after a failover
		d.Master.opts.Args = append(d.Master.opts.Args, "--masterauth", o.Password)
		d.Master.Do(tb, "CONFIG", "SET", "masterauth", o.Password)
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	for range o.Replicas {
		d.Replicas = append(d.Replicas, StartReplica(tb, d.Master, o.Options))
	}
	d.Replica = d.Replicas[0]
	conf := strings.Join(append([]string{
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", o.MasterName, d.Master.Port()),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", o.MasterName, o.DownAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s 10000", o.MasterName),
		fmt.Sprintf("sentinel parallel-syncs %s 1", o.MasterName),
	}, o.SentinelArgs...), "\n") + "\n"
	if o.Password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", o.MasterName, o.Password)
	}
	if o.SentinelPassword != "" {
		conf += fmt.Sprintf("sentinel sentinel-pass %s\n", o.SentinelPassword)
	}
	for i := 0; i < 3; i++ {
		d.Sentinels = append(d.Sentinels, StartWith(tb, Options{bin: "redis-sentinel", confText: conf, Password: o.SentinelPassword}))
	}
	for _, s := range d.Sentinels {
		s := s
		waitFor(tb, 20*time.Second, "sentinel "+s.Addr()+" to discover the replica and its peers", func() (bool, string) {
			st, err := s.Try("SENTINEL", "master", o.MasterName)
			if err != nil {
				return false, err.Error()
			}
			f := flatPairs(st)
			return f["num-slaves"] == strconv.Itoa(o.Replicas) && f["num-other-sentinels"] == "2", st
		})
	}
	return d
}

// Addrs returns the sentinels' addresses.
func (d *Sentinel) Addrs() []string {
	out := make([]string, len(d.Sentinels))
	for i, s := range d.Sentinels {
		out[i] = s.Addr()
	}
	return out
}

// URL returns "redis+sentinel://S1,S2,S3/MASTERNAME/0".
func (d *Sentinel) URL() string {
	return "redis+sentinel://" + strings.Join(d.Addrs(), ",") + "/" + d.MasterName + "/0"
}

// MasterAddr asks the first sentinel that answers for the current master's
// address.
func (d *Sentinel) MasterAddr(tb testing.TB) string {
	tb.Helper()
	var last error
	for _, s := range d.Sentinels {
		out, err := s.Try("SENTINEL", "get-master-addr-by-name", d.MasterName)
		if err == nil {
			host, port, _ := strings.Cut(out, "\n")
			return host + ":" + port
		}
		last = err
	}
	tb.Fatalf("redistest: no sentinel answers: %v", last)
	return ""
}

// ServerAt returns Master or the replica that listens on addr.
func (d *Sentinel) ServerAt(tb testing.TB, addr string) *Server {
	tb.Helper()
	for _, s := range append([]*Server{d.Master}, d.Replicas...) {
		if s.Addr() == addr {
			return s
		}
	}
	tb.Fatalf("redistest: %s is neither the master nor a replica", addr)
	return nil
}

// Failover asks a sentinel for a failover (SENTINEL FAILOVER) and returns
// once the sentinels name the other process as master and it answers as
// one. It returns the new master.
func (d *Sentinel) Failover(tb testing.TB) *Server {
	tb.Helper()
	old := d.MasterAddr(tb)
	d.Sentinels[0].Do(tb, "SENTINEL", "FAILOVER", d.MasterName)
	return d.WaitNewMaster(tb, old, 30*time.Second)
}

// WaitNewMaster waits until every sentinel names the same master, other
// than old, and that server reports role:master. It returns the new master.
// (Sentinels learn of a promotion from each other within a second or two;
// a client that asks a sentinel that has not heard yet is sent to the old
// master.)
func (d *Sentinel) WaitNewMaster(tb testing.TB, old string, timeout time.Duration) *Server {
	tb.Helper()
	var cur string
	waitFor(tb, timeout, "the sentinels to agree on a new master (old "+old+")", func() (bool, string) {
		cur = ""
		for _, s := range d.Sentinels {
			out, err := s.Try("SENTINEL", "get-master-addr-by-name", d.MasterName)
			if err != nil {
				return false, err.Error()
			}
			host, port, _ := strings.Cut(out, "\n")
			addr := host + ":" + port
			if addr == old || (cur != "" && addr != cur) {
				return false, "sentinel " + s.Addr() + " names " + addr
			}
			cur = addr
		}
		info, err := d.ServerAt(tb, cur).Try("INFO", "replication")
		return err == nil && strings.Contains(info, "role:master"), info
	})
	return d.ServerAt(tb, cur)
}

// flatPairs turns a rendered flat key/value array into a map.
func flatPairs(s string) map[string]string {
	parts := strings.Split(s, "\n")
	m := make(map[string]string, len(parts)/2)
	for i := 0; i+1 < len(parts); i += 2 {
		m[parts[i]] = parts[i+1]
	}
	return m
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// timeout with what cond last reported.
func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("redistest: timed out after %v waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
