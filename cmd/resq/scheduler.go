package main

import (
	"context"
	"flag"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

const schedulerHelp = `
Run a scheduler: it moves delayed jobs (resq enqueue --in/--at, Ruby's
enqueue_at/enqueue_in, ActiveJob's set(wait:), node-resque's enqueueAt) to
their queues when due, and fires recurring schedules: those of the
--schedule FILE (resque-scheduler's YAML, the file Ruby loads with
Resque.schedule = YAML.load_file(…)) and the persistent ones in Redis
(resq schedule set, Ruby's Resque.set_schedule(…, persist: true)), which it
re-reads when changed, without a restart. Each tick is enqueued once across
all schedulers; a tick missed while no scheduler was master is caught up
once (the latest, within --catch-up-window) unless --catch-up none. Any number of schedulers may run, beside Ruby's
resque-scheduler: the one holding resque-scheduler's master lock
(<ns>:<ns>:[PREFIX:]resque_scheduler_master_lock) moves, the others stand by
and take over within about --lock-ttl of its death. Every move is one atomic
step fenced by the lock, so a killed scheduler loses and duplicates nothing.
resq work runs one too, unless --no-scheduler.

node-resque's scheduler uses a lock of its own: do not run it beside this one.

With --keyring FILE holding a signing key the recurring jobs are signed, as
resq enqueue signs, so workers that require signatures run them.

Examples:
  resq scheduler
  resq scheduler --schedule config/resque_schedule.yml --env production
  resq scheduler --lock-prefix MyApp --class-queue SendFollowUpEmail=email`

// schedulerFlags configure a Scheduler; prefix is "" for resq scheduler and
// "scheduler-" for resq work.
type schedulerFlags struct {
	prefix      string
	lockPrefix  string
	ttl         time.Duration
	refresh     time.Duration
	poll        time.Duration
	batch       int
	classQueues []string
	name        string
	schedule    string
	env         string
	catchUp     string
	window      time.Duration
}

func (s *schedulerFlags) register(fs *flagSet, env map[string]string, prefix string) {
	s.prefix = prefix
	fs.StringVar(&s.lockPrefix, prefix+"lock-prefix", env["RESQUE_SCHEDULER_MASTER_LOCK_PREFIX"], "master lock prefix `P`, as resque-scheduler's (env RESQUE_SCHEDULER_MASTER_LOCK_PREFIX)")
	newDuration(fs.FlagSet, &s.ttl, prefix+"lock-ttl", resq.DefaultSchedulerLockTTL, "master lock time to live `D`: a standby takes over at most this long after the master dies")
	newDuration(fs.FlagSet, &s.refresh, prefix+"lock-refresh", resq.DefaultSchedulerRefresh, "how often (`D`) the master renews the lock and a standby tries it; below the TTL")
	newDuration(fs.FlagSet, &s.poll, prefix+"poll", resq.DefaultSchedulerPoll, "longest wait `D` before re-reading the schedule (jobs delayed by Ruby or node-resque are moved within it; resq's wake the scheduler at once)")
	fs.IntVar(&s.batch, prefix+"batch", resq.DefaultSchedulerBatch, "due jobs moved per atomic step (`N`)")
	fs.Var(stringsValue{&s.classQueues}, "class-queue", "queue for delayed items stored without one (Ruby's class @queue), as `CLASS=QUEUE` (repeatable)")
	fs.StringVar(&s.name, prefix+"name", "", "this scheduler's lock value `NAME` (default host:pid)")
	fs.StringVar(&s.schedule, "schedule", "", "recurring schedules from `FILE` (resque-scheduler's YAML: name: {cron|every, class, queue, args, …})")
	fs.StringVar(&s.env, "env", env["RAILS_ENV"], "environment `ENV` for schedules with rails_env/env (env RAILS_ENV); without it such schedules never fire")
	fs.StringVar(&s.catchUp, prefix+"catch-up", "latest", "ticks missed while no scheduler was master: `latest|none` (latest fires the most recent one once)")
	newDuration(fs.FlagSet, &s.window, prefix+"catch-up-window", resq.DefaultCatchUpWindow, "how old (`D`) a missed tick may be and still be caught up")
}

func (s *schedulerFlags) config(cmd string, c *cli) (resq.SchedulerConfig, error) {
	cq, err := parseClassQueues(cmd, s.classQueues)
	if err != nil {
		return resq.SchedulerConfig{}, err
	}
	if s.batch < 1 {
		return resq.SchedulerConfig{}, usagef(cmd, "--%sbatch must be at least 1", s.prefix)
	}
	if s.refresh >= s.ttl {
		return resq.SchedulerConfig{}, usagef(cmd, "--%slock-refresh (%s) must be shorter than --%slock-ttl (%s), e.g. a third of it", s.prefix, s.refresh, s.prefix, s.ttl)
	}
	if s.ttl < time.Second {
		return resq.SchedulerConfig{}, usagef(cmd, "--%slock-ttl must be at least 1s", s.prefix)
	}
	if s.poll <= 0 {
		return resq.SchedulerConfig{}, usagef(cmd, "--%spoll must be positive (e.g. 1s)", s.prefix)
	}
	cfg := resq.SchedulerConfig{LockPrefix: s.lockPrefix, LockTTL: s.ttl, Refresh: s.refresh, Poll: s.poll,
		BatchSize: s.batch, ClassQueues: cq, Name: s.name, Logger: c.logger, Env: s.env, CatchUpWindow: s.window}
	switch s.catchUp {
	case "latest":
	case "none":
		cfg.CatchUp = resq.CatchUpNone
	default:
		return cfg, usagef(cmd, "--%scatch-up %q: want latest or none", s.prefix, s.catchUp)
	}
	if s.window < 10*time.Second {
		return cfg, usagef(cmd, "--%scatch-up-window must be at least 10s", s.prefix)
	}
	if s.schedule != "" {
		sch, err := resq.LoadScheduleFile(s.schedule)
		if err != nil {
			return cfg, usagef(cmd, "--schedule: %v", err)
		}
		cfg.Schedule = sch
	}
	return cfg, nil
}

func (c *cli) cmdScheduler(ctx context.Context, args []string) error {
	fs := c.newFlags("scheduler", schedulerHelp)
	var sf schedulerFlags
	sf.register(fs, c.env, "")
	var keyringPath string
	c.keyringFlag(fs, &keyringPath, "to sign recurring jobs with")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	cfg, err := sf.config("scheduler", c)
	if err != nil {
		return err
	}
	if cfg.Keyring, err = loadKeyring("scheduler", keyringPath); err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := c.checkRedis(ctx, conn); err != nil {
		return err
	}
	s, err := resq.NewScheduler(conn, cfg)
	if err != nil {
		return usagef("scheduler", "%v", err)
	}
	c.logger.Info("resq scheduler starting", "redis", conn.String(), "lock_ttl", cfg.LockTTL, "lock_refresh", cfg.Refresh, "poll", cfg.Poll, "batch", cfg.BatchSize,
		"schedule", orDash(sf.schedule), "schedules", cfg.Schedule.Len(), "env", orDash(cfg.Env), "catch_up", sf.catchUp, "signing", cfg.Keyring.CanSign())
	sigs, stopSigs := c.sys.Signals(workerSignals()...)
	defer stopSigs()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	for {
		select {
		case err := <-done:
			return err
		case sig := <-sigs:
			if sig == sigQuit || isFastStop(sig) {
				c.logger.Info("stopping: releasing the master lock", "signal", sig.String())
				cancel()
			}
		}
	}
}

// startScheduler runs a scheduler beside resq work's worker; stop ends it
// and waits.
func (c *cli) startScheduler(ctx context.Context, conn *resq.Conn, cfg resq.SchedulerConfig) (stop func(), err error) {
	s, err := resq.NewScheduler(conn, cfg)
	if err != nil {
		return nil, usagef("work", "%v", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			c.logger.Error("scheduler stopped", "error", err)
		}
	}, nil
}

// checkNoScheduler refuses scheduler flags given with --no-scheduler.
func checkNoScheduler(fs *flagSet) error {
	var bad string
	fs.Visit(func(f *flag.Flag) {
		if bad == "" && (strings.HasPrefix(f.Name, "scheduler-") || f.Name == "class-queue" || f.Name == "schedule" || f.Name == "env") {
			bad = f.Name
		}
	})
	if bad != "" {
		return usagef("work", "--%s configures the scheduler, which --no-scheduler turns off; drop one of them", bad)
	}
	return nil
}
