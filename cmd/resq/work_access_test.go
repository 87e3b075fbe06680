package main

import (
	"os"
	"strings"
	"testing"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/isolate"
)

// TestWorkRefusesHandlerItsUIDCannotReach: with --max-procs as root and no
// cgroup v2 each job runs under a dedicated uid; a handler in a 0700
// directory (mktemp -d) would fail every job with "permission denied", so
// resq work refuses to start and says what to do.
func TestWorkRefusesHandlerItsUIDCannotReach(t *testing.T) {
	t.Parallel()
	f := setup(t)
	caps := isolate.Probe()
	if !caps.UsesDedicatedUID(isolate.Limits{Procs: 8}) {
		t.Skipf("jobs under --max-procs do not run under a dedicated uid here (%s)", caps.Describe(isolate.Limits{Procs: 8}))
	}
	private, err := os.MkdirTemp("", "resq-private-") // 0700, as mktemp -d makes it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(private) })
	job := script(t, private, "job.sh", "echo ran")
	r := f.run("work", "--queues", "q", "--max-procs", "8", "--exec", "Job="+job)
	if r.code == 0 || !strings.Contains(r.stderr, "not starting") || !strings.Contains(r.stderr, "class Job") ||
		!strings.Contains(r.stderr, "cannot execute "+job) || !strings.Contains(r.stderr, "chmod o+x "+private) {
		t.Fatalf("resq work with a handler in a 0700 directory: %v", r)
	}
	// Without a process limit the job runs as the worker's user: no refusal
	// at the check (the worker then runs; here it is not started).
	if err := resq.CheckCommands(map[string]resq.Command{"Job": {Path: job}}); err != nil {
		t.Errorf("no process limit: %v", err)
	}
}
