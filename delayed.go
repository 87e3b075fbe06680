package resq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// Delayed jobs live on resque-scheduler's keys (delayed_queue_schedule,
// delayed:<ts>, timestamps:<item>) in its item format, so Ruby's
// resque-scheduler API and web tab see resq's delayed jobs and Ruby's and
// node-resque's delayed jobs are moved by a resq Scheduler. See
// docs/protocol.md ("Delayed jobs").

// EnqueueAt delays a job of class on queue until at (Resque.enqueue_at_with_queue).
// The job goes through the same validation, limits, middleware, signing and
// encryption as Enqueue; a Scheduler moves it to queue when due. A time in
// the current second or before enqueues it now, as Ruby does. Due times are
// whole seconds (Ruby truncates; so does resq).
//
// An unsigned, unencrypted delayed job is stored exactly as Ruby stores it,
// {"class":…,"args":…,"queue":…}, so Ruby's remove_delayed finds it; such a
// job has no resq id (the returned ID is empty). A signed or encrypted job
// keeps its id and envelope fields.
func (c *Client) EnqueueAt(ctx context.Context, at time.Time, queue, class string, args ...any) (*Enqueued, error) {
	if at.IsZero() {
		return nil, errors.New("resq: EnqueueAt needs a time (a zero time.Time was given); use Enqueue to enqueue now")
	}
	return c.EnqueueWith(ctx, EnqueueParams{Queue: queue, Class: class, Args: args, At: at})
}

// EnqueueIn delays a job by d from now (Resque.enqueue_in_with_queue); see
// EnqueueAt. d <= 0 enqueues now.
func (c *Client) EnqueueIn(ctx context.Context, d time.Duration, queue, class string, args ...any) (*Enqueued, error) {
	return c.EnqueueAt(ctx, c.cfg.NowFunc().Add(d), queue, class, args...)
}

// prepareDelay marks a prepared job as delayed when at is after the
// current second. An unsigned, unencrypted delayed job loses resq's id and
// enqueue time, so its item is Ruby's byte for byte; a sealed one keeps its
// id, and its enqueue time becomes the due time, which the signature then
// covers: the replay window and job age count from when the job became
// runnable, and a copy of the job cannot be made due earlier.
func (c *Client) prepareDelay(job *Job, at time.Time) {
	if at.IsZero() || at.Unix() <= c.cfg.NowFunc().Unix() {
		return
	}
	job.at = time.Unix(at.Unix(), 0)
	if job.Encrypted || c.cfg.Keyring.CanSign() {
		job.EnqueuedAt = job.at
		return
	}
	job.ID, job.EnqueuedAt = "", time.Time{}
}

// encodeJob encodes a job's payload, or its delayed item when delayed.
func encodeJob(job *Job, np wire.NewPayload) []byte {
	if job.at.IsZero() {
		return np.Encode()
	}
	if np.ID == "" && np.EnqueuedAt.IsZero() && np.Envelope.Sig == nil && np.Envelope.Enc == nil {
		return wire.RubyDelayedItem(np.Class, np.Args, job.Queue)
	}
	return np.EncodeDelayed(job.Queue)
}

// pushDelayed stores one encoded delayed job.
func (c *Client) pushDelayed(ctx context.Context, job *Job) error {
	if err := c.store.PushDelayed(ctx, []wire.DelayedPush{{TS: job.at.Unix(), Item: job.payload}})[0]; err != nil {
		return err
	}
	if c.logger.Enabled(ctx, slog.LevelDebug) { // the attributes would be built on every call
		c.logger.Debug("job delayed", "job_id", job.ID, "class", job.Class, "queue", job.Queue, "due", job.at.Unix(), "bytes", len(job.payload))
	}
	return nil
}

// pushPending writes a batch's encoded jobs: the immediate ones in one
// pipeline, the delayed ones in atomic steps of up to 500.
func (c *Client) pushPending(ctx context.Context, jobs []*Job) []error {
	errs := make([]error, len(jobs))
	var now []wire.QueuedPayload
	var later []wire.DelayedPush
	var nowIdx, laterIdx []int
	for i, j := range jobs {
		if j.at.IsZero() {
			now, nowIdx = append(now, wire.QueuedPayload{Queue: j.Queue, Payload: j.payload}), append(nowIdx, i)
		} else {
			later, laterIdx = append(later, wire.DelayedPush{TS: j.at.Unix(), Item: j.payload}), append(laterIdx, i)
		}
	}
	if len(now) > 0 {
		for k, err := range c.store.PushMany(ctx, now) {
			errs[nowIdx[k]] = err
		}
	}
	if len(later) > 0 {
		for k, err := range c.store.PushDelayed(ctx, later) {
			errs[laterIdx[k]] = err
		}
	}
	return errs
}

// RemoveDelayed removes the delayed jobs of class on queue with exactly
// args, as Ruby's remove_delayed_in_queue does: the item is rebuilt in
// Ruby's format and found through its timestamps:<item> index (also in
// node-resque's key order). Jobs this Client signed or encrypted carry
// extra fields; for them it searches the delayed queue for class and args
// equal as JSON. It returns the number removed.
func (c *Client) RemoveDelayed(ctx context.Context, queue, class string, args ...any) (int64, error) {
	if err := checkNames(queue, class); err != nil {
		return 0, err
	}
	raw, err := wire.MarshalArgs(args)
	if err != nil {
		return 0, fmt.Errorf("remove delayed %s: %w", class, err)
	}
	n, err := c.store.RemoveDelayed(ctx, wire.RubyDelayedItem(class, raw, queue))
	if err != nil {
		return n, err
	}
	node := []byte(`{"class":` + wire.QuoteString(class) + `,"queue":` + wire.QuoteString(queue) + `,"args":` + string(raw) + `}`)
	m, err := c.store.RemoveDelayed(ctx, node)
	n += m
	if err != nil || !(c.cfg.Keyring.CanSign() || c.cfg.EncryptAll) {
		return n, err
	}
	m, err = removeDelayedMatching(ctx, c.store, DelayedFilter{Queue: queue, Class: class, Args: raw})
	return n + m, err
}

// DelayedFilter selects delayed jobs. Zero fields match everything.
type DelayedFilter struct {
	// From and To bound the due time (inclusive).
	From, To time.Time
	Queue    string
	Class    string
	// Args, when not nil, must equal the job's args as JSON values
	// (encrypted args never match).
	Args json.RawMessage
	// ID matches resq's job id (signed or encrypted jobs only).
	ID string
}

func (f DelayedFilter) bounds() (int64, int64) {
	from, to := int64(-1<<62), int64(1<<62)
	if !f.From.IsZero() {
		from = f.From.Unix()
	}
	if !f.To.IsZero() {
		to = f.To.Unix()
	}
	return from, to
}

func (f DelayedFilter) matcher() func(raw []byte) bool {
	if f.Queue == "" && f.Class == "" && f.Args == nil && f.ID == "" {
		return nil
	}
	var want any
	if f.Args != nil {
		want = normalizeJSON(f.Args)
	}
	return func(raw []byte) bool {
		d := wire.DecodeDelayed(raw)
		if d.Err != nil {
			return false
		}
		if f.Class != "" && d.Class != f.Class || f.Queue != "" && d.Queue != f.Queue {
			return false
		}
		if f.ID == "" && want == nil {
			return true
		}
		p, err := wire.DecodePayload(d.Payload)
		if err != nil || f.ID != "" && p.ID != f.ID {
			return false
		}
		return want == nil || p.Envelope.Enc == nil && jsonEqual(normalizeJSON(p.Args), want)
	}
}

// DelayedView is one delayed job as shown to people (args redacted).
type DelayedView struct {
	At    time.Time `json:"at"`
	Queue string    `json:"queue"`
	Job   JobView   `json:"job"`
	// Item is the stored item, for RemoveDelayedItem and EnqueueDelayedItem.
	Item []byte `json:"-"`
}

// DelayedStats counts the delayed queue.
type DelayedStats struct {
	Timestamps int64 `json:"timestamps"` // Ruby's delayed_queue_schedule_size
	Jobs       int64 `json:"jobs"`       // Ruby's count_all_scheduled_jobs
}

// DelayedCount counts the delayed timestamps and jobs.
func (a *Admin) DelayedCount(ctx context.Context) (DelayedStats, error) {
	ts, jobs, err := a.store.DelayedCounts(ctx)
	return DelayedStats{Timestamps: ts, Jobs: jobs}, err
}

// DelayedTimestamp is one due second and how many jobs it holds.
type DelayedTimestamp struct {
	At   time.Time `json:"at"`
	Jobs int64     `json:"jobs"`
}

// DelayedTimestamps lists due seconds in f's time range (f's other fields
// are ignored), skipping offset and returning at most limit (all when
// limit < 0).
func (a *Admin) DelayedTimestamps(ctx context.Context, f DelayedFilter, offset, limit int) ([]DelayedTimestamp, error) {
	from, to := f.bounds()
	tss, err := a.store.DelayedTimestamps(ctx, from, to, int64(offset), int64(limit))
	if err != nil {
		return nil, err
	}
	out := make([]DelayedTimestamp, len(tss))
	for i, t := range tss {
		out[i] = DelayedTimestamp{At: time.Unix(t.TS, 0), Jobs: t.Count}
	}
	return out, nil
}

// Delayed lists the delayed jobs f selects, in due order, skipping offset
// and returning at most limit (all when limit < 0).
func (a *Admin) Delayed(ctx context.Context, f DelayedFilter, offset, limit int) ([]DelayedView, error) {
	from, to := f.bounds()
	es, err := a.store.DelayedRange(ctx, from, to, offset, limit, f.matcher())
	if err != nil {
		return nil, err
	}
	red, err := a.Redactor(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]DelayedView, len(es))
	for i, e := range es {
		d := wire.DecodeDelayed(e.Raw)
		v := DelayedView{At: time.Unix(e.TS, 0), Queue: d.Queue, Item: e.Raw}
		if d.Err != nil {
			v.Job = JobView{Invalid: d.Err.Error(), Raw: string(e.Raw), Args: json.RawMessage("[]")}
		} else {
			v.Job = viewOf(d.Payload, red)
		}
		out[i] = v
	}
	return out, nil
}

// RemoveDelayed removes every delayed job f selects (the stored bytes are
// reused, so any producer's formatting matches). It returns the number
// removed.
func (a *Admin) RemoveDelayed(ctx context.Context, f DelayedFilter) (int64, error) {
	return removeDelayedMatching(ctx, a.store, f)
}

func removeDelayedMatching(ctx context.Context, store *wire.Store, f DelayedFilter) (int64, error) {
	from, to := f.bounds()
	es, err := store.DelayedRange(ctx, from, to, 0, -1, f.matcher())
	if err != nil {
		return 0, err
	}
	var n int64
	done := map[string]bool{}
	for _, e := range es {
		k := fmt.Sprint(e.TS, "\x00", string(e.Raw))
		if done[k] {
			continue // RemoveDelayedAt removed every copy at that second
		}
		done[k] = true
		m, err := store.RemoveDelayedAt(ctx, e.TS, e.Raw)
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// EnqueueDelayedNow moves every delayed job f selects to its queue now
// (resque-scheduler's "Queue now"), each atomically: a job the Scheduler
// moves at the same moment is enqueued once. classQueues gives the queue of
// items stored without one (else they become failure records). It returns
// the number moved.
func (a *Admin) EnqueueDelayedNow(ctx context.Context, f DelayedFilter, classQueues map[string]string) (int, error) {
	from, to := f.bounds()
	es, err := a.store.DelayedRange(ctx, from, to, 0, -1, f.matcher())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range es {
		ok, err := a.store.EnqueueDelayedNow(ctx, e.TS, e.Raw, wire.MoveOptions{ClassQueues: classQueues, Worker: "resq-admin", Now: time.Now()})
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}
