package redistest

import (
	"strconv"
	"strings"
	"testing"
)

// CommandCalls returns how many times cmd (lower case, e.g. "rpush") ran on
// the server, from INFO commandstats; 0 when it never ran.
func (s *Server) CommandCalls(tb testing.TB, cmd string) int {
	tb.Helper()
	_, rest, ok := strings.Cut(s.Do(tb, "INFO", "commandstats"), "cmdstat_"+cmd+":calls=")
	if !ok {
		return 0
	}
	if i := strings.IndexByte(rest, ','); i >= 0 {
		rest = rest[:i]
	}
	n, _ := strconv.Atoi(rest)
	return n
}
