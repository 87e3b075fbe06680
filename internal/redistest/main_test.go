package redistest

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves goroutines behind. (testkit,
// which the other packages use for this, imports redistest.) A server's
// reaper may outlive Close by a moment: it waits for the killed process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/resq-go/resq/internal/redistest.(*Server).spawn.func1"))
}
