package redistest

import (
	"fmt"
	"strings"
	"testing"
)

// ACLDenials returns the server's ACL LOG entries for user, one line each
// ("reason object (context ctx)"). With ignoreScriptProbe, refusals of
// SCRIPT LOAD, EVALSHA and EVAL are left out: a process whose user lacks
// @scripting is refused its one script probe and then runs on plain
// commands.
func (s *Server) ACLDenials(tb testing.TB, user string, ignoreScriptProbe bool) []string {
	tb.Helper()
	// Entries are flat key/value lists, each starting with "count".
	fields := strings.Split(s.Do(tb, "ACL", "LOG", "256"), "\n")
	var res []string
	var cur map[string]string
	flush := func() {
		if cur == nil || cur["username"] != user {
			return
		}
		if ignoreScriptProbe && cur["reason"] == "command" && (cur["object"] == "script|load" || cur["object"] == "evalsha" || cur["object"] == "eval") {
			return
		}
		res = append(res, fmt.Sprintf("%s %s (context %s)", cur["reason"], cur["object"], cur["context"]))
	}
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i] == "count" {
			flush()
			cur = map[string]string{}
		}
		if cur != nil {
			cur[fields[i]] = fields[i+1]
		}
	}
	flush()
	return res
}
