package resq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/resq-go/resq/internal/envelope"
	"github.com/resq-go/resq/internal/wire"
)

// ActiveJobWrapperClass is the Resque class Rails' Resque adapter gives
// every ActiveJob ("ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper").
//
// A Worker runs such a job by its ActiveJob job_class: a handler registered
// under the job_class name (Handle, HandleFunc, HandleCommand, resq work
// --exec) runs it and sees the ActiveJob arguments, decoded to plain JSON
// (docs/protocol.md "ActiveJob jobs"), as the job's args; Job.Class is the
// job_class and Job.ActiveJob holds the rest of ActiveJob's hash. An
// unregistered job_class fails with Resq::UnknownJobClass naming it. Failure
// records keep the payload as it was, with class JobWrapper, so Ruby's tools
// show the job "(via ActiveJob)". A handler registered under
// ActiveJobWrapperClass itself receives every such job undecoded instead.
const ActiveJobWrapperClass = wire.ActiveJobWrapperClass

// ActiveJobInfo is ActiveJob's serialized job hash, apart from the
// arguments, of a job enqueued by Rails' Resque adapter.
type ActiveJobInfo struct {
	JobClass      string
	JobID         string
	ProviderJobID string
	QueueName     string
	Priority      *int64 // nil when not set
	// Executions counts earlier runs (ActiveJob's retry_on increments it).
	Executions          int64
	ExceptionExecutions map[string]int64
	Locale, Timezone    string
	EnqueuedAt          time.Time
	ScheduledAt         time.Time // zero unless the job was delayed
	// Arguments are the arguments as ActiveJob serialized them (with its
	// _aj_* markers); Job.Args holds them decoded.
	Arguments json.RawMessage
}

// unwrapActiveJob decodes a JobWrapper job's args (elems are its elements):
// ActiveJob's hash, and the arguments as plain JSON with their elements.
func (w *Worker) unwrapActiveJob(elems []json.RawMessage) (*ActiveJobInfo, json.RawMessage, []json.RawMessage, error) {
	aj, err := wire.DecodeActiveJob(elems)
	if err != nil {
		return nil, nil, nil, err
	}
	info := &ActiveJobInfo{JobClass: aj.JobClass, JobID: aj.JobID, ProviderJobID: aj.ProviderJobID, QueueName: aj.QueueName,
		Priority: aj.Priority, Executions: aj.Executions, ExceptionExecutions: aj.ExceptionExecutions, Locale: aj.Locale,
		Timezone: aj.Timezone, EnqueuedAt: aj.EnqueuedAt, ScheduledAt: aj.ScheduledAt, Arguments: aj.Arguments}
	args, err := wire.ActiveJobPlainArgs(aj.Arguments)
	if err != nil {
		return info, nil, nil, err
	}
	split, err := wire.SplitArray(args, w.limits.MaxDepth+1)
	if err != nil {
		return info, nil, nil, err
	}
	if err := w.limits.CheckArgs(len(split)); err != nil {
		return info, nil, nil, err
	}
	return info, args, split, nil
}

// EnqueueActiveJob pushes a job for a Rails worker to run as an ActiveJob
// of class jobClass with args, exactly as Rails' Resque adapter writes it
// (perform_later): see EnqueueParams.ActiveJob. The returned ID is the
// job's ActiveJob job_id. For set(wait_until:), use EnqueueWith with
// ActiveJob and At.
func (c *Client) EnqueueActiveJob(ctx context.Context, queue, jobClass string, args ...any) (*Enqueued, error) {
	return c.EnqueueWith(ctx, EnqueueParams{Queue: queue, Class: jobClass, Args: args, ActiveJob: true})
}

// activeJobParams turns p (an ActiveJob enqueue: Class is the job_class)
// into the JobWrapper job Rails writes, and returns the job_id it got.
func (c *Client) activeJobParams(ctx context.Context, p EnqueueParams, now time.Time) (EnqueueParams, string, error) {
	queue, class := p.Queue, p.Class
	if err := checkNames(queue, class); err != nil {
		return p, "", err
	}
	if p.Encrypt || c.cfg.EncryptAll {
		return p, "", fmt.Errorf("enqueue ActiveJob %s to queue %s: ActiveJob jobs cannot be encrypted (the Rails worker that runs them cannot decrypt); enqueue it with a Client without EncryptAll", class, queue)
	}
	plain := p.RawArgs
	if plain == nil {
		for i, a := range p.Args {
			if err := validate(a); err != nil {
				return p, "", fmt.Errorf("enqueue ActiveJob %s to queue %s: argument %d: %w: %v", class, queue, i, ErrInvalidArgs, err)
			}
		}
		raw, err := wire.MarshalArgs(p.Args)
		if err != nil {
			return p, "", fmt.Errorf("enqueue ActiveJob %s to queue %s: arguments cannot be encoded as JSON: %w", class, queue, err)
		}
		plain = raw
		if err := c.registerSecrets(ctx, class, p.Args); err != nil {
			return p, "", fmt.Errorf("enqueue ActiveJob %s to queue %s: %w", class, queue, err)
		}
	}
	lim := c.cfg.Limits.envelope()
	if err := lim.CheckSize(len(plain)); err != nil {
		return p, "", fmt.Errorf("enqueue ActiveJob %s to queue %s: %w", class, queue, err)
	}
	if err := lim.CheckDepth(plain); err != nil {
		return p, "", fmt.Errorf("enqueue ActiveJob %s to queue %s: %w", class, queue, err)
	}
	serialized, err := wire.ActiveJobSerializeArgs(plain)
	if err != nil {
		return p, "", fmt.Errorf("enqueue ActiveJob %s to queue %s: %w: %v", class, queue, ErrInvalidArgs, err)
	}
	id := newUUID()
	wrapped := wire.NewActiveJob{JobClass: class, JobID: id, QueueName: queue, Arguments: serialized, EnqueuedAt: now}
	if !p.At.IsZero() && p.At.Unix() > now.Unix() { // delayed (prepareDelay): Rails' set(wait_until:)
		wrapped.ScheduledAt = p.At
	}
	p.Class, p.Args, p.RawArgs, p.ActiveJob = ActiveJobWrapperClass, nil, wrapped.EncodeArgs(), false
	return p, id, nil
}

// newUUID returns a random (version 4) UUID, as Ruby's SecureRandom.uuid.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// activeJobFailure is the exception and message of a JobWrapper job that
// cannot be run.
func activeJobFailure(err error) (exception, msg string) {
	var le *envelope.LimitError
	if errors.As(err, &le) {
		return ExceptionPayloadLimit, "ActiveJob arguments: " + err.Error() + "; the job was not run"
	}
	var ae *wire.ActiveJobError
	if errors.As(err, &ae) {
		return ExceptionInvalidPayload, err.Error() + "; the job was not run"
	}
	return ExceptionInvalidPayload, "invalid ActiveJob payload: " + err.Error() + "; the job was not run"
}

// capClass is the class whose ClassConcurrency cap applies to p: for a
// JobWrapper job that runs by its job_class, the job_class (read from the
// args, which are plaintext for such jobs: Rails cannot encrypt).
func (w *Worker) capClass(p wire.Payload) string {
	if p.Class != ActiveJobWrapperClass || w.handlers[p.Class] != nil || p.Envelope.Enc != nil {
		return p.Class
	}
	if c, _ := wire.PeekActiveJob(p.Args); c != "" {
		return c
	}
	return p.Class
}

// activeJobClassOf returns the job_class of decoded JobWrapper args, or
// class when there is none.
func activeJobClassOf(args any, class string) string {
	if a, ok := args.([]any); ok && len(a) == 1 {
		if m, ok := a[0].(map[string]any); ok {
			if c, ok := m["job_class"].(string); ok && c != "" {
				return c
			}
		}
	}
	return class
}
