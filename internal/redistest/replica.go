package redistest

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartReplica starts a redis-server replicating master (with o's
// arguments, and master's password as masterauth when o has one) and
// returns once its link to the master is up (the master's
// repl-diskless-sync-delay is set to 0 to start the sync at once).
func StartReplica(tb testing.TB, master *Server, o Options) *Server {
	tb.Helper()
	o.Args = append(append([]string(nil), o.Args...), "--replicaof", "127.0.0.1", strconv.Itoa(master.Port()))
	if o.Password != "" {
		o.Args = append(o.Args, "--masterauth", o.Password)
	}
	// the master would wait 5 s for more replicas before a diskless sync
	master.Do(tb, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
	r := StartWith(tb, o)
	waitFor(tb, 10*time.Second, "replica to sync with the master", func() (bool, string) {
		info, err := r.Try("INFO", "replication")
		return err == nil && strings.Contains(info, "master_link_status:up"), info
	})
	waitStreaming(tb, master)
	return r
}

// waitStreaming returns once every replica of master acknowledges a write
// made now (WAIT on the connection that made it). After a diskless full
// sync Redis (7.0+) holds the command stream back until the replica's first
// REPLCONF ACK, which replicas send once a second: until then WAIT counts
// no replica. The write is a SET and DEL of a key of redistest's own (on a
// cluster node, one in a slot the node owns), so no key is left.
func waitStreaming(tb testing.TB, master *Server) {
	tb.Helper()
	key := syncKey(tb, master)
	waitFor(tb, 10*time.Second, "the replicas to acknowledge the master's stream", func() (bool, string) {
		n := replOffset(master.Do(tb, "INFO", "replication"), "connected_slaves:")
		if n < 1 {
			return false, "no replica connected"
		}
		out, err := commands(master.Addr(), master.opts.Password, master.db, 5*time.Second,
			[]string{"SET", key, "1"}, []string{"DEL", key}, []string{"WAIT", strconv.FormatInt(n, 10), "200"})
		if err != nil {
			return false, err.Error()
		}
		got, _ := strconv.ParseInt(out[2], 10, 64)
		return got >= n, fmt.Sprintf("WAIT counted %d of %d replicas", got, n)
	})
}

// syncKey is waitStreaming's key: on a cluster node, one whose slot the
// node owns.
func syncKey(tb testing.TB, n *Server) string {
	tb.Helper()
	if !strings.Contains(n.Do(tb, "INFO", "cluster"), "cluster_enabled:1") {
		return "redistest:replica-sync"
	}
	for i := 0; i < 10000; i++ {
		key := "redistest:replica-sync:{" + strconv.Itoa(i) + "}"
		slot, err := strconv.Atoi(n.Do(tb, "CLUSTER", "KEYSLOT", key))
		if err == nil && owns(tb, n, slot) {
			return key
		}
	}
	tb.Fatalf("redistest: no key found in a slot of %s", n.Addr())
	return ""
}

// replOffset reads the number after marker in an INFO replication text.
func replOffset(text, marker string) int64 {
	_, rest, ok := strings.Cut(text, marker)
	if !ok {
		return -1
	}
	if i := strings.IndexAny(rest, ",\r\n"); i >= 0 {
		rest = rest[:i]
	}
	n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
	if err != nil {
		return -1
	}
	return n
}
