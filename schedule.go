package resq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/resq-go/resq/internal/recurring"
	"github.com/resq-go/resq/internal/wire"
)

// Recurring schedules are resque-scheduler's (docs/protocol.md, "Recurring
// schedules"): a schedule file (Ruby's Resque.schedule = YAML.load_file(…))
// and the dynamic schedules Ruby's Resque.set_schedule(…, persist: true)
// stores in persistent_schedules. A Scheduler fires them while it is master;
// every tick is enqueued once across all schedulers (docs/decisions.md §19).

// ErrInvalidSchedule matches every error about a schedule that cannot be
// used (a bad cron or every, a missing class, a config that is not a map).
// The error's text names the schedule, the field and what to change.
var ErrInvalidSchedule = errors.New("invalid schedule")

// Schedule is a set of parsed recurring schedules, keyed by name, as read
// from a schedule file. The zero value and nil are empty. It is immutable.
type Schedule struct {
	m map[string]*recurring.Schedule
}

// ParseSchedule reads a schedule in resque-scheduler's YAML format (a map
// from schedule name to config: cron or every, class, queue, args,
// description, rails_env; JSON of the same shape works too). Crons without a
// zone are in the process's local zone, as rufus-scheduler's. When some
// entries are bad it returns the good ones and an error (matching
// ErrInvalidSchedule) naming each bad one; a Scheduler should not be started
// on such a file (resq scheduler refuses to).
func ParseSchedule(data []byte) (*Schedule, error) {
	m, err := recurring.LoadYAML(data, recurring.ParseOptions{})
	return &Schedule{m: m}, scheduleErr(err)
}

// LoadScheduleFile reads a schedule file (see ParseSchedule).
func LoadScheduleFile(path string) (*Schedule, error) {
	m, err := recurring.LoadYAMLFile(path, recurring.ParseOptions{})
	return &Schedule{m: m}, scheduleErr(err)
}

func scheduleErr(err error) error {
	if err == nil {
		return nil
	}
	var se *recurring.Error
	if errors.As(err, &se) {
		return fmt.Errorf("%w: %w", ErrInvalidSchedule, err)
	}
	return err
}

// Names returns the schedules' names, sorted.
func (s *Schedule) Names() []string {
	if s == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(s.m))
}

// Len is the number of schedules.
func (s *Schedule) Len() int {
	if s == nil {
		return 0
	}
	return len(s.m)
}

func (s *Schedule) entries() map[string]*recurring.Schedule {
	if s == nil {
		return nil
	}
	return s.m
}

// CatchUpPolicy is what a Scheduler does with ticks that fell due while no
// scheduler was master (docs/operations.md, "Recurring schedules").
type CatchUpPolicy int

const (
	// CatchUpLatest (the default) fires, once, the most recent missed tick
	// of each schedule that has fired before (delayed:last_enqueued_at), if
	// it is at most SchedulerConfig.CatchUpWindow old; older missed ticks
	// are skipped, never replayed in a burst. A schedule that never fired
	// starts with its next tick.
	CatchUpLatest CatchUpPolicy = iota
	// CatchUpNone fires nothing that fell due before the Scheduler became
	// master, as resque-scheduler (rufus) does.
	CatchUpNone
)

// DefaultCatchUpWindow is SchedulerConfig.CatchUpWindow's default.
const DefaultCatchUpWindow = recurring.DefaultCatchUpWindow

// ScheduleConfig is one recurring schedule for Admin.SetSchedule, in
// resque-scheduler's terms. Class and one of Cron or Every are required.
type ScheduleConfig struct {
	// Class is the job class.
	Class string `json:"class"`
	// Queue is the queue; empty means the scheduler's ClassQueues decide
	// (Ruby asks the class for its @queue).
	Queue string `json:"queue,omitempty"`
	// Cron is a cron line in rufus-scheduler's dialect: 5 fields, or 6
	// with seconds first, an optional zone after ("0 9 * * * Europe/Berlin").
	// It wins over Every when both are set, as in Ruby.
	Cron string `json:"cron,omitempty"`
	// Every is a rufus duration ("30s", "1h30m", "2d").
	Every string `json:"every,omitempty"`
	// Args is the job's arguments as JSON: an array is the argument list,
	// null means none, any other value is the one argument (as Ruby).
	Args json.RawMessage `json:"args,omitempty"`
	// Description is shown by resque-web and resq schedule list.
	Description string `json:"description,omitempty"`
	// RailsEnv limits the schedule to schedulers whose environment
	// (SchedulerConfig.Env) is in this comma-separated list.
	RailsEnv string `json:"rails_env,omitempty"`
}

// ScheduleView is one schedule as Admin.Schedules lists it.
type ScheduleView struct {
	Name string `json:"name"`
	// Class is the class the job is pushed as (custom_job_class when set).
	Class string `json:"class,omitempty"`
	// Queue is "" when the config has none (the scheduler's ClassQueues
	// decide).
	Queue string `json:"queue,omitempty"`
	// ArgsSize is the length of the job's args JSON in bytes (argument
	// values are not shown).
	ArgsSize    int    `json:"args_bytes"`
	Cron        string `json:"cron,omitempty"`
	Every       string `json:"every,omitempty"`
	Description string `json:"description,omitempty"`
	// Source is "static" (the schedule file given to Schedules) or
	// "persistent" (persistent_schedules; it wins over a static schedule
	// of the same name).
	Source string `json:"source"`
	// Envs is the rails_env/env filter; empty: every environment.
	Envs []string `json:"envs,omitempty"`
	// Next is the next tick after now; zero when the schedule never fires
	// (no cron or every).
	Next time.Time `json:"next_run,omitzero"`
	// LastRun is the schedule's last enqueue from delayed:last_enqueued_at
	// (written by every scheduler, Ruby's too); zero when never.
	LastRun time.Time `json:"last_run,omitzero"`
	// Problem says why a persistent config cannot fire (it does not
	// parse); the other fields are then empty.
	Problem string `json:"problem,omitempty"`
}

// Schedules lists the effective schedule — static (may be nil; pass the
// Scheduler's file to see it) merged with persistent_schedules, persistent
// winning — sorted by name, with next and last runs.
func (a *Admin) Schedules(ctx context.Context, static *Schedule) ([]ScheduleView, error) {
	persistent, err := a.store.PersistentSchedules(ctx)
	if err != nil {
		return nil, err
	}
	last, err := a.store.LastEnqueuedAt(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	views := map[string]ScheduleView{}
	for name, s := range static.entries() {
		views[name] = scheduleView(s, "static", now)
	}
	for name, raw := range persistent {
		s, err := recurring.ParseJSON(name, []byte(raw), recurring.ParseOptions{})
		if err != nil {
			views[name] = ScheduleView{Name: name, Source: "persistent", Problem: err.Error()}
			continue
		}
		views[name] = scheduleView(s, "persistent", now)
	}
	out := make([]ScheduleView, 0, len(views))
	for _, name := range slices.Sorted(maps.Keys(views)) {
		v := views[name]
		if t, ok := wire.ParseTime(last[name]); ok {
			v.LastRun = t
		}
		out = append(out, v)
	}
	return out, nil
}

func scheduleView(s *recurring.Schedule, source string, now time.Time) ScheduleView {
	v := ScheduleView{Name: s.Name, Class: s.JobClass(), Queue: s.Queue, ArgsSize: len(s.Args),
		Description: s.Description, Source: source, Envs: s.Envs}
	if s.Cron != nil {
		v.Cron = s.Cron.String()
	} else if s.Every != nil {
		v.Every = s.Every.String()
	}
	if next, ok := s.Next(now); ok {
		v.Next = next
	}
	return v
}

// SetSchedule stores a persistent schedule as Ruby's
// Resque.set_schedule(name, config, persist: true) does (HSET
// persistent_schedules, SADD schedules_changed), so the master — resq's or
// Ruby's — applies it within a second, without a restart. A schedule of the
// same name is replaced. The config is checked first; a bad one is refused
// with an error matching ErrInvalidSchedule.
func (a *Admin) SetSchedule(ctx context.Context, name string, cfg ScheduleConfig) error {
	spec := recurring.Spec{Class: cfg.Class, Queue: cfg.Queue, Cron: cfg.Cron, Every: cfg.Every,
		Args: cfg.Args, Description: cfg.Description, RailsEnv: cfg.RailsEnv}
	b, err := spec.JSON(name, recurring.ParseOptions{})
	if err != nil {
		return scheduleErr(err)
	}
	return a.store.SetPersistentSchedule(ctx, name, b)
}

// SetScheduleJSON stores a persistent schedule given as its config JSON in
// resque-scheduler's format ({"cron":"0 9 * * *","class":"Report",
// "queue":"reports","args":[…]}; every key Ruby reads is accepted, and
// "persist" is dropped as Ruby drops it). See SetSchedule.
func (a *Admin) SetScheduleJSON(ctx context.Context, name string, config []byte) error {
	s, err := recurring.ParseJSON(name, config, recurring.ParseOptions{})
	if err != nil {
		return scheduleErr(err)
	}
	return a.store.SetPersistentSchedule(ctx, name, s.Config)
}

// RemoveSchedule removes a persistent schedule as Ruby's
// Resque.remove_schedule does (HDEL persistent_schedules, SADD
// schedules_changed); the master stops firing it within a second (a static
// schedule of the same name then applies again). It reports whether a
// persistent schedule of that name existed. A static schedule cannot be
// removed here: edit the file and restart the schedulers.
func (a *Admin) RemoveSchedule(ctx context.Context, name string) (bool, error) {
	if name == "" {
		return false, errors.New("resq: RemoveSchedule: the schedule name is empty")
	}
	return a.store.RemovePersistentSchedule(ctx, name)
}

// ErrNoSuchSchedule is returned by EnqueueScheduleNow for a name that is
// neither persistent nor in the static schedule.
var ErrNoSuchSchedule = errors.New("no such schedule")

// EnqueueScheduleNow enqueues the job of schedule name now, as
// resque-web's "Queue now" does: through c (its middleware, limits, signing
// and encryption; nil: an unsigned Client on the Admin's Conn), without
// touching the schedule's ticks or its last run. The persistent schedule of
// that name wins over the static one (static may be nil). A schedule
// without a queue is enqueued on classQueues[class] when given, else
// refused.
func (a *Admin) EnqueueScheduleNow(ctx context.Context, static *Schedule, name string, c *Client, classQueues map[string]string) (*Enqueued, error) {
	s := static.entries()[name]
	raw, err := a.store.PersistentSchedules(ctx)
	if err != nil {
		return nil, err
	}
	if cfg, ok := raw[name]; ok {
		ps, err := recurring.ParseJSON(name, []byte(cfg), recurring.ParseOptions{})
		if err != nil {
			return nil, scheduleErr(err)
		}
		s = ps
	}
	if s == nil {
		return nil, fmt.Errorf("resq: schedule %q: %w (list them with resq schedule list)", name, ErrNoSuchSchedule)
	}
	job, err := recurring.BuildJob(s, func(class string) string { return classQueues[class] })
	if err != nil {
		return nil, fmt.Errorf("resq: %w (or give the class a queue with --class-queue)", err)
	}
	if c == nil {
		c, err = NewClient(a.conn, ClientConfig{})
		if err != nil {
			return nil, err
		}
	}
	return c.EnqueueWith(ctx, EnqueueParams{Queue: job.Queue, Class: job.Class, RawArgs: job.Args})
}
