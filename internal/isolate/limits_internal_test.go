package isolate

import "testing"

// A run that died because a thread could not be created is blamed on the
// memory limit when no process limit is set (the address-space limit
// refused the thread's stack: seen from a Go child whose memory bomb made
// runtime/cgo's pthread_create fail), and on the process limit when one is.
func TestLimitFromOutputThreadFailure(t *testing.T) {
	seen := markersIn([]byte("runtime/cgo: pthread_create failed: Resource temporarily unavailable\nSIGABRT: abort"))
	if e := limitFromOutput(Limits{Memory: 256 << 20}, seen); e == nil || e.Limit != LimitMemory {
		t.Errorf("memory limit only: %v; want the memory limit", e)
	}
	if e := limitFromOutput(Limits{Memory: 256 << 20, Procs: 10}, seen); e == nil || e.Limit != LimitProcs {
		t.Errorf("memory and process limits: %v; want the process limit", e)
	}
	if e := limitFromOutput(Limits{}, seen); e != nil {
		t.Errorf("no limits: %v; want none", e)
	}
}
