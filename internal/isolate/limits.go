package isolate

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits are hard limits on one job's process tree. Zero fields mean "no
// limit" (Files: the worker's own soft limit is inherited).
//
// Where they are enforced depends on the Sandbox's Capabilities:
//
//	           cgroup v2 (delegated)          rlimits (fallback)
//	Memory     memory.max of the tree         RLIMIT_DATA per process
//	CPUTime    cpu.stat usage of the tree     RLIMIT_CPU per process (warm
//	           (polled)                       children: polled per job)
//	Procs      pids.max of the tree           RLIMIT_NPROC under a dedicated
//	                                          uid (needs root)
//	Files      RLIMIT_NOFILE per process      RLIMIT_NOFILE per process
//
// RLIMIT_DATA, not RLIMIT_AS: address-space limits break programs that
// reserve address space they never use (the Go runtime cannot start under a
// 256 MiB RLIMIT_AS; V8 and the JVM reserve gigabytes), while RLIMIT_DATA
// counts the private writable memory a process actually maps.
type Limits struct {
	Memory  int64         // bytes
	CPUTime time.Duration // CPU time (user + system)
	Procs   int           // processes and threads
	Files   int           // open file descriptors per process
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// String lists the limits that are set, e.g. "memory 256 MiB, CPU 2s".
func (l Limits) String() string {
	var parts []string
	if l.Memory > 0 {
		parts = append(parts, "memory "+FormatBytes(l.Memory))
	}
	if l.CPUTime > 0 {
		parts = append(parts, "CPU "+l.CPUTime.String())
	}
	if l.Procs > 0 {
		parts = append(parts, "processes "+strconv.Itoa(l.Procs))
	}
	if l.Files > 0 {
		parts = append(parts, "open files "+strconv.Itoa(l.Files))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// Validate refuses negative limits.
func (l Limits) Validate() error {
	switch {
	case l.Memory < 0:
		return fmt.Errorf("memory limit %d is negative", l.Memory)
	case l.CPUTime < 0:
		return fmt.Errorf("CPU-time limit %s is negative", l.CPUTime)
	case l.Procs < 0:
		return fmt.Errorf("process limit %d is negative", l.Procs)
	case l.Files < 0:
		return fmt.Errorf("open-file limit %d is negative", l.Files)
	case l.Memory > 0 && l.Memory < 1<<20:
		return fmt.Errorf("memory limit %s is below 1 MiB; no program starts in that", FormatBytes(l.Memory))
	case l.CPUTime > 0 && l.CPUTime < time.Second:
		return fmt.Errorf("CPU-time limit %s is below 1s, the kernel's granularity", l.CPUTime)
	case l.Procs == 1:
		return errors.New("process limit 1 leaves no room for the job's own process; use 2 or more")
	case l.Files > 0 && l.Files < 8:
		return fmt.Errorf("open-file limit %d is below 8; stdin, stdout and stderr alone take 3", l.Files)
	}
	return nil
}

// Limit names which limit ended a run.
type Limit string

const (
	LimitTimeout Limit = "timeout"
	LimitMemory  Limit = "memory"
	LimitCPU     Limit = "cpu"
	LimitProcs   Limit = "procs"
	LimitFiles   Limit = "files"
	LimitOutput  Limit = "output"
	// LimitStray: the program exited, processes it started did not.
	LimitStray Limit = "stray"
)

// LimitError is returned when a run was stopped, or failed, because it hit
// one of its limits. Reason is the text for the failure record, e.g.
// "memory limit 256 MiB exceeded".
type LimitError struct {
	Limit  Limit
	Reason string
}

func (e *LimitError) Error() string { return e.Reason }

// Is makes errors.Is(err, ErrTimeout) true for timeouts.
func (e *LimitError) Is(target error) bool { return target == ErrTimeout && e.Limit == LimitTimeout }

func memoryReason(l Limits) *LimitError {
	return &LimitError{Limit: LimitMemory, Reason: "memory limit " + FormatBytes(l.Memory) + " exceeded"}
}

func cpuReason(l Limits) *LimitError {
	return &LimitError{Limit: LimitCPU, Reason: "CPU time limit " + l.CPUTime.String() + " exceeded"}
}

func procsReason(l Limits) *LimitError {
	return &LimitError{Limit: LimitProcs, Reason: "process limit (" + strconv.Itoa(l.Procs) + ") reached"}
}

func filesReason(l Limits) *LimitError {
	return &LimitError{Limit: LimitFiles, Reason: "open-file limit (" + strconv.Itoa(l.Files) + ") reached"}
}

func outputReason(kill int64) *LimitError {
	return &LimitError{Limit: LimitOutput, Reason: "output limit: the job wrote more than " + FormatBytes(kill) + " and was killed"}
}

// Markers that programs print when an rlimit refuses them something. They
// are only consulted for a limit that is set, on a run that failed.
var (
	memoryMarkers = []string{"out of memory", "MemoryError", "Cannot allocate memory",
		"bad_alloc", "memory exhausted", "allocation failed", "failed to allocate", "failed to reserve", "cannot allocate"}
	procsMarkers = []string{"fork: retry", "fork: Resource temporarily unavailable", "Cannot fork", "can't fork",
		"cannot fork", "failed to create new OS thread", "pthread_create failed", "Resource temporarily unavailable"}
	// forkFailureMarkers, seen live on stderr under a process limit, stop
	// the job at once: shells retry a failed fork for seconds.
	forkFailureMarkers = []string{"fork: retry", "fork: Resource temporarily unavailable", "Cannot fork", "can't fork"}
	filesMarkers       = []string{"Too many open files", "too many open files", "EMFILE"}
)

// Bits of outputMeter.seen: which kinds of limit marker a job's output has
// shown so far.
const (
	seenMemory uint32 = 1 << iota
	seenProcs
	seenFiles
)

// markersIn returns the seen bits for the markers in p.
func markersIn(p []byte) uint32 {
	has := func(markers []string) bool {
		for _, m := range markers {
			if bytes.Contains(p, []byte(m)) {
				return true
			}
		}
		return false
	}
	var bits uint32
	if has(memoryMarkers) {
		bits |= seenMemory
	}
	if has(procsMarkers) {
		bits |= seenProcs
	}
	if has(filesMarkers) {
		bits |= seenFiles
	}
	return bits
}

// limitFromOutput guesses, from markers seen in a failed run's output, which
// rlimit refused it. Only limits that are set are considered. (A program's
// first words on dying, "fatal error: runtime: out of memory", can be
// followed by more than the tail that is kept, so the markers are noted as
// the output streams by.)
func limitFromOutput(l Limits, seen uint32) *LimitError {
	switch {
	case l.Memory > 0 && seen&seenMemory != 0:
		return memoryReason(l)
	case l.Procs > 0 && seen&seenProcs != 0:
		return procsReason(l)
	case l.Files > 0 && seen&seenFiles != 0:
		return filesReason(l)
	case l.Memory > 0 && seen&seenProcs != 0:
		// No process limit is set: a thread that could not be created
		// (its stack refused by the address-space limit) ran out of memory.
		return memoryReason(l)
	}
	return nil
}

// FormatBytes renders a byte count with a binary unit ("256 MiB").
func FormatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	v := float64(n)
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10) + " " + units[i]
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + " " + units[i]
}
