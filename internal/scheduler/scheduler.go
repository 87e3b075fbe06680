// Package scheduler moves due delayed jobs to their queues, as
// resque-scheduler's master does, on resque-scheduler's keys and master lock.
// It knows only wire: every key, command and script is there.
//
// Any number of schedulers may run; the one holding the master lock moves.
// Each move is one atomic step fenced by the lock's value (wire.MoveDue),
// so a scheduler killed at any instant loses nothing and enqueues nothing
// twice, and a former master whose lock expired moves nothing.
//
// The master also fires the recurring schedules (internal/recurring): on
// becoming master it loads them (the static ones of Config.Schedules and
// persistent_schedules), then each step applies schedules_changed, fires
// the due ticks — each through one script fenced by the same lock value
// that fences the moves — and sleeps until the earlier of the next due
// timestamp and the next tick. One loop, one lock: a scheduler that is not
// master neither moves nor fires.
//
// The master sleeps until the earliest due timestamp (read with ZRANGE,
// corrected by the offset between Redis's TIME and the local clock), wakes
// early when a resq producer announces a sooner timestamp on the wake
// channel, and re-reads the schedule at least every Poll for producers that
// do not announce (Ruby, node-resque).
package scheduler

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/recurring"
	"github.com/resq-go/resq/internal/wire"
)

// Defaults of Config.
const (
	DefaultLockTTL = 10 * time.Second
	DefaultRefresh = 2 * time.Second
	DefaultPoll    = time.Second
	DefaultBatch   = 1000
)

// Config configures a Scheduler. Zero fields take the defaults.
type Config struct {
	// Lock is the master lock key and this scheduler's value (host:pid).
	Lock wire.Lock
	// LockTTL is the master lock's time to live. Default 10 s.
	LockTTL time.Duration
	// Refresh is how often the master refreshes the lock and a standby
	// tries to take it. Default 2 s; it must be below LockTTL.
	Refresh time.Duration
	// Poll is the longest the master sleeps without re-reading the
	// schedule. Default 1 s.
	Poll time.Duration
	// Batch is the number of items moved per atomic step. Default 1000.
	Batch int
	// ClassQueues gives the queue of delayed items that have none.
	ClassQueues map[string]string
	// Logger receives master changes, moves and errors.
	Logger *slog.Logger
	// MovedFunc, when set, is called after each move step.
	MovedFunc func(r wire.MoveResult)
	// MasterFunc, when set, is called when mastership changes.
	MasterFunc func(master bool)

	// Schedules are the static recurring schedules (nil: none; the
	// persistent ones in Redis are always read).
	Schedules map[string]*recurring.Schedule
	// Recurring configures the recurring engine; its NowFunc is replaced
	// by the scheduler's clock (local time corrected to Redis's) and its
	// Logger defaults to Logger.
	Recurring recurring.Config
	// FiredFunc, when set, is called after each FireDue that fired or
	// found fired at least one tick.
	FiredFunc func(r recurring.Result)
}

// Scheduler is one scheduler process's loop.
type Scheduler struct {
	store *wire.Store
	cfg   Config
	log   *slog.Logger

	offset      time.Duration // Redis TIME minus local time
	master      bool
	lastRefresh time.Time

	engine       *recurring.Engine
	loaded       bool      // the engine was loaded since this scheduler became master
	lastChanged  time.Time // last read of schedules_changed
	lastFireWarn time.Time // last log of a FireDue error (at most one per Poll)
}

// changedEvery bounds how often the master reads schedules_changed.
const changedEvery = 250 * time.Millisecond

// New returns a Scheduler on store.
func New(store *wire.Store, cfg Config) *Scheduler {
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultLockTTL
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.Refresh >= cfg.LockTTL {
		cfg.Refresh = cfg.LockTTL / 3
	}
	if cfg.Poll <= 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Scheduler{store: store, cfg: cfg, log: cfg.Logger}
	rc := cfg.Recurring
	rc.NowFunc = s.redisNow
	if rc.Logger == nil {
		rc.Logger = cfg.Logger
	}
	s.engine = recurring.New(cfg.Schedules, recurring.NewStoreBackend(store, cfg.Lock), rc)
	return s
}

// Permanent reports whether err is one retrying cannot fix: a refused
// login or a missing permission.
func Permanent(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	for _, p := range []string{"NOPERM", "WRONGPASS", "NOAUTH", "WRONGTYPE"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// Run moves due jobs while it is master, and stands by otherwise, until ctx
// ends (then it releases the lock if it holds it and returns nil). Redis
// errors are retried with backoff; a permanent error (Permanent) is
// returned.
func (s *Scheduler) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	subCtx, stopSub := context.WithCancel(ctx)
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		s.listen(subCtx, wake)
	}()
	defer func() {
		stopSub()
		<-listening
	}()
	defer s.release()

	backoff := time.Duration(0)
	for {
		next, err := s.step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if Permanent(err) {
				return err
			}
			backoff = min(max(2*backoff, 100*time.Millisecond), 5*time.Second)
			s.log.Warn("scheduler: redis error, retrying", "error", err, "retry_in", backoff)
			next = time.Now().Add(backoff)
		} else {
			backoff = 0
		}
		if !s.wait(ctx, next, wake) {
			return nil
		}
	}
}

// listen forwards wake announcements. Without a subscription (pub/sub
// denied, say) the scheduler polls.
func (s *Scheduler) listen(ctx context.Context, wake chan<- struct{}) {
	sub := s.store.SubscribeDelayedWake(ctx)
	defer sub.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err := sub.Receive(rctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("scheduler: cannot subscribe to the wake channel; polling only", "error", err, "poll", s.cfg.Poll)
		}
		return
	}
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}
}

// wait sleeps until next, a wake, or the end of ctx (false). It sleeps at
// most the longer of Poll and Refresh: next may be a wall-clock time (a due
// second, a tick), and a step of the clock must not stall the loop.
func (s *Scheduler) wait(ctx context.Context, next time.Time, wake <-chan struct{}) bool {
	d := min(time.Until(next), max(s.cfg.Poll, s.cfg.Refresh))
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}

// redisNow is the local clock corrected to Redis's.
func (s *Scheduler) redisNow() time.Time { return time.Now().Add(s.offset) }

// syncClock measures the offset of Redis's TIME from the local clock.
func (s *Scheduler) syncClock(ctx context.Context) error {
	t0 := time.Now()
	rt, err := s.store.ServerTime(ctx)
	if err != nil {
		return err
	}
	t1 := time.Now()
	s.offset = rt.Sub(t0.Add(t1.Sub(t0) / 2))
	return nil
}

// refresh takes or refreshes the lock when a refresh period has passed.
func (s *Scheduler) refresh(ctx context.Context, force bool) error {
	if !force && time.Since(s.lastRefresh) < s.cfg.Refresh {
		return nil
	}
	if err := s.syncClock(ctx); err != nil {
		return err
	}
	ok, err := s.store.AcquireLock(ctx, s.cfg.Lock, s.cfg.LockTTL)
	if err != nil {
		return err
	}
	s.lastRefresh = time.Now()
	s.setMaster(ok)
	return nil
}

func (s *Scheduler) setMaster(ok bool) {
	if ok == s.master {
		return
	}
	s.master = ok
	if !ok {
		s.loaded = false
	}
	if ok {
		s.log.Info("scheduler: became master", "lock", s.cfg.Lock.Key, "value", s.cfg.Lock.Value)
	} else {
		s.log.Info("scheduler: standing by (another scheduler is master)", "lock", s.cfg.Lock.Key)
	}
	if s.cfg.MasterFunc != nil {
		s.cfg.MasterFunc(ok)
	}
}

// step refreshes the lock if due and, as master, moves everything due, a
// batch per atomic step (over as many timestamps as the batch holds),
// refreshing the lock between steps of a long backlog. It returns when to
// run again.
func (s *Scheduler) step(ctx context.Context) (time.Time, error) {
	if err := s.refresh(ctx, !s.master); err != nil {
		return time.Time{}, err
	}
	if !s.master {
		return s.lastRefresh.Add(s.cfg.Refresh), nil
	}
	tickWake, err := s.fireTicks(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if !s.master {
		return time.Now(), nil
	}
	next, err := s.moveDue(ctx)
	return minTime(next, tickWake), err
}

// fireTicks drives the recurring engine as master: load it once per
// mastership, apply schedules_changed, fire due ticks. It returns when the
// next tick is due (local clock).
func (s *Scheduler) fireTicks(ctx context.Context) (time.Time, error) {
	far := time.Now().Add(time.Hour)
	if !s.loaded {
		if err := s.engine.Load(ctx); err != nil {
			return far, err
		}
		s.loaded, s.lastChanged = true, time.Now()
		if n := len(s.engine.Entries()); n > 0 {
			s.log.Info("scheduler: recurring schedules loaded", "schedules", n)
		}
	}
	if time.Since(s.lastChanged) >= changedEvery {
		if _, err := s.engine.Refresh(ctx); err != nil {
			s.loaded = false // names were popped: reload everything
			return far, err
		}
		s.lastChanged = time.Now()
	}
	r, err := s.engine.FireDue(ctx)
	if s.cfg.FiredFunc != nil && len(r.Fired)+len(r.Already) > 0 {
		s.cfg.FiredFunc(r)
	}
	if errors.Is(err, recurring.ErrNotMaster) {
		s.setMaster(false)
		return time.Now(), nil
	}
	if err != nil {
		// The failed ticks stay due: try them again after Poll rather than
		// spinning (a job that cannot be built fails the same way again),
		// but wake for the other schedules' ticks on time.
		if time.Since(s.lastFireWarn) >= s.cfg.Poll {
			s.lastFireWarn = time.Now()
			s.log.Warn("scheduler: recurring ticks could not be fired; retrying", "error", err, "retry_in", s.cfg.Poll)
		}
		wake, now := time.Now().Add(s.cfg.Poll), s.redisNow()
		for _, e := range s.engine.Entries() {
			if e.Next.After(now) {
				wake = minTime(wake, e.Next.Add(-s.offset))
			}
		}
		return wake, nil
	}
	next, ok := s.engine.NextWake()
	if !ok {
		return far, nil
	}
	return next.Add(-s.offset), nil
}

// moveDue moves everything due as master, a batch per atomic step,
// refreshing the lock between steps. It returns when to run again.
func (s *Scheduler) moveDue(ctx context.Context) (time.Time, error) {
	o := wire.MoveOptions{Batch: s.cfg.Batch, ClassQueues: s.cfg.ClassQueues, Worker: s.cfg.Lock.Value}
	// The mover reads each step's items in the round trip of the previous
	// step's move; the move re-checks them under the lock.
	mover := s.store.NewDueMover(s.cfg.Lock, o)
	stuck, idle := 0, 0
	for {
		nextRefresh := s.lastRefresh.Add(s.cfg.Refresh)
		now := s.redisNow()
		start := time.Now()
		r, err := mover.Step(ctx, now.Unix(), now)
		if err == nil && r.Timestamps == 0 {
			// Nothing due: sleep until the earliest timestamp.
			ts, ok, err := s.store.NextDelayed(ctx)
			if err != nil {
				return time.Time{}, err
			}
			if !ok || ts > now.Unix() || idle >= 2 {
				next := minTime(nextRefresh, time.Now().Add(s.cfg.Poll))
				if ok && ts > now.Unix() {
					next = minTime(next, time.Unix(ts, 0).Add(-s.offset))
				}
				return next, nil
			}
			idle++ // it became due (or was normalized) since the step's read
			continue
		}
		idle = 0
		ts := r.First
		if errors.Is(err, wire.ErrNotMaster) {
			s.setMaster(false)
			return time.Now(), nil // try the lock again at once
		}
		if errors.Is(err, wire.ErrMoveContended) {
			s.log.Debug("scheduler: due lists changed during every move attempt; trying again", "first_due", ts)
			return time.Now().Add(10 * time.Millisecond), nil
		}
		if err != nil {
			return time.Time{}, err
		}
		if r.Moved+r.Failed > 0 {
			s.log.Debug("scheduler: delayed jobs moved", "first_due", ts, "timestamps", r.Timestamps, "moved", r.Moved, "failed", r.Failed, "duration", time.Since(start))
		}
		if r.Failed > 0 {
			s.log.Warn("scheduler: delayed items could not be enqueued and became failure records", "first_due", ts, "count", r.Failed)
		}
		if s.cfg.MovedFunc != nil {
			s.cfg.MovedFunc(r)
		}
		if r.Moved+r.Failed == 0 && r.Emptied == 0 {
			stuck++
		} else {
			stuck = 0
		}
		if stuck >= 3 {
			// A due timestamp leads the schedule, yet steps find nothing
			// to move or remove: do not spin on it.
			s.log.Warn("scheduler: a due timestamp could not be moved or removed; retrying after the poll interval", "due", ts)
			return minTime(nextRefresh, time.Now().Add(s.cfg.Poll)), nil
		}
		if err := s.refresh(ctx, false); err != nil {
			return time.Time{}, err
		}
		if !s.master {
			return time.Now(), nil
		}
		if ctx.Err() != nil {
			return time.Now(), nil
		}
	}
}

// release gives the lock up if this scheduler holds it, so a standby takes
// over at once instead of after the TTL.
func (s *Scheduler) release() {
	if !s.master {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.store.ReleaseLock(ctx, s.cfg.Lock); err != nil && !errors.Is(err, redis.ErrClosed) {
		s.log.Warn("scheduler: could not release the master lock; it expires by itself", "error", err, "ttl", s.cfg.LockTTL)
	}
	s.setMaster(false)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
