package redistest

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is three redis-server masters in cluster mode sharing all 16384
// slots (redis-cli --cluster create), private to the test.
type Cluster struct {
	Nodes []*Server
	// Replicas are the nodes AddReplica started.
	Replicas []*Server
	opts     Options
}

// StartCluster starts three cluster-mode servers, joins them with
// redis-cli --cluster create and returns once every node reports
// cluster_state:ok. Each node's cluster bus uses its own free port.
func StartCluster(tb testing.TB, o Options) *Cluster {
	tb.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		tb.Fatalf("redistest: redis-cli not found on PATH; install it (Debian: apt-get install -y redis-tools)")
	}
	c := &Cluster{opts: o}
	for i := 0; i < 3; i++ {
		c.Nodes = append(c.Nodes, c.startNode(tb))
	}
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	out, err := exec.Command(cli, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("redistest: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, n := range c.Nodes {
		n := n
		waitFor(tb, 20*time.Second, "cluster_state:ok on "+n.Addr(), func() (bool, string) {
			info, err := n.Try("CLUSTER", "INFO")
			return err == nil && strings.Contains(info, "cluster_state:ok"), info
		})
	}
	return c
}

// startNode starts one cluster-mode server with its own bus port.
func (c *Cluster) startNode(tb testing.TB) *Server {
	tb.Helper()
	bus, err := freePort()
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	no := c.opts
	no.Args = append(append([]string(nil), c.opts.Args...),
		"--cluster-enabled", "yes",
		"--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", "5000",
		"--cluster-port", strconv.Itoa(bus))
	return StartWith(tb, no)
}

// AddReplica starts a node, makes it a replica of master (CLUSTER MEET,
// CLUSTER REPLICATE) and returns once its link to master is up and master
// counts it among its replicas. A cluster replica answers reads only on a
// connection that sent READONLY.
func (c *Cluster) AddReplica(tb testing.TB, master *Server) *Server {
	tb.Helper()
	master.Do(tb, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
	r := c.startNode(tb)
	id := master.Do(tb, "CLUSTER", "MYID")
	// the master's bus port, from its "myself" line (ip:port@bus)
	bus := ""
	for _, line := range strings.Split(master.Do(tb, "CLUSTER", "NODES"), "\n") {
		if f := strings.Fields(line); len(f) > 2 && strings.Contains(f[2], "myself") {
			_, b, _ := strings.Cut(f[1], "@")
			bus, _, _ = strings.Cut(b, ",")
		}
	}
	r.Do(tb, "CLUSTER", "MEET", "127.0.0.1", strconv.Itoa(master.Port()), bus)
	waitFor(tb, 20*time.Second, "the new node to learn the master's id", func() (bool, string) {
		nodes, err := r.Try("CLUSTER", "NODES")
		return err == nil && strings.Contains(nodes, id), nodes
	})
	waitFor(tb, 20*time.Second, "CLUSTER REPLICATE", func() (bool, string) {
		out, err := r.Try("CLUSTER", "REPLICATE", id)
		if err != nil {
			return false, err.Error()
		}
		return true, out
	})
	waitFor(tb, 20*time.Second, "the replica's link to the master", func() (bool, string) {
		info, err := r.Try("INFO", "replication")
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return false, info
		}
		minfo, err := master.Try("INFO", "replication")
		return err == nil && strings.Contains(minfo, "connected_slaves:1"), minfo
	})
	waitFor(tb, 20*time.Second, "cluster_state:ok on the replica", func() (bool, string) {
		info, err := r.Try("CLUSTER", "INFO")
		return err == nil && strings.Contains(info, "cluster_state:ok"), info
	})
	waitStreaming(tb, master)
	c.Replicas = append(c.Replicas, r)
	return r
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL returns "redis+cluster://N1,N2,N3".
func (c *Cluster) URL() string { return "redis+cluster://" + strings.Join(c.Addrs(), ",") }

// SlotOwner returns the node that owns key's slot (CLUSTER KEYSLOT, then
// each node's CLUSTER NODES).
func (c *Cluster) SlotOwner(tb testing.TB, key string) *Server {
	tb.Helper()
	slot, err := strconv.Atoi(c.Nodes[0].Do(tb, "CLUSTER", "KEYSLOT", key))
	if err != nil {
		tb.Fatalf("redistest: CLUSTER KEYSLOT: %v", err)
	}
	for _, n := range c.Nodes {
		if owns(tb, n, slot) {
			return n
		}
	}
	tb.Fatalf("redistest: no node owns slot %d", slot)
	return nil
}

// owns reports whether n serves slot, from CLUSTER NODES' "myself" line.
func owns(tb testing.TB, n *Server, slot int) bool {
	for _, line := range strings.Split(n.Do(tb, "CLUSTER", "NODES"), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "myself") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, found := strings.Cut(r, "-")
			if !found {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 == nil && err2 == nil && slot >= l && slot <= h {
				return true
			}
		}
	}
	return false
}
