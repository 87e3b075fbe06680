package recurring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// Tick is one fire of a schedule. Its identity is the schedule's name and
// the scheduled fire time in whole UTC seconds: every scheduler computes the
// same ticks, so the tick key in Redis lets only the first enqueue it.
type Tick struct {
	Name string
	At   time.Time // UTC, whole seconds
}

// ID is the tick's identity, "<name>@<unix seconds>".
func (t Tick) ID() string { return t.Name + "@" + strconv.FormatInt(t.At.Unix(), 10) }

// FireRequest is what the engine hands the Redis side for one tick.
type FireRequest struct {
	Tick    Tick
	Queue   string
	Payload []byte
	// TTL is how long the tick's mark must live (Config.TickTTL).
	TTL time.Duration
	// EnqueuedAt is the time written to delayed:last_enqueued_at.
	EnqueuedAt time.Time
}

// ErrNotMaster is returned by Backend.Fire when this scheduler does not
// hold the master lock; nothing was enqueued.
var ErrNotMaster = errors.New("not the scheduler master")

// Backend is the engine's narrow view of Redis. NewStoreBackend implements
// it on a wire.Store.
type Backend interface {
	// Fire enqueues the tick's job unless the tick was fired already (then
	// false, nil), in one atomic step fenced by the master lock
	// (ErrNotMaster when the lock is not ours).
	Fire(ctx context.Context, r FireRequest) (bool, error)
	// PersistentSchedules returns persistent_schedules: name → config JSON.
	PersistentSchedules(ctx context.Context) (map[string]string, error)
	// PopChanged removes and returns the names in schedules_changed.
	PopChanged(ctx context.Context) ([]string, error)
	// LastEnqueued returns delayed:last_enqueued_at: name → time text.
	LastEnqueued(ctx context.Context) (map[string]string, error)
}

// CatchUp is the policy for ticks that fell due while no scheduler ran.
type CatchUp int

const (
	// CatchUpLatest (the default) fires, once, the most recent missed tick
	// of each schedule if it is at most CatchUpWindow old and later than
	// the schedule's delayed:last_enqueued_at; older missed ticks are
	// skipped. A schedule with no last_enqueued_at entry (never fired by
	// any scheduler) is new: it starts with its next tick. every schedules
	// keep their grid.
	CatchUpLatest CatchUp = iota
	// CatchUpNone fires nothing that fell due before the engine loaded the
	// schedule, as resque-scheduler (rufus) does. A tick due while the
	// engine runs still fires if at most CatchUpWindow late (a slow loop,
	// a Redis hiccup).
	CatchUpNone
)

// Config configures an Engine. The zero value works.
type Config struct {
	// Env is the scheduler's environment (RAILS_ENV) for the rails_env/env
	// filter; "" skips every schedule that has such a filter.
	Env string
	// Parse is used for the persistent schedules read from Redis (the zone
	// of crons without one). Default: time.Local.
	Parse ParseOptions
	// CatchUp is the missed-tick policy; default CatchUpLatest.
	CatchUp CatchUp
	// CatchUpWindow is how late a tick may be and still fire. Default 1h;
	// values under 10s are raised to 10s.
	CatchUpWindow time.Duration
	// TickTTL is how long a fired tick is remembered in Redis; it must
	// exceed CatchUpWindow plus clock skew between schedulers. Default
	// CatchUpWindow + 1h.
	TickTTL time.Duration
	// QueueFunc names the queue of a schedule without "queue" (Ruby asks
	// the class). Default none: such a schedule's ticks are skipped with an
	// error in the log, as Ruby's NoQueueError.
	QueueFunc func(class string) string
	// PayloadFunc builds the bytes pushed for a tick.
	//
	// HOOK (lead): envelope signing/encryption goes here — set PayloadFunc
	// to build the job through internal/envelope (id, sig, enc) so scheduled
	// jobs take the same one-way path as every other job. The default is
	// the plain {"class":…,"args":…} Ruby's scheduler pushes
	// (wire.EncodeScheduledJob).
	PayloadFunc func(ctx context.Context, job Job) ([]byte, error)
	// NowFunc is the clock; default time.Now.
	NowFunc func() time.Time
	// Logger; default slog.Default(). Logs carry schedule names, classes,
	// queues and tick times, never argument values.
	Logger *slog.Logger
}

// DefaultCatchUpWindow is Config.CatchUpWindow's default.
const DefaultCatchUpWindow = time.Hour

const minCatchUpWindow = 10 * time.Second

// Job is what PayloadFunc encodes.
type Job struct {
	Schedule string
	Tick     Tick
	Class    string
	Queue    string
	Args     json.RawMessage // a JSON array
}

// Source says where an effective schedule came from.
type Source string

const (
	Static     Source = "static"
	Persistent Source = "persistent"
)

// Entry is one schedule as the engine holds it.
type Entry struct {
	Schedule *Schedule
	Source   Source
	// Active is false when the environment filter excludes the schedule or
	// it has no fire times.
	Active bool
	// Next is the next tick to fire (zero when none).
	Next time.Time
	// Problem is set when the schedule cannot fire (a persistent config
	// that does not parse, no queue); Schedule may then be nil.
	Problem string
}

// Result reports one FireDue call.
type Result struct {
	Fired   []Tick // enqueued by this call
	Already []Tick // fired before (by another scheduler or an earlier call)
	// Skipped counts missed ticks not fired (older than the window, or
	// superseded by a later missed tick of the same schedule).
	Skipped int
}

type entry struct {
	Entry
	raw string // persistent config text, to notice real changes
}

// Engine keeps the effective schedule — the static schedules merged with
// the persistent ones from Redis, persistent winning — and fires due ticks.
// A scheduler loop drives it: Load when it becomes master, then repeatedly
// Refresh, FireDue and sleep until NextWake. Safe for concurrent use.
type Engine struct {
	cfg     Config
	backend Backend
	static  map[string]*Schedule

	mu      sync.Mutex
	entries map[string]*entry
}

// New returns an engine for the static schedules (from LoadYAML; may be
// nil) over backend. Call Load before the first FireDue.
func New(static map[string]*Schedule, backend Backend, cfg Config) *Engine {
	if cfg.CatchUpWindow == 0 {
		cfg.CatchUpWindow = DefaultCatchUpWindow
	}
	cfg.CatchUpWindow = max(cfg.CatchUpWindow, minCatchUpWindow)
	if cfg.TickTTL <= 0 {
		cfg.TickTTL = cfg.CatchUpWindow + time.Hour
	}
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PayloadFunc == nil {
		cfg.PayloadFunc = func(_ context.Context, j Job) ([]byte, error) {
			return wire.EncodeScheduledJob(j.Class, j.Args), nil
		}
	}
	return &Engine{cfg: cfg, backend: backend, static: maps.Clone(static), entries: map[string]*entry{}}
}

// Load (re)builds the whole effective schedule: it reads
// persistent_schedules and delayed:last_enqueued_at and places each
// schedule's next tick by the catch-up policy. Call it when the scheduler
// becomes master, and after the master lock was lost and won again. It
// leaves schedules_changed alone (a standby calling it steals nothing from
// the master); the next Refresh re-reads those names and keeps the state of
// any whose config did not change.
func (e *Engine) Load(ctx context.Context) error {
	persistent, err := e.backend.PersistentSchedules(ctx)
	if err != nil {
		return fmt.Errorf("recurring: read persistent_schedules: %w", err)
	}
	last, err := e.backend.LastEnqueued(ctx)
	if err != nil {
		return fmt.Errorf("recurring: read delayed:last_enqueued_at: %w", err)
	}
	now := e.cfg.NowFunc()
	entries := map[string]*entry{}
	for name, s := range e.static {
		entries[name] = e.newEntry(s, Static, "", "")
	}
	for name, raw := range persistent {
		entries[name] = e.persistentEntry(name, raw)
	}
	for name, en := range entries {
		e.place(en, now, last[name], true)
	}
	e.mu.Lock()
	e.entries = entries
	e.mu.Unlock()
	return nil
}

// Refresh applies the names in schedules_changed (as the master does in
// dynamic mode): each is re-read from persistent_schedules; a name gone
// from there falls back to the static schedule of that name, or is removed.
// A schedule whose config did not change keeps its next tick; a new or
// changed one starts with its next tick. It returns the names applied.
func (e *Engine) Refresh(ctx context.Context) ([]string, error) {
	names, err := e.backend.PopChanged(ctx)
	if err != nil || len(names) == 0 {
		return nil, err
	}
	persistent, err := e.backend.PersistentSchedules(ctx)
	if err != nil {
		// The names are popped: a full Load restores a consistent view.
		return nil, fmt.Errorf("recurring: read persistent_schedules (call Load to recover): %w", err)
	}
	now := e.cfg.NowFunc()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, name := range names {
		old := e.entries[name]
		var en *entry
		if raw, ok := persistent[name]; ok {
			if old != nil && old.Source == Persistent && old.raw == raw {
				continue
			}
			en = e.persistentEntry(name, raw)
		} else if s, ok := e.static[name]; ok {
			if old != nil && old.Source == Static {
				continue
			}
			en = e.newEntry(s, Static, "", "")
		} else {
			delete(e.entries, name)
			e.cfg.Logger.Info("recurring schedule removed", "schedule", name)
			continue
		}
		e.place(en, now, "", false)
		e.entries[name] = en
		e.cfg.Logger.Info("recurring schedule loaded", "schedule", name, "source", string(en.Source), "next", en.Next)
	}
	return names, nil
}

func (e *Engine) persistentEntry(name, raw string) *entry {
	s, err := ParseJSON(name, []byte(raw), e.cfg.Parse)
	if err != nil {
		e.cfg.Logger.Error("recurring schedule in persistent_schedules is invalid; it will not fire", "schedule", name, "error", err)
		return &entry{Entry: Entry{Source: Persistent, Problem: err.Error()}, raw: raw}
	}
	return e.newEntry(s, Persistent, raw, "")
}

func (e *Engine) newEntry(s *Schedule, src Source, raw, problem string) *entry {
	en := &entry{Entry: Entry{Schedule: s, Source: src, Problem: problem}, raw: raw}
	en.Active = s.Fires() && s.ActiveIn(e.cfg.Env)
	if s.Fires() && !s.ActiveIn(e.cfg.Env) {
		e.cfg.Logger.Info("recurring schedule skipped: environment does not match", "schedule", s.Name, "env", e.cfg.Env, "wants", s.Envs)
	}
	for _, w := range s.Warnings {
		e.cfg.Logger.Warn("recurring schedule: "+w, "schedule", s.Name)
	}
	return en
}

// place sets an entry's next tick: catch-up from lastText when the policy
// and the evidence allow, else the first tick after now.
func (e *Engine) place(en *entry, now time.Time, lastText string, loading bool) {
	en.Next = time.Time{}
	if !en.Active {
		return
	}
	from := now
	if loading && e.cfg.CatchUp == CatchUpLatest && lastText != "" {
		if last, ok := wire.ParseTime(lastText); ok {
			from = last
			if floor := now.Add(-e.cfg.CatchUpWindow); from.Before(floor) {
				from = floor.Add(-time.Second) // a tick exactly at the floor counts
			}
			if from.After(now) {
				from = now
			}
		}
	}
	if next, ok := en.Schedule.Next(from); ok {
		en.Next = next
	}
}

// NextWake returns the earliest next tick over all active schedules, false
// when none will fire. The scheduler may sleep until then (and should wake
// earlier to Refresh, since a schedule set meanwhile may fire sooner).
func (e *Engine) NextWake() (time.Time, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var best time.Time
	for _, en := range e.entries {
		if en.Active && en.Problem == "" && !en.Next.IsZero() && (best.IsZero() || en.Next.Before(best)) {
			best = en.Next
		}
	}
	return best, !best.IsZero()
}

// Due returns the ticks FireDue would fire at now: for each schedule whose
// next tick is due, its most recent tick at or before now, if within the
// catch-up window. It changes nothing.
func (e *Engine) Due(now time.Time) []Tick {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Tick
	for _, name := range slices.Sorted(maps.Keys(e.entries)) {
		if t, _, ok := e.due(e.entries[name], now); ok {
			out = append(out, t)
		}
	}
	return out
}

// due finds the tick to fire for en at now and how many missed ticks it
// supersedes. ok is false when nothing is due.
func (e *Engine) due(en *entry, now time.Time) (Tick, int, bool) {
	if !en.Active || en.Problem != "" || en.Next.IsZero() || en.Next.After(now) {
		return Tick{}, 0, false
	}
	floor := now.Add(-e.cfg.CatchUpWindow)
	latest, skipped := en.Next, 0
	if latest.Before(floor) {
		// Too old: jump to the first tick inside the window.
		skipped++
		n, ok := en.Schedule.Next(floor.Add(-time.Second))
		if !ok || n.After(now) {
			return Tick{}, skipped, false
		}
		latest = n
	}
	for range 1 << 20 { // bounded: an every-second cron over a 1h window is 3600 steps
		n, ok := en.Schedule.Next(latest)
		if !ok || n.After(now) {
			break
		}
		latest = n
		skipped++
	}
	return Tick{Name: en.Schedule.Name, At: latest}, skipped, true
}

// FireDue fires every due tick (see Due) through the backend and moves each
// schedule to its next tick. A tick whose Fire fails stays due and is tried
// again by the next call (the tick key makes the retry safe). When the
// backend says this scheduler is not master, FireDue stops and returns an
// error wrapping ErrNotMaster, leaving the remaining ticks due.
func (e *Engine) FireDue(ctx context.Context) (Result, error) {
	now := e.cfg.NowFunc()
	e.mu.Lock()
	defer e.mu.Unlock()
	var res Result
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(e.entries)) {
		en := e.entries[name]
		tick, skipped, ok := e.due(en, now)
		if !ok {
			if skipped > 0 { // everything missed is older than the window
				res.Skipped += skipped
				e.place(en, now, "", false)
			}
			continue
		}
		res.Skipped += skipped
		if skipped > 0 {
			e.cfg.Logger.Info("recurring schedule: missed ticks skipped, firing the latest", "schedule", name, "skipped", skipped, "tick", tick.At)
		}
		fired, err := e.fire(ctx, en, tick, now)
		if errors.Is(err, ErrNotMaster) {
			return res, fmt.Errorf("recurring: fire %s: %w", tick.ID(), err)
		}
		if err != nil && !errors.Is(err, errNoQueue) {
			errs = append(errs, fmt.Errorf("recurring: fire %s: %w", tick.ID(), err))
			continue
		}
		switch {
		case err != nil: // dropped, as Ruby's NoQueueError: not retried
			res.Skipped++
		case fired:
			res.Fired = append(res.Fired, tick)
		default:
			res.Already = append(res.Already, tick)
		}
		if next, ok := en.Schedule.Next(tick.At); ok {
			en.Next = next
		} else {
			en.Next = time.Time{}
		}
	}
	return res, errors.Join(errs...)
}

// errNoQueue is a tick dropped for want of a queue (it is not retried).
var errNoQueue = errors.New("no queue")

func (e *Engine) fire(ctx context.Context, en *entry, tick Tick, now time.Time) (bool, error) {
	s := en.Schedule
	job, err := BuildJob(s, e.cfg.QueueFunc)
	if err != nil {
		e.cfg.Logger.Error("recurring schedule: tick dropped", "schedule", s.Name, "class", s.Class, "tick", tick.At, "error", err)
		return false, err
	}
	job.Tick = tick
	payload, err := e.cfg.PayloadFunc(ctx, job)
	if err != nil {
		return false, fmt.Errorf("build the job: %w", err)
	}
	fired, err := e.backend.Fire(ctx, FireRequest{Tick: tick, Queue: job.Queue, Payload: payload, TTL: e.cfg.TickTTL, EnqueuedAt: now})
	if err == nil && fired {
		e.cfg.Logger.Info("recurring schedule fired", "schedule", s.Name, "class", job.Class, "queue", job.Queue, "tick", tick.At, "late", now.Sub(tick.At), "bytes", len(payload))
	}
	return fired, err
}

// BuildJob is the job a schedule enqueues (spec §9.7, step 6 / step 4 for
// custom_job_class): class, normalised args, and the queue — the schedule's,
// else queueFunc(class) when given. It fails when there is no queue.
func BuildJob(s *Schedule, queueFunc func(class string) string) (Job, error) {
	j := Job{Schedule: s.Name, Class: s.JobClass(), Queue: s.Queue, Args: s.Args}
	if j.Queue == "" && queueFunc != nil {
		j.Queue = queueFunc(s.Class)
	}
	if j.Queue == "" {
		return j, fmt.Errorf("schedule %q has no queue (%w): add queue: to its config", s.Name, errNoQueue)
	}
	return j, nil
}

// Entries returns the effective schedule sorted by name (for the CLI and
// the dashboard's Schedule tab).
func (e *Engine) Entries() []Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Entry, 0, len(e.entries))
	for _, name := range slices.Sorted(maps.Keys(e.entries)) {
		en := e.entries[name].Entry
		if en.Schedule == nil {
			en.Schedule = &Schedule{Name: name}
		}
		out = append(out, en)
	}
	return out
}
