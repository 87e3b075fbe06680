package resq

import (
	"encoding/json"
	"time"
)

// Job is one job as a handler or middleware sees it.
type Job struct {
	// ID is resq's job id; empty for jobs enqueued by Ruby or Node.
	ID    string
	Class string
	Queue string
	// Args is the job's argument array as JSON.
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

	payload []byte
}

// PayloadSize is the size in bytes of the job's payload in Redis.
func (j *Job) PayloadSize() int { return len(j.payload) }
