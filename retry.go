package resq

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// Retries follow resque-retry (docs/protocol.md, "Retries"): a class with a
// policy counts its runs in resque-retry's counter key, and a failed run
// that may be retried goes back through the delayed queue (or straight to
// its queue when the delay is zero) in the ack's MULTI, instead of into
// resque:failed. Only the last failed attempt is recorded, once.

// RetryPolicy says whether and when a failed job of a class runs again.
// The zero value never retries.
type RetryPolicy struct {
	// Limit is how many times a failed job is retried after its first run
	// (resque-retry's retry_limit): a job runs at most Limit+1 times.
	// Negative retries forever; zero never retries (and counts nothing).
	Limit int
	// Backoff gives the wait before each retry. The zero Backoff retries
	// at once (resque-retry's default retry_delay of 0).
	Backoff Backoff
	// Fatal errors are never retried (errors.Is against each).
	Fatal []error
	// RetryOn, when not empty, retries only errors matching one of them
	// (errors.Is); resque-retry's retry_exceptions.
	RetryOn []error
	// FatalExitCodes: an external program (--exec, Command handlers) that
	// exits with one of these codes is not retried.
	FatalExitCodes []int
	// RetryExitCodes, when not empty, retries only a program's exit with one
	// of these codes (other failures of the program are fatal).
	RetryExitCodes []int
	// RetryIfFunc, when set, decides for an error that Fatal, RetryOn and
	// the exit-code lists leave open: true retries. Nil retries every
	// such error. Use it for Go error types (errors.As).
	RetryIfFunc func(error) bool
	// ExpireKeyAfter, when positive, gives the attempt counter a TTL of the
	// next delay plus this at every run (resque-retry's
	// expire_retry_key_after), so a job lost between attempts does not
	// leave its counter forever. Zero: no TTL, as resque-retry by default.
	ExpireKeyAfter time.Duration
}

// Backoff is the wait before retry n (n = the attempt that failed, 0 for
// the first run).
type Backoff struct {
	// Delays lists the waits: retry n waits Delays[n], past the end the
	// last one (resque-retry's backoff_strategy and retry_delay arrays). A
	// single element is a constant delay.
	Delays []time.Duration
	// Base and Max, used when Delays is empty: retry n waits Base×2ⁿ, at
	// most Max (zero Max: no cap). Zero Base: no wait.
	Base, Max time.Duration
	// Jitter in [0, 1] multiplies each wait by a random factor in
	// [1-Jitter, 1+Jitter] (resque-retry's retry_delay_multiplicand_min
	// and _max), so many jobs failing together do not return together.
	Jitter float64
}

// ResqueBackoff returns resque-retry's ExponentialBackoff default strategy
// (0, 1m, 10m, 1h, 3h, 6h); with it, resque-retry's retry_limit is 6.
func ResqueBackoff() Backoff {
	return Backoff{Delays: []time.Duration{0, time.Minute, 10 * time.Minute, time.Hour, 3 * time.Hour, 6 * time.Hour}}
}

// Delay returns the wait before retrying after the failed attempt n,
// without jitter.
func (b Backoff) Delay(n int) time.Duration {
	if n < 0 {
		n = 0
	}
	if len(b.Delays) > 0 {
		return b.Delays[min(n, len(b.Delays)-1)]
	}
	if b.Base <= 0 {
		return 0
	}
	d := b.Base
	for i := 0; i < n; i++ {
		if b.Max > 0 && d >= b.Max || d > time.Duration(1<<61) {
			break
		}
		d *= 2
	}
	if b.Max > 0 && d > b.Max {
		d = b.Max
	}
	return d
}

// jittered applies Jitter with r uniform in [0, 1).
func (b Backoff) jittered(n int, r float64) time.Duration {
	d := b.Delay(n)
	if b.Jitter <= 0 || d <= 0 {
		return d
	}
	j := min(b.Jitter, 1)
	return time.Duration(float64(d) * (1 - j + 2*j*r))
}

// RetryConfig is WorkerConfig.Retry.
type RetryConfig struct {
	// Default applies to every class without a policy of its own (nil:
	// none).
	Default *RetryPolicy
	// Classes holds per-class policies; HandlerOptions.Retry overrides
	// both.
	Classes map[string]RetryPolicy
	// Ruby34 writes hash arguments the way Ruby 3.4's Hash#inspect does
	// ({"a" => 1}) when building resque-retry's attempt key; by default
	// as Ruby up to 3.3 does ({"a"=>1}). Set it when Ruby 3.4 resque-retry
	// workers share the jobs, so both count the same attempts.
	Ruby34 bool
	// NoFailureKey turns off the failure-resque-retry:<…> record
	// (resque-retry's MultipleWithRetrySuppression backend, read by its web
	// tab) written while a job waits for its retry.
	NoFailureKey bool
}

func (c RetryConfig) validate() error {
	if c.Default != nil {
		if err := c.Default.Validate(); err != nil {
			return fmt.Errorf("Retry.Default: %w", err)
		}
	}
	for class, p := range c.Classes {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("Retry.Classes[%q]: %w", class, err)
		}
	}
	return nil
}

// Validate reports a policy that cannot work.
func (p RetryPolicy) Validate() error {
	b := p.Backoff
	if b.Jitter < 0 || b.Jitter > 1 {
		return fmt.Errorf("jitter %v is outside [0, 1] (0.2 spreads each delay by ±20%%)", b.Jitter)
	}
	if b.Base < 0 || b.Max < 0 {
		return errors.New("backoff base and max must not be negative")
	}
	if b.Max > 0 && b.Base > b.Max {
		return fmt.Errorf("backoff base %s is above max %s", b.Base, b.Max)
	}
	for _, d := range b.Delays {
		if d < 0 {
			return fmt.Errorf("delay %s is negative", d)
		}
	}
	if p.ExpireKeyAfter < 0 {
		return errors.New("ExpireKeyAfter must not be negative")
	}
	return nil
}

// checkHandlerRetries validates the HandlerOptions.Retry of every handler
// (Run refuses to start with one that cannot work).
func (w *Worker) checkHandlerRetries() error {
	for class, h := range w.handlers {
		if h.opts.Retry != nil {
			if err := h.opts.Retry.Validate(); err != nil {
				return fmt.Errorf("resq: the retry policy of class %s: %w", class, err)
			}
		}
	}
	return nil
}

// retryDirective is the error a handler returns through RetryIn or
// NoRetry.
type retryDirective struct {
	err   error
	delay time.Duration
	never bool
}

func (e *retryDirective) Error() string {
	if e.err == nil {
		return "retry requested"
	}
	return e.err.Error()
}
func (e *retryDirective) Unwrap() error { return e.err }

// RetryIn returns err marked to be retried after d, whatever the class's
// policy says about the error or its backoff. The policy's Limit still
// holds, and a class without a retry policy records the failure (give it
// one with HandlerOptions.Retry). The failure's exception is err's. In a
// ChildProcess handler the mark does not cross the process boundary.
func RetryIn(d time.Duration, err error) error {
	return &retryDirective{err: err, delay: max(d, 0)}
}

// NoRetry returns err marked as final: the job is recorded as failed now,
// even if its policy would retry it.
func NoRetry(err error) error { return &retryDirective{err: err, never: true} }

// ExitError is the error of an external program that exited with a
// non-zero status (the Err of the JobError an --exec handler returns).
type ExitError struct {
	Code int
	// Msg is the status and the tail of the program's stderr.
	Msg string
}

func (e *ExitError) Error() string { return e.Msg }

// ExceptionRetryCount is recorded when the attempt counter could not be
// read or incremented (not an integer, say); the job was not run.
const ExceptionRetryCount = "Resq::RetryCountError"

// retryState is a job's retry bookkeeping for one run.
type retryState struct {
	policy  *RetryPolicy
	key     string // resque-retry:<class>[:<sha1>]
	attempt int    // 0 on the first run
}

// retryPolicy returns the policy for a handler, or nil when it has none
// that retries.
func (w *Worker) retryPolicy(h *handlerEntry) *RetryPolicy {
	p := h.opts.Retry
	if p == nil {
		if cp, ok := w.cfg.Retry.Classes[h.class]; ok {
			p = &cp
		} else {
			p = w.cfg.Retry.Default
		}
	}
	if p == nil || p.Limit == 0 {
		return nil
	}
	return p
}

// beginRetry counts the run of a job whose class has a retry policy (one
// round trip); it returns nil state for other classes, which cost nothing.
func (w *Worker) beginRetry(ctx context.Context, h *handlerEntry, p wire.Payload, args []byte) (*retryState, error) {
	pol := h.retry
	if pol == nil {
		return nil, nil
	}
	var id string
	var err error
	if p.Envelope.Enc != nil {
		// The args are secret: the key must not carry a hash of them
		// (a guessable argument would be found from it). Ruby cannot run
		// an encrypted job, so the job id stands in.
		id, err = wire.RetryIdentifier([]byte(`["id",`+wire.QuoteString(p.ID)+`]`), wire.HashInspectRuby33)
	} else {
		style := wire.HashInspectRuby33
		if w.cfg.Retry.Ruby34 {
			style = wire.HashInspectRuby34
		}
		id, err = wire.RetryIdentifier(args, style)
	}
	if err != nil {
		return nil, err
	}
	st := &retryState{policy: pol, key: w.store.Keys.RetryKey(p.Class, id)}
	var expire time.Duration
	if pol.ExpireKeyAfter > 0 {
		// The TTL must outlive the wait before the next run; the attempt
		// is not known yet, so take the longest wait the backoff can give.
		expire = pol.ExpireKeyAfter + maxDelay(pol.Backoff)
	}
	n, err := w.store.BeginAttempt(ctx, st.key, expire)
	if err != nil {
		return nil, err
	}
	st.attempt = int(n)
	return st, nil
}

func maxDelay(b Backoff) time.Duration {
	var d time.Duration
	if len(b.Delays) > 0 {
		d = slices.Max(b.Delays)
	} else if b.Max > 0 {
		d = b.Max
	} else {
		d = b.Delay(30)
	}
	return time.Duration(float64(d) * (1 + b.Jitter))
}

// retryable decides whether the failed run st may run again, and after how
// long.
func (st *retryState) retryable(err error, rnd float64) (time.Duration, bool) {
	p := st.policy
	var dir *retryDirective
	if errors.As(err, &dir) && dir.never {
		return 0, false
	}
	if p.Limit > 0 && st.attempt >= p.Limit {
		return 0, false
	}
	if dir != nil {
		return dir.delay, true
	}
	if !p.errorRetries(err) {
		return 0, false
	}
	return p.Backoff.jittered(st.attempt, rnd), true
}

func (p *RetryPolicy) errorRetries(err error) bool {
	for _, f := range p.Fatal {
		if errors.Is(err, f) {
			return false
		}
	}
	var xe *ExitError
	isExit := errors.As(err, &xe)
	if isExit && slices.Contains(p.FatalExitCodes, xe.Code) {
		return false
	}
	if len(p.RetryOn) > 0 || len(p.RetryExitCodes) > 0 {
		ok := isExit && slices.Contains(p.RetryExitCodes, xe.Code)
		for _, r := range p.RetryOn {
			ok = ok || errors.Is(err, r)
		}
		if !ok {
			return false
		}
	}
	if p.RetryIfFunc != nil {
		return p.RetryIfFunc(err)
	}
	return true
}

// planRetry returns the retry to write for a failed run, or nil to record
// the failure. failure is the encoded failure record of this run.
func (w *Worker) planRetry(st *retryState, runErr error, f wire.Fetched, p wire.Payload, failure []byte, now time.Time) (*wire.Retry, time.Duration) {
	delay, ok := st.retryable(runErr, rand.Float64())
	if !ok {
		return nil, 0
	}
	r := &wire.Retry{Queue: f.Queue}
	if delay <= 0 {
		r.Item = wire.RetryPayload(p)
	} else {
		r.TS = now.Add(delay).Unix()
		r.Item = wire.RetryItem(p, f.Queue)
		if !w.cfg.Retry.NoFailureKey {
			// MultipleWithRetrySuppression keeps it for twice the delay.
			r.FailureKey, r.Failure, r.FailureTTL = w.store.Keys.RetryFailureKey(st.key), failure, 2*delay
		}
	}
	return r, delay
}

// giveUpText is appended to the error of a job's last failure.
func (st *retryState) giveUpText() string {
	runs := st.attempt + 1
	if runs == 1 {
		return " (1 attempt, not retried)"
	}
	return " (gave up after " + strconv.Itoa(runs) + " attempts)"
}
