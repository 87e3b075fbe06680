// Package storm is resq's fault-storm suite: its test (storm_test.go) runs
// real resq work processes against a real redis-server and throws faults at
// them — SIGKILL storms of workers (with and without Lua), Redis killed and restarted from its
// append-only file, Redis stopped (SIGSTOP) for longer than the read
// timeout, Redis down when workers start, TERM and QUIT mid-job, a dead
// worker of another host, Redis at maxmemory — then prints what each storm
// left: jobs in, done, lost (must be 0), duplicates (at-least-once, allowed
// and counted), failure records, leftovers in queues, registry and
// in-flight records, and processes still running.
//
// The short form runs with the other tests (go test ./...). The long form:
//
//	RESQ_STORM=long go test -v -count=1 -timeout 30m -run TestStorm ./internal/storm
//
// RESQ_STORM_JOBS=N sets the number of jobs of each storm; RESQ_STORM_REPORT=FILE
// writes the figures to FILE (scripts/test prints them). The figures are
// recorded in docs/operations.md, "Fault storms".
package storm
