package resq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/resq-go/resq/internal/envelope"
	"github.com/resq-go/resq/internal/wire"
	"github.com/resq-go/resq/internal/worker"
)

// execute is the engine's ExecuteFunc: one fetched job, from its bytes to
// the ack to write. The path, in order: decode the payload (once), take the
// class's concurrency lease, check the signature and decrypt (open), find
// the handler, run it through the middleware chain (in process or in the
// slot's child), and build the ack: counters, and for a failure its record.
// A fast stop that interrupts the job makes it ActionRequeue; a class at its
// cap, ActionNone (the lease script already moved the job back).
func (w *Worker) execute(hardCtx context.Context, s worker.Slot, f wire.Fetched) worker.Result {
	var p wire.Payload
	var decodeErr error
	if f.Oversize == nil {
		// One pass over the bytes: syntax, depth limit, duplicate keys,
		// fields. Every later step uses p.
		p, decodeErr = wire.DecodePayloadDepth(f.Raw, w.limits.MaxDepth)
		if decodeErr == nil {
			release, bounced := w.admit(hardCtx, s, f, p) // class concurrency cap
			if bounced {
				return worker.Result{Action: worker.ActionNone}
			}
			defer release()
		}
	}
	ack, requeue := w.process(hardCtx, s.ID, f, p, decodeErr)
	if requeue {
		return worker.Result{Action: worker.ActionRequeue}
	}
	return worker.Result{Action: worker.ActionAck, Ack: ack}
}

// process runs a job whose payload is decoded (p, or decodeErr; neither for
// an oversize one) and returns the ack to write, or requeue=true when a fast
// stop interrupted it. It reports the outcome to OnJobDoneFunc.
func (w *Worker) process(hardCtx context.Context, slotID string, f wire.Fetched, p wire.Payload, decodeErr error) (ack wire.Ack, requeue bool) {
	start := time.Now()
	ack = wire.Ack{WorkerID: slotID, Processed: true, Queue: f.Queue, Class: ClassInvalid}
	ev := JobEvent{Queue: f.Queue, WorkerID: slotID, Bytes: len(f.Raw), Class: ClassInvalid}
	defer func() {
		if w.cfg.OnJobDoneFunc == nil {
			return
		}
		ev.Duration = time.Since(start)
		switch {
		case requeue:
			ev.Outcome = OutcomeRequeued
		case ack.Failure != nil:
			ev.Outcome = OutcomeFailed
		case ev.Outcome == "":
			ev.Outcome = OutcomeDone
		}
		w.cfg.OnJobDoneFunc(ev)
	}()
	var secretsOf func() []string // values to scrub from error messages
	var rs *retryState            // set for a class with a retry policy
	var runErr error              // the handler's error, which a retry policy judges
	// fail turns the job's end into a failure: every failure passes here.
	// A retry policy that retries the job puts the retry on the ack
	// instead of ack.Failure (retry.go); the acker writes it in the same
	// transaction that clears the in-flight record.
	fail := func(name, msg string, bt []string) wire.Ack {
		var secrets []string
		if secretsOf != nil {
			secrets = secretsOf()
		}
		if len(secrets) > 0 {
			msg = scrub(msg, secrets)
			for i := range bt {
				bt[i] = scrub(bt[i], secrets)
			}
		}
		payload := f.Raw
		if len(payload) == 0 || payload[0] != '{' || !json.Valid(payload) {
			payload = wire.InvalidPayloadObject(f.Raw)
		}
		rec := wire.Failure{
			FailedAt: wire.FailedAt(time.Now()), Payload: payload, Exception: name, Error: msg,
			Backtrace: bt, Worker: slotID, Queue: f.Queue,
		}
		ack.CountFailed = true
		ev.Exception = name
		if rs != nil && runErr != nil {
			if retry, delay := w.planRetry(rs, runErr, f, p, rec.Encode(), time.Now()); retry != nil {
				ack.Retry, ack.SeenID = retry, "" // the job has not finished: no replay mark
				ev.Outcome = OutcomeRetried
				w.logger.Info("job failed, retrying", "job_id", ev.ID, "class", ev.Class, "queue", f.Queue, "worker", slotID,
					"exception", name, "attempt", rs.attempt, "delay", delay, "bytes", len(f.Raw), "duration", time.Since(start))
				return ack
			}
			rec.Error += rs.giveUpText()
			rec.Attempts = rs.attempt + 1
			ack.DelKeys = []string{rs.key, w.store.Keys.RetryFailureKey(rs.key)}
		}
		ack.Failure = rec.Encode()
		w.logger.Warn("job failed", "job_id", ev.ID, "class", ev.Class, "queue", f.Queue, "worker", slotID,
			"exception", name, "bytes", len(f.Raw), "duration", time.Since(start))
		return ack
	}
	if o := f.Oversize; o != nil {
		msg := w.limits.CheckSize(o.Size).Error() + "; the job was not run"
		fail(ExceptionPayloadLimit, msg, nil)
		// The record keeps only the payload's first KiB, its size and SHA-1.
		ack.Failure = wire.Failure{FailedAt: wire.FailedAt(time.Now()), Payload: wire.OversizePayloadObject(f.Raw, *o),
			Exception: ExceptionPayloadLimit, Error: msg, Backtrace: []string{}, Worker: slotID, Queue: f.Queue}.Encode()
		return ack, false
	}
	ev.ID = p.ID
	switch {
	case errors.Is(decodeErr, wire.ErrTooDeep):
		lerr := &envelope.LimitError{Limit: "depth", Value: w.limits.MaxDepth + 1, Max: w.limits.MaxDepth}
		return fail(ExceptionPayloadLimit, lerr.Error()+"; the job was not run", nil), false
	case decodeErr != nil:
		return fail(ExceptionInvalidPayload, decodeErr.Error()+"; the job was not run", nil), false
	}
	args, elems, signed, name, err := w.open(p, f.Queue)
	if err != nil {
		return fail(name, err.Error()+"; the job was not run", nil), false
	}
	class, id := p.Class, p.ID
	h := w.handlers[class]
	var aj *ActiveJobInfo
	if h == nil && class == ActiveJobWrapperClass {
		// Rails' Resque adapter: the job runs by its job_class, with its
		// ActiveJob arguments decoded (activejob.go).
		var err error
		if aj, args, elems, err = w.unwrapActiveJob(elems); aj != nil && id == "" {
			id, ev.ID = aj.JobID, aj.JobID
		}
		if err != nil {
			name, msg := activeJobFailure(err)
			return fail(name, msg, nil), false
		}
		class = aj.JobClass
		if h = w.handlers[class]; h == nil {
			ack.Class, ev.Class = ClassUnknown, ClassUnknown
			return fail(ExceptionUnknownClass, fmt.Sprintf("ActiveJob job_class %q is not registered on this worker; the job was not run (register a handler under that name, or work this queue with a worker that has it)", class), nil), false
		}
	}
	if h == nil {
		ack.Class, ev.Class = ClassUnknown, ClassUnknown
		return fail(ExceptionUnknownClass, fmt.Sprintf("no handler is registered for class %q on this worker; the job was not run (register it with resq.Handle, or work this queue with a worker that has it)", p.Class), nil), false
	}
	ack.Class, ev.Class = class, class
	secretsOf = func() []string { return w.redactor.secretValues(class, args, p.Envelope.Enc != nil) }
	if w.cfg.ReplayWindow > 0 && p.ID != "" {
		seen, err := w.store.Seen(hardCtx, p.ID)
		if err == nil && seen {
			return fail(ExceptionReplay, fmt.Sprintf("job id %s already ran within the replay window (%s); the job was not run", p.ID, w.cfg.ReplayWindow), nil), false
		}
		ack.SeenID, ack.SeenTTL = p.ID, w.cfg.ReplayWindow
	}
	job := &Job{ID: id, Class: class, Queue: f.Queue, Args: args, EnqueuedAt: p.EnqueuedAt,
		WorkerID: slotID, StartedAt: start, payload: f.Raw, Encrypted: p.Envelope.Enc != nil, Signed: signed, ActiveJob: aj}
	job.elems, job.split = elems, args
	job.Metadata = p.Metadata()
	if rs, err = w.beginRetry(hardCtx, h, p, args); err != nil {
		if hardCtx.Err() != nil {
			return ack, true // a fast stop: the job goes back untouched
		}
		return fail(ExceptionRetryCount, err.Error()+"; the job was not run", nil), false
	} else if rs != nil {
		job.Attempt = rs.attempt
	}
	timeout := w.cfg.JobTimeout
	if h.opts.Timeout > 0 {
		timeout = h.opts.Timeout
	}
	jctx, cancel := context.WithTimeout(hardCtx, timeout)
	err = runProtected(jctx, w.perform(h), job)
	timedOut := errors.Is(jctx.Err(), context.DeadlineExceeded)
	cancel()
	runErr = err
	if rs != nil && (err == nil || errors.Is(err, ErrDontPerform)) {
		ack.DelKeys = []string{rs.key, w.store.Keys.RetryFailureKey(rs.key)} // resque-retry's after_perform
	}
	switch {
	case err == nil:
		// Enabled first: building the attributes costs allocations on
		// every job even when debug lines are off.
		if w.logger.Enabled(hardCtx, slog.LevelDebug) {
			w.logger.Debug("job done", "job_id", job.ID, "class", job.Class, "queue", job.Queue,
				"worker", slotID, "bytes", len(f.Raw), "duration", time.Since(start))
		}
		return ack, false
	case errors.Is(err, ErrDontPerform):
		ev.Outcome = OutcomeSkipped
		if w.logger.Enabled(hardCtx, slog.LevelDebug) {
			w.logger.Debug("job skipped by middleware", "job_id", job.ID, "class", job.Class, "queue", job.Queue)
		}
		return ack, false
	case hardCtx.Err() != nil && !timedOut:
		return ack, true
	case timedOut:
		var je Exception
		if errors.As(err, &je) && je.ExceptionName() == ExceptionTimeout {
			return fail(ExceptionTimeout, err.Error(), backtraceOf(err)), false
		}
		return fail(ExceptionTimeout, fmt.Sprintf("timeout after %s: the job's context was cancelled (%v)", roundDur(timeout), err), backtraceOf(err)), false
	default:
		return fail(exceptionName(err), err.Error(), backtraceOf(err)), false
	}
}

// open checks a decoded payload's signature and decrypts its args
// (envelope.Keyring.Open), then checks the plaintext against the limits. It
// returns the plaintext args and their elements, whether a signature was
// verified, and on error the exception name to record.
func (w *Worker) open(p wire.Payload, queue string) (args json.RawMessage, elems []json.RawMessage, signed bool, exception string, err error) {
	args, signed, err = w.cfg.Keyring.envelope().Open(p.Meta(queue), p.Args, p.Envelope, w.unsignedQueue(queue))
	switch {
	case errors.Is(err, envelope.ErrSignature):
		return nil, nil, false, ExceptionSignature, err
	case err != nil:
		return nil, nil, signed, ExceptionDecrypt, err
	}
	if p.Envelope.Enc != nil {
		if err := w.limits.CheckDepth(args); err != nil {
			return nil, nil, signed, ExceptionPayloadLimit, err
		}
	}
	elems, err = wire.SplitArray(args, w.limits.MaxDepth+1)
	if err != nil {
		return nil, nil, signed, ExceptionInvalidPayload, fmt.Errorf("args are not a JSON array")
	}
	if err := w.limits.CheckArgs(len(elems)); err != nil {
		return nil, nil, signed, ExceptionPayloadLimit, err
	}
	return args, elems, signed, "", nil
}

func (w *Worker) unsignedQueue(queue string) bool {
	return w.unsigned.matches(queue)
}

// runProtected runs fn, turning a panic into an error with a stack trace.
func runProtected(ctx context.Context, fn HandlerFunc, job *Job) (err error) {
	defer func() {
		if r := recover(); r != nil {
			stack := strings.Split(strings.TrimSpace(string(debug.Stack())), "\n")
			err = &JobError{Name: ExceptionPanic, Err: fmt.Errorf("panic: %v", r), Backtrace: stack}
		}
	}()
	return fn(ctx, job)
}

func exceptionName(err error) string {
	var e Exception
	if errors.As(err, &e) {
		return e.ExceptionName()
	}
	if errors.Is(err, ErrInvalidArgs) {
		return ExceptionInvalidArgs
	}
	return ExceptionError
}

func backtraceOf(err error) []string {
	var je *JobError
	if errors.As(err, &je) {
		return je.Backtrace
	}
	return nil
}

// buildChain wraps handlers in the configured middleware, outermost first.
func (w *Worker) buildChain() func(h *handlerEntry) HandlerFunc {
	mws := append([]Middleware(nil), w.cfg.Middleware...)
	chains := make(map[*handlerEntry]HandlerFunc, len(w.handlers))
	for _, h := range w.handlers {
		fn := w.baseHandler(h)
		for i := len(mws) - 1; i >= 0; i-- {
			fn = mws[i](fn)
		}
		chains[h] = fn
	}
	return func(h *handlerEntry) HandlerFunc { return chains[h] }
}
