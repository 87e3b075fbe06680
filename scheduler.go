package resq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/resq-go/resq/internal/recurring"
	"github.com/resq-go/resq/internal/scheduler"
	"github.com/resq-go/resq/internal/wire"
)

// Defaults for SchedulerConfig.
const (
	DefaultSchedulerLockTTL = scheduler.DefaultLockTTL
	DefaultSchedulerRefresh = scheduler.DefaultRefresh
	DefaultSchedulerPoll    = scheduler.DefaultPoll
	DefaultSchedulerBatch   = scheduler.DefaultBatch
)

// SchedulerConfig configures a Scheduler. Zero fields take the defaults.
type SchedulerConfig struct {
	// LockPrefix is resque-scheduler's RESQUE_SCHEDULER_MASTER_LOCK_PREFIX:
	// schedulers with different prefixes elect different masters. Default
	// none (the lock key is <ns>:<ns>:resque_scheduler_master_lock).
	LockPrefix string
	// LockTTL is the master lock's time to live: a standby takes over at
	// most this long after the master dies without releasing it. Default
	// 10 s (Ruby's is 180 s; a Ruby scheduler still respects resq's lock,
	// since it only takes a free one).
	LockTTL time.Duration
	// Refresh is how often the master renews the lock and a standby tries
	// to take it. Default 2 s; must be below LockTTL.
	Refresh time.Duration
	// Poll is the longest the master goes without re-reading the schedule,
	// which bounds the lateness of jobs delayed by Ruby or node-resque
	// producers (resq producers wake the scheduler themselves). Default 1 s.
	Poll time.Duration
	// BatchSize is the number of due jobs moved per atomic step. Default
	// 1000.
	BatchSize int
	// ClassQueues gives the queue of delayed items stored without one
	// (Ruby's enqueue_at for a class whose @queue resq cannot read, or
	// node's null queue). Items with no queue here become failure records
	// (Resque::NoQueueError) instead of being dropped.
	ClassQueues map[string]string
	// Name is the master lock's value. Default "<hostname>:<pid>", as
	// resque-scheduler's; give each Scheduler of one process its own.
	Name string
	// Logger receives master changes, moves and errors. Default: the
	// Conn's logger.
	Logger *slog.Logger

	// Schedule holds the static recurring schedules (a schedule file read
	// with LoadScheduleFile or ParseSchedule); nil: none. The master fires
	// them and the persistent schedules in Redis (persistent_schedules,
	// set by Admin.SetSchedule or Ruby's Resque.set_schedule), which it
	// always reads and re-reads when schedules_changed names them.
	Schedule *Schedule
	// Env is the scheduler's environment (RAILS_ENV) for schedules with a
	// rails_env/env filter. Default "": such schedules never fire.
	Env string
	// CatchUp is the policy for ticks missed while no scheduler was master.
	// Default CatchUpLatest.
	CatchUp CatchUpPolicy
	// CatchUpWindow is how old a missed tick may be and still fire.
	// Default 1 h (DefaultCatchUpWindow); at least 10 s.
	CatchUpWindow time.Duration
	// Keyring signs the jobs of recurring schedules when it has a signing
	// key, through the same envelope as Client (so workers that require
	// signatures run them). Default none: a tick pushes the plain
	// {"class":…,"args":…} Ruby's scheduler pushes.
	Keyring *Keyring
}

// Scheduler moves due delayed jobs to their queues and fires recurring
// schedules (SchedulerConfig.Schedule and the persistent ones in Redis)
// while it holds resque-scheduler's master lock, and stands by otherwise.
// Each tick of a schedule is enqueued once across all Schedulers and
// across a change of master; ticks missed while none was master follow
// SchedulerConfig.CatchUp. Any number may
// run against one Redis, beside Ruby's resque-scheduler: one of them is
// master. node-resque's scheduler uses another lock (its leader lock) and
// is not excluded; do not run it beside resq's or Ruby's.
type Scheduler struct {
	s      *scheduler.Scheduler
	master atomic.Bool
	moved  atomic.Int64
	failed atomic.Int64
	fired  atomic.Int64
}

// NewScheduler returns a Scheduler on conn.
func NewScheduler(conn *Conn, cfg SchedulerConfig) (*Scheduler, error) {
	if cfg.LockTTL == 0 {
		cfg.LockTTL = DefaultSchedulerLockTTL
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultSchedulerRefresh
	}
	if cfg.LockTTL < 0 || cfg.Refresh < 0 || cfg.Poll < 0 || cfg.BatchSize < 0 || cfg.CatchUpWindow < 0 {
		return nil, errors.New("resq: scheduler durations and batch size must not be negative")
	}
	if cfg.Refresh >= cfg.LockTTL {
		return nil, fmt.Errorf("resq: the scheduler lock refresh (%s) must be shorter than its TTL (%s), or the lock expires between refreshes; e.g. refresh at most a third of the TTL", cfg.Refresh, cfg.LockTTL)
	}
	if cfg.LockTTL < time.Second {
		return nil, fmt.Errorf("resq: a scheduler lock TTL of %s is too short (at least 1s)", cfg.LockTTL)
	}
	if cfg.Name == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		cfg.Name = host + ":" + strconv.Itoa(os.Getpid())
	}
	if cfg.Logger == nil {
		cfg.Logger = conn.logger
	}
	for c, q := range cfg.ClassQueues {
		if c == "" || q == "" {
			return nil, fmt.Errorf("resq: scheduler class queue %q=%q: class and queue must not be empty", c, q)
		}
	}
	if cfg.CatchUp != CatchUpLatest && cfg.CatchUp != CatchUpNone {
		return nil, fmt.Errorf("resq: unknown scheduler catch-up policy %d (use CatchUpLatest or CatchUpNone)", cfg.CatchUp)
	}
	rc := recurring.Config{
		Env:           cfg.Env,
		CatchUp:       recurring.CatchUpLatest,
		CatchUpWindow: cfg.CatchUpWindow,
		Logger:        cfg.Logger,
	}
	if cfg.CatchUp == CatchUpNone {
		rc.CatchUp = recurring.CatchUpNone
	}
	if len(cfg.ClassQueues) > 0 {
		cq := maps.Clone(cfg.ClassQueues)
		rc.QueueFunc = func(class string) string { return cq[class] }
	}
	if cfg.Keyring.CanSign() {
		c, err := NewClient(conn, ClientConfig{Keyring: cfg.Keyring, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		rc.PayloadFunc = c.scheduledPayload
	}
	r := &Scheduler{}
	r.s = scheduler.New(conn.store, scheduler.Config{
		Lock:        wire.Lock{Key: conn.store.Keys.SchedulerMasterLock(cfg.LockPrefix), Value: cfg.Name},
		LockTTL:     cfg.LockTTL,
		Refresh:     cfg.Refresh,
		Poll:        cfg.Poll,
		Batch:       cfg.BatchSize,
		ClassQueues: cfg.ClassQueues,
		Logger:      cfg.Logger,
		MasterFunc:  func(m bool) { r.master.Store(m) },
		MovedFunc: func(m wire.MoveResult) {
			r.moved.Add(int64(m.Moved))
			r.failed.Add(int64(m.Failed))
		},
		Schedules: cfg.Schedule.entries(),
		Recurring: rc,
		FiredFunc: func(res recurring.Result) { r.fired.Add(int64(len(res.Fired))) },
	})
	return r, nil
}

// Run schedules until ctx ends, then releases the master lock if held and
// returns nil. Redis errors are retried with backoff; a refused login or
// permission (NOPERM, WRONGPASS) is returned.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.s.Run(ctx); err != nil {
		return fmt.Errorf("scheduler: %w (check the Redis user's password and permissions)", err)
	}
	return nil
}

// Master reports whether this Scheduler holds the master lock.
func (s *Scheduler) Master() bool { return s.master.Load() }

// Moved returns the number of delayed jobs this Scheduler moved to their
// queues, and the number that became failure records.
func (s *Scheduler) Moved() (moved, failed int64) { return s.moved.Load(), s.failed.Load() }

// Fired returns the number of recurring-schedule ticks this Scheduler
// enqueued.
func (s *Scheduler) Fired() int64 { return s.fired.Load() }

// scheduledPayload builds a recurring tick's job through the Client's
// path — names, limits, then the envelope (id, enqueue time, signature) —
// for a Scheduler with a signing Keyring. The enqueue time is the tick's
// scheduled second (as a signed delayed job's is its due time), so the
// signed job names its tick. Enqueue middleware does not run: the tick is
// pushed by the fenced, once-only tick script, not by the Client.
func (c *Client) scheduledPayload(ctx context.Context, j recurring.Job) ([]byte, error) {
	job, err := c.prepare(ctx, EnqueueParams{Queue: j.Queue, Class: j.Class, RawArgs: j.Args})
	if err != nil {
		return nil, err
	}
	job.EnqueuedAt = j.Tick.At
	if err := c.encode(job); err != nil {
		return nil, err
	}
	return job.payload, nil
}

// SchedulerMaster returns the value of the master lock for prefix (the
// master's name, host:pid), "" when no scheduler is master.
func (a *Admin) SchedulerMaster(ctx context.Context, prefix string) (string, error) {
	return a.store.LockHolder(ctx, a.store.Keys.SchedulerMasterLock(prefix))
}
