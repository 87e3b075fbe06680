package resq

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// HandlerFunc runs one job.
type HandlerFunc func(ctx context.Context, job *Job) error

// Middleware wraps job execution, the Go shape of Resque's perform hooks:
// code before next is before_perform (return ErrDontPerform to skip the job),
// around next is around_perform, after it is after_perform, and inspecting
// next's error is on_failure.
type Middleware func(next HandlerFunc) HandlerFunc

// Validator is implemented by argument types that check themselves. Validate
// runs when a Client enqueues the value and again before the handler runs.
type Validator interface {
	Validate() error
}

// HandlerOptions are per-class settings.
type HandlerOptions struct {
	// Timeout bounds one run of the handler (its context is cancelled).
	// Zero means WorkerConfig.JobTimeout.
	Timeout time.Duration
	// AllowUnknownFields accepts argument objects with fields the type does
	// not declare. By default they are refused.
	AllowUnknownFields bool
	// Isolation runs the handler InProcess (default) or in a warm
	// ChildProcess that can be killed (see ChildProcess).
	Isolation Isolation
	// Limits bound a ChildProcess handler's child (ignored in process).
	Limits ChildLimits
	// Retry, when set, is this class's retry policy, over
	// WorkerConfig.Retry (see RetryPolicy).
	Retry *RetryPolicy
}

type handlerEntry struct {
	class   string
	secrets []string // JSON names of `resq:"secret"` fields of the args type
	fn      HandlerFunc
	opts    HandlerOptions
	command bool // runs an external command: the timeout is enforced by a kill
	// retry is the class's retry policy (Worker.retryPolicy), resolved once
	// when Run starts; nil when the class is not retried.
	retry *RetryPolicy
}

// Handle registers fn for jobs of class. The job's args array is decoded into
// T: when T is a slice or array type, the whole args array is decoded into
// it; otherwise the array must hold exactly one element (a JSON object for a
// struct) which is decoded into T. Unknown fields and type mismatches are
// refused; if T (or *T) implements Validator, Validate runs before fn.
//
// Handle must be called before Run. Registering a class twice replaces it.
func Handle[T any](w *Worker, class string, fn func(ctx context.Context, args T) error, opts ...HandlerOptions) {
	var o HandlerOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	decoders := &sync.Pool{} // *argDecoder, reused across this class's jobs
	w.register(&handlerEntry{class: class, opts: o, secrets: secretFieldsOf(reflect.TypeFor[T]()), fn: func(ctx context.Context, job *Job) error {
		v, err := decodeArgsWith[T](decoders, job.Args, job.argElems(), o.AllowUnknownFields)
		if err != nil {
			return err
		}
		return fn(ctx, v)
	}})
}

// HandleFunc registers a handler that receives the raw job.
func (w *Worker) HandleFunc(class string, fn HandlerFunc, opts ...HandlerOptions) {
	var o HandlerOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	w.register(&handlerEntry{class: class, fn: fn, opts: o})
}

// Command runs a job as an external program (resq work --exec).
type Command struct {
	// Path of the executable. It is run directly, never through a shell.
	Path string
	// Args are passed after the program name.
	Args []string
	// Timeout kills the process group (SIGTERM, then SIGKILL after 2 s).
	// Zero means WorkerConfig.JobTimeout.
	Timeout time.Duration
	// MaxOutput is how many bytes of stdout and of stderr are kept. Default 64 KiB.
	MaxOutput int
	// Limits are hard limits on the program's process tree (memory, CPU
	// time, processes, open files, output); see ChildLimits.
	Limits ChildLimits
}

// HandleCommand registers an external program as the handler of class. The
// job's args (the JSON array) are written to its stdin; RESQ_JOB_CLASS,
// RESQ_JOB_QUEUE and RESQ_JOB_ID are set in its environment. Exit status 0
// is success; any other exit is a failure whose message is the tail of its
// stderr.
func (w *Worker) HandleCommand(class string, c Command) {
	w.register(&handlerEntry{class: class, command: true, opts: HandlerOptions{Timeout: c.Timeout, Limits: c.Limits},
		fn: func(ctx context.Context, job *Job) error { return w.runCommand(ctx, job, c) }})
}

// DecodeArgs decodes a Resque args array into T with the rules of Handle.
func DecodeArgs[T any](args json.RawMessage, allowUnknown bool) (T, error) {
	return decodeArgs[T](args, nil, allowUnknown)
}

// decodeArgs is DecodeArgs with args's elements when they are already split
// (nil: split them here).
func decodeArgs[T any](args json.RawMessage, elems []json.RawMessage, allowUnknown bool) (T, error) {
	return decodeArgsWith[T](nil, args, elems, allowUnknown)
}

// argDecoder is a json.Decoder with the reader it reads from, kept in a
// Handle's pool: a job's args are one JSON value, and a Decoder that has
// read one value to its end decodes the next from a reset reader as if it
// were the next value of a stream, without a new Decoder, reader and
// buffer per job.
type argDecoder struct {
	r   bytes.Reader
	dec *json.Decoder
}

// maxPooledArgs is the largest args value whose decoder goes back to the
// pool (its buffer grows to the value's size and stays that large).
const maxPooledArgs = 64 << 10

// decodeArgsWith is decodeArgs with decoders from pool (nil: a new one).
func decodeArgsWith[T any](pool *sync.Pool, args json.RawMessage, elems []json.RawMessage, allowUnknown bool) (T, error) {
	var v T
	t := reflect.TypeFor[T]()
	src := []byte(args)
	if len(bytes.TrimSpace(src)) == 0 {
		src = []byte("[]")
	}
	if k := t.Kind(); k != reflect.Slice && k != reflect.Array {
		if elems == nil {
			var err error
			if elems, err = wire.SplitArray(src, wire.DefaultDecodeDepth); err != nil {
				return v, fmt.Errorf("%w: args are not a JSON array: %v", ErrInvalidArgs, err)
			}
		}
		if len(elems) != 1 {
			return v, fmt.Errorf("%w: expected 1 argument (%s), got %d", ErrInvalidArgs, t, len(elems))
		}
		src = elems[0]
	}
	var ad *argDecoder
	if pool != nil {
		ad, _ = pool.Get().(*argDecoder)
	}
	if ad == nil {
		ad = &argDecoder{}
		ad.dec = json.NewDecoder(&ad.r)
		ad.dec.UseNumber()
		if !allowUnknown {
			ad.dec.DisallowUnknownFields()
		}
	}
	ad.r.Reset(src)
	if err := ad.dec.Decode(&v); err != nil {
		return v, fmt.Errorf("%w: %s", ErrInvalidArgs, describeDecodeError(err, t))
	}
	if ad.dec.More() {
		return v, fmt.Errorf("%w: trailing data after the arguments", ErrInvalidArgs)
	}
	// Only a decoder that read its value to the end goes back (one that
	// failed may hold an error or unread bytes).
	if pool != nil && len(src) <= maxPooledArgs {
		pool.Put(ad)
	}
	if err := validate(&v); err != nil {
		return v, fmt.Errorf("%w: %v", ErrInvalidArgs, err)
	}
	return v, nil
}

func validate(v any) error {
	if val, ok := v.(Validator); ok {
		return val.Validate()
	}
	if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer && !rv.IsNil() {
		if val, ok := rv.Elem().Interface().(Validator); ok {
			return val.Validate()
		}
	}
	return nil
}

// describeDecodeError says what was wrong without echoing argument values.
func describeDecodeError(err error, t reflect.Type) string {
	var typ *json.UnmarshalTypeError
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "(value)"
		}
		return fmt.Sprintf("field %s: JSON %s cannot be decoded into %s", field, typ.Value, typ.Type)
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d", syn.Offset)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return "unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ") + " for " + t.String()
	default:
		return err.Error()
	}
}

func lastBytes(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func tailLines(b []byte, n int) []string {
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func roundDur(d time.Duration) time.Duration {
	if d > time.Second {
		return d.Round(time.Millisecond)
	}
	return d
}
