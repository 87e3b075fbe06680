package resq

import (
	"strings"

	"github.com/resq-go/resq/internal/isolate"
)

// RunShimIfRequested must be the first statement of main (and of TestMain)
// in a program whose Worker runs jobs under ChildLimits (Command.Limits, or
// HandlerOptions.Limits of ChildProcess handlers). resq sets some limits by
// re-executing the program as a small "limit shim" that applies them and
// then execs the job: when this process is that shim, RunShimIfRequested
// does so and never returns; otherwise it returns at once. Importing resq
// never does this by itself. Without the call, Worker.Run refuses such
// limits with an error that names this function.
//
//	func main() {
//		resq.RunShimIfRequested()
//		// ...
//	}
func RunShimIfRequested() { isolate.RunShimIfRequested() }

// Validate refuses limits that no process can run under (negative values,
// memory below 1 MiB, CPU time below 1 s, a process limit of 1, fewer than 8
// open files). Worker.Run checks the same; Validate lets a program report a
// bad setting before it connects.
func (l ChildLimits) Validate() error { return l.isolateLimits().Validate() }

// String describes the limits for a log line, e.g. "memory 256 MiB, CPU 2s,
// output kept 64 KiB per stream, killed over 64 MiB written". Zero fields
// read as their defaults.
func (l ChildLimits) String() string {
	parts := []string{l.isolateLimits().String()}
	keep := int64(l.MaxOutput)
	if keep <= 0 {
		keep = DefaultMaxOutput
	}
	parts = append(parts, "output kept "+isolate.FormatBytes(keep)+" per stream")
	kill := l.OutputKill
	if kill == 0 {
		kill = DefaultOutputKill
	}
	if kill > 0 {
		parts = append(parts, "killed over "+isolate.FormatBytes(kill)+" written")
	}
	return strings.Join(parts, ", ")
}

func (l ChildLimits) isolateLimits() isolate.Limits {
	return isolate.Limits{Memory: l.Memory, CPUTime: l.CPUTime, Procs: l.Procs, Files: l.Files}
}
