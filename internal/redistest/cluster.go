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
	c := &Cluster{}
	for i := 0; i < 3; i++ {
		bus, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: %v", err)
		}
		no := o
		no.Args = append(append([]string(nil), o.Args...),
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "5000",
			"--cluster-port", strconv.Itoa(bus))
		c.Nodes = append(c.Nodes, StartWith(tb, no))
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
