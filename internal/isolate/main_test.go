package isolate

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the limit shim when the sandbox tests start this binary as
// one (the test files' init functions do so too, before their own code), and
// fails the run when a test leaves goroutines behind (output readers, waiters
// of killed processes).
func TestMain(m *testing.M) {
	RunShimIfRequested()
	goleak.VerifyTestMain(m)
}
