package resq

import (
	"log/slog"
	"time"
)

// Defaults for WorkerConfig.
const (
	DefaultConcurrency       = 10
	DefaultJobTimeout        = 30 * time.Minute
	DefaultStopTimeout       = 5 * time.Second
	DefaultPollInterval      = time.Second
	DefaultHeartbeatInterval = 30 * time.Second
	// DefaultPruneInterval is Ruby's prune_interval: a heartbeat older than
	// this marks a worker on another host as dead.
	DefaultPruneInterval = 300 * time.Second
)

// DeadJobPolicy says what happens to the job a dead worker was running.
type DeadJobPolicy int

const (
	// RequeueDeadJobs pushes the job back to the head of its queue, so it
	// runs again (at-least-once). resq's default.
	RequeueDeadJobs DeadJobPolicy = iota
	// FailDeadJobs records a failure (Resque::DirtyExit or
	// Resque::PruneDeadWorkerDirtyExit), as Ruby Resque does.
	FailDeadJobs
)

// WorkerConfig configures a Worker. Zero values take the documented defaults.
type WorkerConfig struct {
	// Queues in priority order. Entries may be comma-separated lists, globs
	// ("mail_*", "*") and exclusions ("!low"), resolved as Ruby Resque does.
	// Required.
	Queues []string
	// Concurrency is the number of jobs run at once; each slot registers as
	// its own Resque worker. Default 10.
	Concurrency int
	// JobTimeout bounds every job run in-process (context cancellation) or
	// as a command (killed). Default 30 minutes. A handler's own
	// HandlerOptions.Timeout takes precedence.
	JobTimeout time.Duration
	// StopTimeout is how long running jobs get after a fast stop (ctx
	// cancelled, TERM/INT) before they are requeued. Default 5 s.
	StopTimeout time.Duration
	// PollInterval is the longest wait between polls of empty queues; polls
	// back off from 2 ms to it. Default 1 s.
	PollInterval time.Duration
	// HeartbeatInterval is how often workers:heartbeat is refreshed and dead
	// workers are looked for. Default 30 s (Ruby prunes after 300 s).
	HeartbeatInterval time.Duration
	// PruneInterval is the heartbeat age after which a worker on another host
	// counts as dead. Default 300 s, Ruby's prune_interval.
	PruneInterval time.Duration
	// DeadJobs says what happens to a dead worker's in-flight job. Default
	// RequeueDeadJobs.
	DeadJobs DeadJobPolicy
	// Middleware wraps every job, outermost first.
	Middleware []Middleware
	// Hostname and PID form the worker ids. Defaults: os.Hostname() and
	// os.Getpid(). Keep the real pid when Ruby workers share the host
	// (docs/protocol.md §4.15).
	Hostname string
	PID      int
	// Logger receives job and worker events. Default: the Conn's logger.
	Logger *slog.Logger
	// Limits bound payloads before they are decoded; a job over a limit
	// fails with a record naming the limit. Zero fields take the defaults
	// (512 KiB, depth 32, 256 args).
	Limits Limits
	// Keyring verifies signatures and decrypts args. With signing keys in
	// it, unsigned, forged, altered or moved jobs are refused, except on
	// queues matching AllowUnsigned.
	Keyring *Keyring
	// AllowUnsigned lists queues (names or globs) that accept unsigned jobs,
	// for Ruby or Node producers that do not sign yet. Signed jobs on them
	// are still verified.
	AllowUnsigned []string
	// ReplayWindow, when positive, accepts each job id once: a job whose id
	// finished within the window is refused as a replay. Retrying a failure
	// from the admin API clears its id.
	ReplayWindow time.Duration
	// DisableBlockingPickup turns off the blocking pickup (BLMOVE, Redis
	// 6.2+) that wakes an idle worker as soon as a job is pushed; the worker
	// then only polls, backing off up to PollInterval.
	DisableBlockingPickup bool
	// DisableHoldAhead turns off holding jobs ahead. By default a busy
	// worker keeps up to four jobs per slot (as many as its slots use)
	// moved out of its queues into its own hash
	// (<ns>:resq:ahead:<first worker id>), so that a slot finishing a job
	// starts the next one without waiting for Redis; held jobs are not in
	// the queues' lengths, may run before a job of a higher-priority queue
	// that arrived after them, and go back to the heads of their queues when
	// no slot takes them within 100 ms, when the worker pauses or stops, and
	// when it dies (docs/decisions.md §31). Without Lua scripts there is no
	// hold (plain mode holds its own way).
	DisableHoldAhead bool
	// OnJobDoneFunc, if set, is called after every job with its outcome (for
	// metrics). It runs on the job's slot and must be quick.
	OnJobDoneFunc func(JobEvent)
	// ClassConcurrency caps how many jobs of a class run at once across
	// every worker on the namespace (a Redis lease per class; see
	// concurrency.go). A job of a class at its cap goes back to the tail of
	// its queue without counting as processed. Empty: no caps.
	ClassConcurrency map[string]int
	// Retry holds the retry policies (per class and a default). Empty: a
	// failed job is recorded at once, as before.
	Retry RetryConfig
}

// Job outcomes reported in JobEvent.
const (
	OutcomeDone     = "done"
	OutcomeFailed   = "failed"
	OutcomeSkipped  = "skipped"  // a middleware returned ErrDontPerform
	OutcomeRequeued = "requeued" // interrupted by a fast stop
	OutcomeRetried  = "retried"  // failed, and its retry was written
)

// Class labels used for jobs whose class is not a registered one, so that
// hostile class names cannot grow metrics without bound.
const (
	ClassUnknown = "<unknown>"
	ClassInvalid = "<invalid>"
)

// JobEvent describes one finished job. It carries no argument values.
type JobEvent struct {
	ID, Class, Queue, WorkerID string
	Outcome                    string
	Exception                  string // for OutcomeFailed
	Duration                   time.Duration
	Bytes                      int // payload size
}
