package resq

import (
	"encoding/json"
	"time"
)

// Job is one job as a handler or middleware sees it.
type Job struct {
	// ID is resq's job id; empty for jobs enqueued by Ruby or Node, except
	// ActiveJob jobs, whose ID is ActiveJob's job_id.
	ID string
	// Class is the job's class; for an ActiveJob job, its job_class.
	Class string
	Queue string
	// Args is the job's argument array as JSON; for an ActiveJob job, its
	// ActiveJob arguments decoded to plain JSON (ActiveJobWrapperClass).
	Args json.RawMessage
	// EnqueuedAt is when a resq Client enqueued it (zero for other producers).
	EnqueuedAt time.Time
	// WorkerID is the Resque worker id of the slot running the job.
	WorkerID string
	// StartedAt is when the worker took the job.
	StartedAt time.Time
	// Encrypted is set when the args travel encrypted (Args here is the
	// plaintext: only the handler sees it).
	Encrypted bool
	// Signed is set when the worker verified the job's signature.
	Signed bool
	// ActiveJob is set for a job enqueued by Rails' Resque adapter and run
	// by its job_class (nil in a ChildProcess handler).
	ActiveJob *ActiveJobInfo
	// Metadata travels in the payload's "metadata" field (Ruby and Node
	// ignore it): middleware data such as a trace context, set by enqueue
	// middleware and read by worker middleware. It is not signed or
	// encrypted: never put argument values or secrets in it.
	Metadata map[string]string
	// Attempt is the run's number under a retry policy (resque-retry's
	// retry_attempt): 0 on the first run, 1 on the first retry. Always 0
	// for a class without a retry policy, and in a ChildProcess handler
	// (a Command gets it as RESQ_JOB_ATTEMPT).
	Attempt int

	payload    []byte
	railsShape bool // an ActiveJob enqueue: unsigned, the payload is Rails' {"class","args"} only
	// at is the due time of a delayed job (zero: enqueue now).
	at time.Time
	// elems are Args split into its elements by the worker's checks, so
	// that a typed handler does not split them again; split is the Args
	// they came from (middleware may replace Args).
	elems []json.RawMessage
	split json.RawMessage
}

// argElems returns Args's elements when the worker already split this very
// Args, else nil.
func (j *Job) argElems() []json.RawMessage {
	if j.elems == nil || len(j.Args) != len(j.split) || len(j.Args) > 0 && &j.Args[0] != &j.split[0] {
		return nil
	}
	return j.elems
}

// PayloadSize is the size in bytes of the job's payload in Redis.
func (j *Job) PayloadSize() int { return len(j.payload) }
