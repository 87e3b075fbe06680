package redistest

import (
	"syscall"
	"testing"
)

// Pause stops the server with SIGSTOP: connections stay open and nothing
// answers, as with a Redis host that hangs (swap storm, a VM paused) until
// Resume. Kill and the test cleanup (SIGKILL) end a paused server too; Stop
// needs Resume first.
func (s *Server) Pause(tb testing.TB) {
	tb.Helper()
	s.refusePooled(tb, "Pause")
	pid := s.PID()
	if pid == 0 {
		tb.Fatalf("redistest: Pause of %s, which is not running", s.Addr())
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		tb.Fatalf("redistest: pause %s: %v", s.Addr(), err)
	}
}

// Resume lets a paused server run again (SIGCONT).
func (s *Server) Resume(tb testing.TB) {
	tb.Helper()
	s.refusePooled(tb, "Resume")
	if pid := s.PID(); pid != 0 {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			tb.Fatalf("redistest: resume %s: %v", s.Addr(), err)
		}
	}
}
