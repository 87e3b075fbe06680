package resq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"reflect"
	"sync"
	"time"

	"github.com/resq-go/resq/internal/envelope"
	"github.com/resq-go/resq/internal/wire"
)

// EnqueueFunc pushes one job; the innermost one writes to Redis.
type EnqueueFunc func(ctx context.Context, job *Job) error

// EnqueueMiddleware wraps enqueueing, the Go shape of before_enqueue and
// after_enqueue hooks: return ErrDontEnqueue to veto the push.
type EnqueueMiddleware func(next EnqueueFunc) EnqueueFunc

// ClientConfig configures a Client.
type ClientConfig struct {
	// Middleware wraps every enqueue, outermost first.
	Middleware []EnqueueMiddleware
	// QueueCaps limits queue lengths: Enqueue refuses with ErrQueueFull when
	// the named queue already holds that many jobs. Empty: no caps.
	QueueCaps map[string]int64
	// Limits bound payloads; Enqueue refuses larger or deeper ones. Zero
	// fields take the defaults (512 KiB, depth 32, 256 args).
	Limits Limits
	// Keyring signs every job when it has a signing key, and encrypts the
	// args of jobs enqueued with Encrypt (or of every job, with EncryptAll).
	Keyring *Keyring
	// EncryptAll encrypts the args of every job. It needs a Keyring with an
	// encryption key.
	EncryptAll bool
	// Logger receives enqueue events. Default: the Conn's logger.
	Logger *slog.Logger
	// NowFunc is the clock that stamps enqueued_at (for tests). Default
	// time.Now.
	NowFunc func() time.Time
}

// Client enqueues and removes jobs. It is safe for concurrent use.
type Client struct {
	conn   *Conn
	store  *wire.Store
	cfg    ClientConfig
	push   EnqueueFunc
	group  *pushGroup // concurrent Enqueue calls share pipelines
	logger *slog.Logger

	secrets     secretRegistry
	secretTypes sync.Map // reflect.Type → []string
}

// NewClient returns a Client on conn. It refuses a nil conn, a nil
// middleware, and EncryptAll without a Keyring that has an encryption key,
// as NewWorker refuses a config it cannot run.
func NewClient(conn *Conn, cfg ClientConfig) (*Client, error) {
	if conn == nil {
		return nil, errors.New("resq.NewClient: conn is nil (open one with resq.Open)")
	}
	for i, m := range cfg.Middleware {
		if m == nil {
			return nil, fmt.Errorf("resq.NewClient: middleware %d is nil", i)
		}
	}
	if cfg.EncryptAll && !cfg.Keyring.CanEncrypt() {
		return nil, errors.New("resq.NewClient: EncryptAll needs a Keyring with an encryption key (make one with: resq keys new --out FILE)")
	}
	if cfg.Logger == nil {
		cfg.Logger = conn.logger
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	c := &Client{conn: conn, store: conn.store, cfg: cfg, logger: cfg.Logger, group: &pushGroup{store: conn.store}}
	push := c.write
	for i := len(cfg.Middleware) - 1; i >= 0; i-- {
		push = cfg.Middleware[i](push)
	}
	c.push = push
	return c, nil
}

// Enqueued describes a job that reached Redis.
type Enqueued struct {
	ID    string
	Class string
	Queue string
	Size  int // payload bytes
}

// Enqueue pushes a job of class onto queue with args, as Resque.enqueue_to
// does: each arg becomes one element of the job's args array. Args that
// implement Validator are validated first. The returned error is non-nil
// whenever the job did not reach Redis; it matches ErrPayloadLimit when the
// job is over a Limits bound, ErrInvalidArgs when an argument is refused and
// ErrQueueFull when a capped queue is full. With ConnConfig.ReplicaAcks it
// matches ErrNotReplicated when the master stored the job but its replicas
// did not confirm it in time.
//
// Enqueue is the common case. For anything else (args already encoded as
// JSON, encryption of one job) use EnqueueWith; for many jobs at once,
// EnqueueBatch.
func (c *Client) Enqueue(ctx context.Context, queue, class string, args ...any) (*Enqueued, error) {
	return c.EnqueueWith(ctx, EnqueueParams{Queue: queue, Class: class, Args: args})
}

// EnqueueParams describes one job for EnqueueWith and EnqueueBatch.
type EnqueueParams struct {
	Queue, Class string
	// Args become the elements of the job's args array (validated if they
	// implement Validator). Ignored when RawArgs is set.
	Args []any
	// RawArgs is the args array already encoded as JSON (it must be a JSON
	// array); it replaces Args.
	RawArgs json.RawMessage
	// Encrypt encrypts the args with the Keyring's encryption primary.
	Encrypt bool
	// At, when after the current second, delays the job until then: it
	// goes to resque-scheduler's delayed queue and a Scheduler moves it to
	// Queue when due (see EnqueueAt). Zero or past: enqueue now.
	At time.Time
	// ActiveJob enqueues the job as Rails' Resque adapter does, for a Rails
	// worker (or a resq worker) to run as an ActiveJob of class Class: the
	// payload's class is ActiveJobWrapperClass and its one argument
	// ActiveJob's serialized job hash (Rails 7.1+ keys, a new UUID job_id,
	// the Client's clock in enqueued_at), whose arguments are Args (or
	// RawArgs) serialized as ActiveJob::Arguments does: objects get
	// "_aj_symbol_keys":[], keys ActiveJob reserves are refused. Unsigned, the
	// payload is byte for byte what Rails writes; a signing Keyring adds
	// resq's fields, which Ruby ignores. Encryption is refused: Rails cannot
	// decrypt. Enqueued.ID is the job_id. With At, the job is delayed as
	// Rails' set(wait_until:) delays it: scheduled_at holds At.
	ActiveJob bool
}

// EnqueueWith pushes one job described by p; it returns what Enqueue
// returns.
func (c *Client) EnqueueWith(ctx context.Context, p EnqueueParams) (*Enqueued, error) {
	job, err := c.prepare(ctx, p)
	if err != nil {
		return nil, err
	}
	if err := c.push(ctx, job); err != nil {
		if errors.Is(err, ErrDontEnqueue) {
			return nil, err
		}
		return nil, fmt.Errorf("enqueue %s to queue %s: %w", job.Class, job.Queue, err)
	}
	return &Enqueued{ID: job.ID, Class: job.Class, Queue: job.Queue, Size: len(job.payload)}, nil
}

// prepare validates and encodes a job's arguments and checks the limits.
func (c *Client) prepare(ctx context.Context, p EnqueueParams) (*Job, error) {
	now := c.cfg.NowFunc()
	var activeJobID string
	if p.ActiveJob { // becomes a JobWrapper job with RawArgs (activejob.go)
		var err error
		if p, activeJobID, err = c.activeJobParams(ctx, p, now); err != nil {
			return nil, err
		}
	}
	queue, class := p.Queue, p.Class
	if err := checkNames(queue, class); err != nil {
		return nil, err
	}
	args := p.RawArgs
	if args == nil {
		for i, a := range p.Args {
			if err := validate(a); err != nil {
				return nil, fmt.Errorf("enqueue %s to queue %s: argument %d: %w: %v", class, queue, i, ErrInvalidArgs, err)
			}
		}
		raw, err := wire.MarshalArgs(p.Args)
		if err != nil {
			return nil, fmt.Errorf("enqueue %s to queue %s: arguments cannot be encoded as JSON: %w", class, queue, err)
		}
		args = raw
		if err := c.registerSecrets(ctx, class, p.Args); err != nil {
			return nil, fmt.Errorf("enqueue %s to queue %s: %w", class, queue, err)
		}
	}
	lim := c.cfg.Limits.envelope()
	if err := lim.CheckSize(len(args)); err != nil {
		return nil, fmt.Errorf("enqueue %s to queue %s: %w", class, queue, err)
	}
	encrypt := p.Encrypt || c.cfg.EncryptAll
	// What a resq worker refuses when it decodes the job (duplicate keys,
	// nesting, arity), refused here with the worker's message, before
	// middleware and Redis see the job.
	if _, err := wire.CheckArgs(args, lim, encrypt); err != nil {
		var pe *wire.PayloadError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("enqueue %s to queue %s: %w: %v; every worker would refuse the job", class, queue, ErrInvalidArgs, err)
		}
		return nil, fmt.Errorf("enqueue %s to queue %s: %w", class, queue, err)
	}
	if encrypt && !c.cfg.Keyring.CanEncrypt() {
		return nil, fmt.Errorf("enqueue %s to queue %s: encryption requested but the client has no keyring with an encryption key (make one with: resq keys new --out FILE)", class, queue)
	}
	job := &Job{ID: envelope.NewID(), Class: class, Queue: queue, Args: args, EnqueuedAt: now, Encrypted: encrypt}
	c.prepareDelay(job, p.At)
	if activeJobID != "" { // after prepareDelay, which clears the id of an unsigned delayed job
		job.ID, job.railsShape = activeJobID, true
	}
	return job, nil
}

// BatchResult is the outcome of one job of EnqueueBatch.
type BatchResult struct {
	Job *Enqueued // set when the job reached Redis
	Err error     // why it did not (ErrDontEnqueue when middleware vetoed it)
}

// EnqueueBatch pushes many jobs in one pipelined round trip and checks every
// reply; each job goes through validation, limits, signing and middleware as
// with EnqueueWith. The returned slice has one result per job, in order; the
// error is non-nil when any job was not enqueued, and wraps the first
// job's error. Jobs for capped queues
// (ClientConfig.QueueCaps) are pushed one at a time. Enqueue middleware runs
// per job before the batch is written, so code after next() in a middleware
// sees the job accepted into the batch, not yet in Redis.
func (c *Client) EnqueueBatch(ctx context.Context, jobs []EnqueueParams) ([]BatchResult, error) {
	out := make([]BatchResult, len(jobs))
	var pending []*Job
	var idx []int
	var current int
	collect := EnqueueFunc(func(ctx context.Context, job *Job) error {
		if err := c.encode(job); err != nil {
			return err
		}
		if limit, ok := c.cfg.QueueCaps[job.Queue]; ok && limit > 0 && job.at.IsZero() {
			return c.pushOne(ctx, job)
		}
		pending = append(pending, job)
		idx = append(idx, current)
		return nil
	})
	for i := len(c.cfg.Middleware) - 1; i >= 0; i-- {
		collect = c.cfg.Middleware[i](collect)
	}
	failed := 0
	for i, p := range jobs {
		current = i
		job, err := c.prepare(ctx, p)
		if err == nil {
			n := len(pending)
			err = collect(ctx, job)
			if err == nil && len(pending) == n { // pushed on its own (capped queue)
				out[i].Job = &Enqueued{ID: job.ID, Class: job.Class, Queue: job.Queue, Size: len(job.payload)}
			}
		}
		if err != nil {
			out[i].Err = err
			failed++
		}
	}
	if len(pending) > 0 {
		errs := c.pushPending(ctx, pending)
		for k, j := range pending {
			i := idx[k]
			if errs[k] != nil {
				out[i].Err = fmt.Errorf("enqueue %s to queue %s: %w", j.Class, j.Queue, errs[k])
				failed++
				continue
			}
			out[i].Job = &Enqueued{ID: j.ID, Class: j.Class, Queue: j.Queue, Size: len(j.payload)}
		}
	}
	if failed > 0 {
		var first error
		for _, r := range out {
			if r.Err != nil {
				first = r.Err
				break
			}
		}
		return out, fmt.Errorf("enqueue batch: %d of %d jobs not enqueued (see the results); the first: %w", failed, len(jobs), first)
	}
	return out, nil
}

// write is the innermost EnqueueFunc: seal, encode, check and push.
func (c *Client) write(ctx context.Context, job *Job) error {
	if err := c.encode(job); err != nil {
		return err
	}
	return c.pushOne(ctx, job)
}

// encode seals (signs, encrypts) and encodes a job's payload, then checks its
// size.
func (c *Client) encode(job *Job) error {
	np := wire.NewPayload{Class: job.Class, Args: job.Args, ID: job.ID, EnqueuedAt: job.EnqueuedAt, Metadata: job.Metadata}
	k := c.cfg.Keyring.envelope()
	if job.railsShape && !job.Encrypted && !k.CanSign() {
		np.ID, np.EnqueuedAt = "", time.Time{} // Rails' exact bytes: {"class":…,"args":…}
	}
	if job.Encrypted || k.CanSign() {
		sealed, err := k.Seal(np.Meta(job.Queue), job.Args, job.Encrypted)
		if err != nil {
			return err
		}
		np.Args, np.Envelope = sealed.Args, sealed.Envelope
	}
	job.payload = encodeJob(job, np)
	return c.cfg.Limits.envelope().CheckSize(len(job.payload))
}

// pushOne writes one encoded job to Redis.
func (c *Client) pushOne(ctx context.Context, job *Job) error {
	if !job.at.IsZero() {
		return c.pushDelayed(ctx, job)
	}
	if limit, ok := c.cfg.QueueCaps[job.Queue]; ok && limit > 0 {
		n, pushed, err := c.store.PushCapped(ctx, job.Queue, job.payload, limit)
		if err != nil {
			return err
		}
		if !pushed {
			return fmt.Errorf("%w: queue %s holds %d jobs, its cap is %d; retry later or raise the cap", ErrQueueFull, job.Queue, n, limit)
		}
	} else if err := c.group.push(ctx, job.Queue, job.payload); err != nil {
		return err
	}
	if c.logger.Enabled(ctx, slog.LevelDebug) { // the attributes would be built on every call
		c.logger.Debug("job enqueued", "job_id", job.ID, "class", job.Class, "queue", job.Queue, "bytes", len(job.payload))
	}
	return nil
}

// Dequeue removes queued jobs of class from queue, like Resque.dequeue. With
// no args every job of the class goes; with args only jobs whose arguments
// are equal as JSON values (whatever their formatting or extra payload
// fields, unlike Ruby's byte comparison). It returns the number removed.
func (c *Client) Dequeue(ctx context.Context, queue, class string, args ...any) (int64, error) {
	if err := checkNames(queue, class); err != nil {
		return 0, err
	}
	var want any
	if len(args) > 0 {
		raw, err := wire.MarshalArgs(args)
		if err != nil {
			return 0, fmt.Errorf("dequeue %s from %s: %w", class, queue, err)
		}
		want = normalizeJSON(raw)
	}
	return c.store.RemoveMatching(ctx, queue, func(raw []byte) bool {
		p, err := wire.DecodePayload(raw)
		if err != nil || p.Class != class {
			return false
		}
		return want == nil || jsonEqual(normalizeJSON(p.Args), want)
	})
}

func checkNames(queue, class string) error {
	if queue == "" {
		return errors.New("resq: no queue given (Resque::NoQueueError)")
	}
	if class == "" {
		return errors.New("resq: no job class given (Resque::NoClassError)")
	}
	return nil
}

func normalizeJSON(raw []byte) any {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil
	}
	return v
}

func jsonEqual(a, b any) bool {
	switch x := a.(type) {
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if x == y {
			return true
		}
		bx, ok1 := new(big.Rat).SetString(string(x))
		by, ok2 := new(big.Rat).SetString(string(y))
		return ok1 && ok2 && bx.Cmp(by) == 0
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !jsonEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			yv, ok := y[k]
			if !ok || !jsonEqual(v, yv) {
				return false
			}
		}
		return true
	default:
		return a == b
	}
}

// registerSecrets records the `resq:"secret"` fields of the args' types for
// class, once per class and process.
func (c *Client) registerSecrets(ctx context.Context, class string, args []any) error {
	var fields []string
	for _, a := range args {
		if a == nil {
			continue
		}
		t := reflect.TypeOf(a)
		v, ok := c.secretTypes.Load(t)
		if !ok {
			v, _ = c.secretTypes.LoadOrStore(t, secretFieldsOf(t))
		}
		fields = append(fields, v.([]string)...)
	}
	return c.secrets.register(ctx, c.store, class, fields)
}
