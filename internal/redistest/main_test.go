package redistest

import (
	"testing"

	"github.com/resq-go/resq/internal/testkit"
)

// TestMain fails the run when a test leaves goroutines behind.
func TestMain(m *testing.M) {
	testkit.Main(m, nil)
}
