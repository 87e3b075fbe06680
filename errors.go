package resq

import (
	"errors"
	"fmt"

	"github.com/resq-go/resq/internal/envelope"
	"github.com/resq-go/resq/internal/wire"
)

var (
	// ErrDontPerform, returned by a perform middleware (or a handler) before
	// the job's work starts, skips the job quietly: it counts as processed,
	// not failed, as Ruby's Resque::Job::DontPerform does.
	ErrDontPerform = errors.New("resq: job skipped (DontPerform)")
	// ErrDontEnqueue, returned by an enqueue middleware, stops the push (like
	// a before_enqueue hook returning false). Client.Enqueue returns it.
	ErrDontEnqueue = errors.New("resq: enqueue vetoed by middleware")
	// ErrQueueFull is returned by Enqueue when the queue is at its cap.
	ErrQueueFull = errors.New("resq: queue is full")
	// ErrInvalidArgs wraps argument decoding and validation errors.
	ErrInvalidArgs = errors.New("resq: invalid job arguments")
	// ErrPayloadLimit is matched (errors.Is) by every refusal of a payload
	// over a Limits bound (size, JSON depth, number of args): Enqueue,
	// EnqueueWith and EnqueueBatch return it, and a worker's failure record
	// for such a job is named ExceptionPayloadLimit.
	ErrPayloadLimit = envelope.ErrLimit
	// ErrNotReplicated is matched by the error of an enqueue the master
	// stored but fewer replicas than ConnConfig.ReplicaAcks confirmed in
	// time. The job may run, or be lost if the master fails over now;
	// enqueueing it again may run it twice.
	ErrNotReplicated = wire.ErrNotReplicated
)

// Exception names resq writes in failure records for its own failure kinds.
// Ruby's names are used where Ruby has the same situation.
const (
	ExceptionInvalidPayload = "Resq::InvalidPayload"
	ExceptionPayloadLimit   = "Resq::PayloadLimit"
	ExceptionSignature      = "Resq::SignatureError"
	ExceptionDecrypt        = "Resq::DecryptError"
	ExceptionReplay         = "Resq::Replay"
	ExceptionUnknownClass   = "Resq::UnknownJobClass"
	ExceptionInvalidArgs    = "Resq::InvalidArguments"
	ExceptionPanic          = "Resq::Panic"
	ExceptionTimeout        = "Resq::Timeout"
	ExceptionError          = "Resq::JobError"
	ExceptionExecFailed     = "Resq::ExecFailed"
	ExceptionDirtyExit      = "Resque::DirtyExit"
	ExceptionPruneDirtyExit = "Resque::PruneDeadWorkerDirtyExit"
)

// Exception is implemented by errors that name their own exception class in
// failure records (the "exception" field that resque-web shows).
type Exception interface {
	error
	ExceptionName() string
}

// JobError is an error with an explicit exception name and backtrace.
type JobError struct {
	Name      string
	Err       error
	Backtrace []string
}

func (e *JobError) Error() string         { return e.Err.Error() }
func (e *JobError) Unwrap() error         { return e.Err }
func (e *JobError) ExceptionName() string { return e.Name }

// Fail returns an error that is recorded with exception name name.
func Fail(name, format string, args ...any) error {
	return &JobError{Name: name, Err: fmt.Errorf(format, args...)}
}
