package resq

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// Errors of failure-list operations.
var (
	// ErrNoFailure: no failure record at that index.
	ErrNoFailure = wire.ErrNoFailure
	// ErrFailureChanged: the list changed during the operation; list again.
	ErrFailureChanged = wire.ErrFailureChanged
)

// Admin inspects and manages queues, failures, workers and stats. The CLI
// and the dashboard use it; it never writes a key by hand.
type Admin struct {
	conn  *Conn
	store *wire.Store
}

// NewAdmin returns an Admin on conn.
func NewAdmin(conn *Conn) *Admin { return &Admin{conn: conn, store: conn.store} }

// QueueInfo is one queue and its length.
type QueueInfo struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Queues lists every queue in the queues set, sorted by name, with sizes.
func (a *Admin) Queues(ctx context.Context) ([]QueueInfo, error) {
	names, err := a.store.QueueNames(ctx)
	if err != nil {
		return nil, err
	}
	sizes, err := a.store.QueueSizes(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make([]QueueInfo, len(names))
	for i, n := range names {
		out[i] = QueueInfo{Name: n, Size: sizes[i]}
	}
	return out, nil
}

// QueueSize is the number of jobs waiting in queue.
func (a *Admin) QueueSize(ctx context.Context, queue string) (int64, error) {
	return a.store.QueueSize(ctx, queue)
}

// JobView is a queued, running or failed job as shown to people. Args are
// redacted: secret fields hold Redacted and encrypted args are EncryptedArgs.
type JobView struct {
	Class      string          `json:"class"`
	Args       json.RawMessage `json:"args"`
	Encrypted  bool            `json:"encrypted,omitempty"`
	Signed     bool            `json:"signed,omitempty"` // carries a signature (not verified here)
	ID         string          `json:"id,omitempty"`     // resq's id; for an ActiveJob job without one, its job_id
	EnqueuedAt *time.Time      `json:"enqueued_at,omitempty"`
	// Invalid is set when the payload is not a usable job; Raw then holds it.
	Invalid string `json:"invalid,omitempty"`
	Raw     string `json:"raw,omitempty"`
}

func viewOf(raw []byte, r *Redactor) JobView {
	p, err := wire.DecodePayload(raw)
	if err != nil {
		if orig, ok := wire.RawOfInvalid(raw); ok {
			return JobView{Invalid: "not a JSON job object", Raw: string(orig), Args: json.RawMessage("[]")}
		}
		// An unusable payload that carries ciphertext still says so, so
		// that no one shows its args.
		return JobView{Class: p.Class, Invalid: err.Error(), Raw: string(raw), Args: json.RawMessage("[]"),
			Encrypted: wire.CarriesCiphertext(raw)}
	}
	v := JobView{Class: p.Class, Args: r.Args(p.Class, p.Args), ID: p.ID, Signed: p.Envelope.Sig != nil}
	if v.ID == "" && p.Class == ActiveJobWrapperClass && p.Envelope.Enc == nil {
		_, v.ID = wire.PeekActiveJob(p.Args) // Rails' jobs are known by their ActiveJob job_id
	}
	if p.Envelope.Enc != nil {
		v.Encrypted, v.Args = true, json.RawMessage(`"`+EncryptedArgs+`"`)
	}
	if !p.EnqueuedAt.IsZero() {
		t := p.EnqueuedAt
		v.EnqueuedAt = &t
	}
	return v
}

// Peek returns count jobs of queue starting at start (0 is the next to run).
func (a *Admin) Peek(ctx context.Context, queue string, start, count int64) ([]JobView, error) {
	raws, err := a.store.QueueRange(ctx, queue, start, count)
	if err != nil {
		return nil, err
	}
	red, err := a.Redactor(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]JobView, len(raws))
	for i, r := range raws {
		out[i] = viewOf(r, red)
	}
	return out, nil
}

// ClearQueue deletes every job waiting in queue and keeps the queue listed.
func (a *Admin) ClearQueue(ctx context.Context, queue string) (int64, error) {
	return a.store.ClearQueue(ctx, queue)
}

// RemoveQueue deletes the queue and its jobs (Resque.remove_queue).
func (a *Admin) RemoveQueue(ctx context.Context, queue string) error {
	return a.store.RemoveQueue(ctx, queue)
}

// FailureView is one failure record.
type FailureView struct {
	Index     int64     `json:"index"`
	FailedAt  string    `json:"failed_at"`
	Time      time.Time `json:"-"`
	Job       JobView   `json:"job"`
	Exception string    `json:"exception"`
	Error     string    `json:"error"`
	Backtrace []string  `json:"backtrace"`
	Worker    string    `json:"worker"`
	Queue     string    `json:"queue"`
	RetriedAt string    `json:"retried_at,omitempty"`
	// Unparsable is set when the record is not valid JSON.
	Unparsable bool   `json:"unparsable,omitempty"`
	Raw        []byte `json:"-"`
}

// FailureCount is the length of the failed list.
func (a *Admin) FailureCount(ctx context.Context) (int64, error) { return a.store.FailedCount(ctx) }

// Failures returns count failure records from index start (0 is the oldest).
func (a *Admin) Failures(ctx context.Context, start, count int64) ([]FailureView, error) {
	recs, err := a.store.FailedRange(ctx, start, count)
	if err != nil {
		return nil, err
	}
	red, err := a.Redactor(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]FailureView, len(recs))
	for i, r := range recs {
		out[i] = failureView(r, red)
	}
	return out, nil
}

func failureView(r wire.StoredFailure, red *Redactor) FailureView {
	v := FailureView{Index: r.Index, Raw: r.Raw}
	if r.Err != nil {
		v.Unparsable = true
		return v
	}
	f := r.Failure
	v.FailedAt, v.Exception, v.Error, v.Backtrace = f.FailedAt, f.Exception, f.Error, f.Backtrace
	v.Worker, v.Queue, v.RetriedAt = f.Worker, f.Queue, f.RetriedAt
	v.Time, _ = wire.ParseTime(f.FailedAt)
	v.Job = viewOf(f.Payload, red)
	return v
}

// RetryFailure requeues failure idx onto its queue and marks it retried (it
// stays in the list, as in Ruby). It returns the queue.
func (a *Admin) RetryFailure(ctx context.Context, idx int64) (string, error) {
	return a.store.RetryFailure(ctx, idx, time.Now())
}

// RemoveFailure deletes failure idx.
func (a *Admin) RemoveFailure(ctx context.Context, idx int64) error {
	return a.store.RemoveFailure(ctx, idx, nil)
}

// RemoveFailures deletes several failures by index (highest first, so the
// other indexes stay valid).
func (a *Admin) RemoveFailures(ctx context.Context, idxs []int64, progress func(done int)) error {
	sorted := append([]int64(nil), idxs...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] > sorted[j] })
	for i, idx := range sorted {
		if i > 0 && sorted[i-1] == idx {
			continue
		}
		if err := a.store.RemoveFailure(ctx, idx, nil); err != nil {
			return fmt.Errorf("remove failure %d: %w", idx, err)
		}
		if progress != nil {
			progress(i + 1)
		}
	}
	return nil
}

// RetryAllFailures requeues every failure (Failure.requeue_all); records stay
// and are marked retried. It returns how many were requeued.
func (a *Admin) RetryAllFailures(ctx context.Context, progress func(done, total int)) (int, error) {
	n, err := a.store.FailedCount(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	for i := int64(0); i < n; i++ {
		if _, err := a.store.RetryFailure(ctx, i, time.Now()); err != nil {
			return done, fmt.Errorf("retry failure %d: %w", i, err)
		}
		done++
		if progress != nil {
			progress(done, int(n))
		}
	}
	return done, nil
}

// ClearFailures deletes the failed list (Failure.clear) and returns how many
// records it held.
func (a *Admin) ClearFailures(ctx context.Context) (int64, error) { return a.store.ClearFailures(ctx) }

// ClearRetriedFailures removes every failure that has been retried.
func (a *Admin) ClearRetriedFailures(ctx context.Context) (int, error) {
	n, err := a.store.FailedCount(ctx)
	if err != nil {
		return 0, err
	}
	removed := 0
	for i := n - 1; i >= 0; i-- {
		raw, err := a.store.FailureAt(ctx, i)
		if err != nil {
			return removed, err
		}
		f, err := wire.DecodeFailure(raw)
		if err != nil || f.RetriedAt == "" {
			continue
		}
		if err := a.store.RemoveFailure(ctx, i, raw); err != nil {
			return removed, err
		}
		removed++
	}
	return removed, nil
}

// WorkerView is one registered worker.
type WorkerView struct {
	ID        string     `json:"id"`
	Host      string     `json:"host"`
	PID       int        `json:"pid"`
	Queues    []string   `json:"queues"`
	Slot      int        `json:"slot,omitempty"` // resq slot number (ids host:pid:queues:N)
	Started   string     `json:"started"`
	Heartbeat string     `json:"heartbeat,omitempty"`
	Processed int64      `json:"processed"`
	Failed    int64      `json:"failed"`
	Working   *WorkingOn `json:"working,omitempty"`
}

// WorkingOn is the job a worker is running.
type WorkingOn struct {
	Queue string    `json:"queue"`
	RunAt string    `json:"run_at"`
	Since time.Time `json:"-"`
	Job   JobView   `json:"job"`
}

// Workers lists registered workers sorted by id.
func (a *Admin) Workers(ctx context.Context) ([]WorkerView, error) {
	states, err := a.store.WorkerStates(ctx)
	if err != nil {
		return nil, err
	}
	red, err := a.Redactor(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]WorkerView, 0, len(states))
	for _, st := range states {
		if !st.Registered {
			continue // only a heartbeat is left: Prune removes it
		}
		v := WorkerView{ID: st.ID, Started: st.Started, Heartbeat: st.Heartbeat, Processed: st.Processed, Failed: st.Failed}
		if id, ok := wire.ParseWorkerID(st.ID); ok {
			v.Host, v.PID, v.Queues, v.Slot = id.Host, id.PID, id.Queues, id.Slot
		}
		if len(st.Record) > 0 {
			if rec, err := wire.DecodeWorkingOn(st.Record); err == nil {
				wo := &WorkingOn{Queue: rec.Queue, RunAt: rec.RunAt, Job: viewOf(rec.Payload, red)}
				wo.Since, _ = wire.ParseTime(rec.RunAt)
				v.Working = wo
			} else {
				v.Working = &WorkingOn{Job: JobView{Invalid: "unreadable working-on record", Raw: string(st.Record)}}
			}
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Prune finds dead workers and recovers their jobs, as a worker does at
// start-up: same-host workers whose process is gone, and workers anywhere
// whose heartbeat is older than staleAfter (0: 300 s).
func (a *Admin) Prune(ctx context.Context, staleAfter time.Duration, policy DeadJobPolicy) (PruneResult, error) {
	if staleAfter <= 0 {
		staleAfter = DefaultPruneInterval
	}
	host, _ := os.Hostname()
	return a.conn.pruneDead(ctx, pruneOptions{host: host, staleAfter: staleAfter, policy: policy})
}

// Stats are the numbers of Ruby's Resque.info (docs/protocol.md §6.2), plus the failure
// counter.
type Stats struct {
	Pending     int64    `json:"pending"`
	Processed   int64    `json:"processed"`
	Queues      int64    `json:"queues"`
	Workers     int64    `json:"workers"`
	Working     int64    `json:"working"`
	Failed      int64    `json:"failed"`      // LLEN failed, as Resque.info reports it
	StatFailed  int64    `json:"stat_failed"` // the stat:failed counter
	Servers     []string `json:"servers"`
	Environment string   `json:"environment"`
}

// Stats computes Resque.info.
func (a *Admin) Stats(ctx context.Context) (Stats, error) {
	in, err := a.store.Info(ctx)
	if err != nil {
		return Stats{}, err
	}
	env := os.Getenv("RAILS_ENV")
	if env == "" {
		env = os.Getenv("RACK_ENV")
	}
	if env == "" {
		env = "development"
	}
	return Stats{Pending: in.Pending, Processed: in.Processed, Queues: in.Queues, Workers: in.Workers,
		Working: in.Working, Failed: in.Failed, StatFailed: in.StatFailed,
		Servers: []string{a.conn.String()}, Environment: env}, nil
}

// Keys lists every key under the namespace (without it), sorted. It uses
// SCAN, not KEYS, so it does not block Redis.
func (a *Admin) Keys(ctx context.Context) ([]string, error) { return a.store.KeyNames(ctx) }

// ShortWorker is host:pid of a worker id, as resque-web shows it.
func ShortWorker(id string) string {
	parts := strings.SplitN(id, ":", 3)
	if len(parts) < 2 {
		return id
	}
	return parts[0] + ":" + parts[1]
}

// HistoryPoint is the number of jobs processed and failed in one minute.
type HistoryPoint struct {
	Minute    time.Time `json:"minute"`
	Processed int64     `json:"processed"`
	Failed    int64     `json:"failed"`
}

// History returns per-minute processed/failed counts for the last minutes
// (at most 48 hours are kept), oldest first.
func (a *Admin) History(ctx context.Context, minutes int) ([]HistoryPoint, error) {
	if minutes <= 0 {
		return nil, nil
	}
	now := time.Now()
	p, f, err := a.store.History(ctx, now, minutes)
	if err != nil {
		return nil, err
	}
	cur := now.Truncate(time.Minute)
	out := make([]HistoryPoint, minutes)
	for i := range out {
		out[i] = HistoryPoint{Minute: cur.Add(-time.Duration(minutes-1-i) * time.Minute), Processed: p[i], Failed: f[i]}
	}
	return out, nil
}

// JobCount is the number of jobs of one queue and class with one outcome
// ("processed" or "failed") counted by resq workers. Unregistered classes
// are counted as ClassUnknown, undecodable payloads as ClassInvalid.
type JobCount struct {
	Outcome string `json:"outcome"`
	Queue   string `json:"queue"`
	Class   string `json:"class"`
	Count   int64  `json:"count"`
}

// JobCounts returns resq's per-queue/class counters.
func (a *Admin) JobCounts(ctx context.Context) ([]JobCount, error) {
	rows, err := a.store.JobCounts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]JobCount, len(rows))
	for i, r := range rows {
		out[i] = JobCount{Outcome: r.Outcome, Queue: r.Queue, Class: r.Class, Count: r.N}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Queue != out[j].Queue {
			return out[i].Queue < out[j].Queue
		}
		if out[i].Class != out[j].Class {
			return out[i].Class < out[j].Class
		}
		return out[i].Outcome < out[j].Outcome
	})
	return out, nil
}

// OldestJobAge is how long the job at the head of queue has waited, from its
// enqueued_at (resq producers). ok is false when the queue is empty or the
// head job carries no enqueue time (Ruby and Node producers).
func (a *Admin) OldestJobAge(ctx context.Context, queue string) (age time.Duration, ok bool, err error) {
	raws, err := a.store.QueueRange(ctx, queue, 0, 1)
	if err != nil || len(raws) == 0 {
		return 0, false, err
	}
	p, err := wire.DecodePayload(raws[0])
	if err != nil || p.EnqueuedAt.IsZero() {
		return 0, false, nil
	}
	return time.Since(p.EnqueuedAt), true, nil
}
