package redistest

import (
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

// waitStreaming returns once master's replicas have acknowledged a write
// made now. After a diskless full sync Redis (7.0+) holds the command
// stream back until the replica's first REPLCONF ACK, which replicas send
// once a second: until then WAIT counts no replica. The write is a
// PUBLISH, which is replicated and leaves no key.
func waitStreaming(tb testing.TB, master *Server) {
	tb.Helper()
	master.Do(tb, "PUBLISH", "redistest:replica-sync", "1")
	want := replOffset(master.Do(tb, "INFO", "replication"), "master_repl_offset:")
	waitFor(tb, 10*time.Second, "the replicas to acknowledge the master's stream", func() (bool, string) {
		info, err := master.Try("INFO", "replication")
		if err != nil {
			return false, err.Error()
		}
		for _, line := range strings.Split(info, "\n") {
			if strings.HasPrefix(line, "slave") && replOffset(line, "offset=") < want {
				return false, info
			}
		}
		return strings.Contains(info, "slave0:"), info
	})
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
