package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

const workHelp = `
Run a worker. Each --exec CLASS=PATH registers an external program as the
handler of jobs of class CLASS: it is run directly (never through a shell)
with the job's args (a JSON array) on stdin and RESQ_JOB_CLASS,
RESQ_JOB_QUEUE and RESQ_JOB_ID in its environment. Exit status 0 is success;
any other exit is a failure whose error is the tail of its stderr. Jobs of
any other class become failures (Resq::UnknownJobClass) and never run.

Jobs enqueued by Rails' Resque adapter (class
ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper) run by their ActiveJob
job_class: --exec WelcomeJob=PATH runs them with the ActiveJob arguments,
decoded to plain JSON (symbol keys become plain keys, Symbol and Time values
strings), on stdin, RESQ_JOB_CLASS=WelcomeJob and RESQ_JOB_ID set to
ActiveJob's job_id. An unregistered job_class fails naming it.

Go programs register typed handlers with the resq library instead.

resq work also runs a scheduler (see 'resq scheduler --help'), which moves
delayed jobs to their queues when due while it holds resque-scheduler's
master lock, and fires the recurring schedules of --schedule FILE and of
Redis; --no-scheduler turns it off. --class-queue, --schedule, --env and
the --scheduler-* flags configure it; with --keyring holding a signing key
it signs the recurring jobs.

With --keyring FILE (or RESQ_KEYRING) holding signing keys, every job must
carry a valid signature: unsigned, forged, altered or moved jobs become
failures (Resq::SignatureError) and never run, except unsigned jobs on the
queues given to --allow-unsigned (for Ruby or Node producers that do not sign
yet). Encrypted args are decrypted for the handler only: an --exec program
gets the plaintext on stdin, and its error messages are scrubbed of the
values. --replay-window D runs each job id at most once within D. Payloads
over the limits (--max-payload, --max-depth, --max-args) fail without running.

Signals (as Ruby Resque): QUIT finishes running jobs, then exits 0; TERM and
INT stop at once (running jobs are requeued) and exit 0; a second TERM or
INT while stopping exits 1 at once (the next worker recovers the jobs);
USR2 pauses fetching; CONT resumes.

Limits on each job's processes: --timeout (wall clock: SIGTERM to the
process group, SIGKILL to the whole job 2 s later), --memory, --cpu,
--max-procs, --max-files, --max-output (bytes kept for the failure record)
and --max-output-total (a job writing more is killed). They are enforced
with cgroup v2 when the worker runs in a delegated cgroup, else with rlimits
(a process limit then runs each job under a uid of its own, which needs
root; resq work then checks at start-up that such a uid can run each
program and enter the working directory, and refuses to start if not); the
worker logs which, per class, at start-up. If the worker dies (even by
SIGKILL), what its jobs started is killed too. A job that hits a
limit fails with a record naming it (Resq::ResourceLimit: "memory limit
256 MiB exceeded", Resq::Timeout: "timeout after 30s"); processes a job
leaves behind are killed and fail it. --class-concurrency CLASS=N caps how
many jobs of CLASS run at once across all workers.

Retries (as resque-retry, on its keys): --retry CLASS=POLICY retries failed
jobs of CLASS through the delayed queue ('*' for every class without its own
policy); only the last failed attempt is recorded in the failed list. POLICY
is comma-separated KEY:VALUE: limit:N|forever (retries after the first run;
default 1), delay:D, delays:D;D;... (the last repeats),
backoff:exponential with base:D and max:D, backoff:resque (0, 1m, 10m, 1h,
3h, 6h; limit 6), jitter:F (0 to 1), fatal-exit:N;N (exit codes never
retried), retry-exit:N;N (only these are retried), expire:D (the attempt
counter's TTL beyond the longest wait).

Example:
  resq work --queues critical,default --concurrency 4 \
    --exec ResizeImage=/usr/local/bin/resize-image --timeout 30s \
    --memory 512MiB --cpu 20s --max-procs 32 --class-concurrency ResizeImage=2 \
    --retry 'ResizeImage=limit:5,backoff:exponential,base:10s,max:1h,jitter:0.2,fatal-exit:2'`

// execSpec is one --exec CLASS=PATH.
type execSpec struct{ class, path string }

func (c *cli) cmdWork(ctx context.Context, args []string) error {
	fs := c.newFlags("work", workHelp).args(0, 0, "")
	queuesDefault := c.env["QUEUES"]
	if queuesDefault == "" {
		queuesDefault = c.env["QUEUE"]
	}
	var (
		queues      string
		concurrency int
		execs       []string
		timeout     time.Duration
		jobLim      jobLimitFlags
		deadJobs    resq.DeadJobPolicy
		poll        time.Duration
		stopTimeout time.Duration
		keyringPath string
		unsigned    string
		replay      time.Duration
		lim         limitFlags
		retries     []string
	)
	pollDefault := resq.DefaultPollInterval
	if v := c.env["INTERVAL"]; v != "" {
		d, err := parseDuration(v)
		if err != nil {
			return usagef("work", "INTERVAL=%s: %v", v, err)
		}
		pollDefault = d
	}
	fs.StringVar(&queues, "queues", queuesDefault, "`QUEUES` to work, in priority order: comma-separated names, globs (*, mail_*) and exclusions (!low) (env QUEUES or QUEUE)")
	fs.IntVar(&concurrency, "concurrency", resq.DefaultConcurrency, "`N` jobs at once; each slot registers as one Resque worker")
	fs.Var(stringsValue{&execs}, "exec", "run the executable at PATH for jobs of CLASS, given as `CLASS=PATH` (repeatable)")
	newDuration(fs.FlagSet, &timeout, "timeout", 0, "kill a job's process after `D` (e.g. 30s; a bare number is seconds) and record a failure (default 30m)")
	jobLim.register(fs.FlagSet)
	fs.Var(deadJobsValue{&deadJobs}, "dead-jobs", "what happens to the job of a dead worker found at start-up: `requeue|fail` (fail records Resque::DirtyExit, as Ruby does)")
	newDuration(fs.FlagSet, &poll, "poll", pollDefault, "longest wait `D` between polls of empty queues (env INTERVAL, seconds)")
	newDuration(fs.FlagSet, &stopTimeout, "stop-timeout", resq.DefaultStopTimeout, "after TERM/INT, how long (`D`) running jobs get before they are requeued")
	c.keyringFlag(fs, &keyringPath, "to verify signatures and decrypt args with")
	fs.StringVar(&unsigned, "allow-unsigned", "", "`QUEUES` (comma-separated names and globs) whose unsigned jobs run even though the keyring has signing keys; signed jobs there are still verified")
	newDuration(fs.FlagSet, &replay, "replay-window", 0, "run each job id at most once within `D` (e.g. 24h; off by default)")
	lim.register(fs, "fail")
	fs.Var(stringsValue{&retries}, "retry", retryFlagHelp)
	var sched schedulerFlags
	var noScheduler, noHold bool
	sched.register(fs, c.env, "scheduler-")
	fs.BoolVar(&noHold, "no-hold-ahead", false, "hold no jobs ahead: every slot waits for Redis between two jobs (slower; keeps strict queue priorities and every waiting job in its queue)")
	fs.BoolVar(&noScheduler, "no-scheduler", false, "do not run a scheduler beside the worker (delayed jobs then need resq scheduler or Ruby's)")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	schedCfg, err := sched.config("work", c)
	if err != nil {
		return err
	}
	if noScheduler {
		if err := checkNoScheduler(fs); err != nil {
			return err
		}
	}
	limits, err := lim.limits("work")
	if err != nil {
		return err
	}
	retryCfg, err := parseRetryFlags(retries)
	if err != nil {
		return err
	}
	keyring, err := loadKeyring("work", keyringPath)
	if err != nil {
		return err
	}
	if unsigned != "" && !keyring.CanVerify() {
		return usagef("work", "--allow-unsigned only matters with a --keyring that holds signing keys: without one, no signature is checked on any queue")
	}
	childLimits, classCaps, err := jobLim.limits()
	if err != nil {
		return err
	}
	if queues == "" {
		return usagef("work", "no queues to work: give --queues (e.g. --queues critical,default or --queues '*') or set QUEUES")
	}
	if concurrency < 1 {
		return usagef("work", "--concurrency must be at least 1")
	}
	if len(execs) == 0 {
		return usagef("work", "resq work needs at least one --exec CLASS=PATH (Go programs register handlers with the resq library)")
	}
	specs, err := parseExecs(execs)
	if err != nil {
		return err
	}
	// Refuse to start when a job's own user could not run its program (a
	// dedicated uid per job, under --max-procs as root without cgroup v2),
	// rather than fail every job.
	cmds := make(map[string]resq.Command, len(specs))
	for _, s := range specs {
		cmds[s.class] = resq.Command{Path: s.path, Limits: childLimits}
	}
	if err := resq.CheckCommands(cmds); err != nil {
		return fmt.Errorf("work: not starting: %w", err)
	}

	if c.env["RESQ_NO_TITLE"] != "1" {
		// Re-executes this binary in place (same pid) so that the command
		// line holds resq.ProcessTitle ("resque-3.0.0…"), which Ruby workers
		// on this host look for before pruning; nil when that is already so.
		if err := resq.EnsureProcessTitle(); err != nil {
			c.logger.Warn("could not set the process title; Ruby workers on this host may prune this worker", "error", err)
		}
	}

	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := c.checkRedis(ctx, conn); err != nil {
		return err
	}
	cfg := resq.WorkerConfig{
		Queues:           []string{queues},
		Concurrency:      concurrency,
		PollInterval:     poll,
		StopTimeout:      stopTimeout,
		DeadJobs:         deadJobs,
		ClassConcurrency: classCaps,
		DisableHoldAhead: noHold,
		Logger:           c.logger,
		Keyring:          keyring,
		ReplayWindow:     replay,
		Limits:           limits,
		Retry:            retryCfg,
	}
	if unsigned != "" {
		cfg.AllowUnsigned = []string{unsigned}
	}
	w, err := resq.NewWorker(conn, cfg)
	if err != nil {
		return usagef("work", "%v", err)
	}
	classes := make([]string, 0, len(specs))
	for _, s := range specs {
		w.HandleCommand(s.class, resq.Command{Path: s.path, Timeout: timeout, Limits: childLimits})
		classes = append(classes, s.class)
	}
	attrs := []any{"redis", conn.String(), "workers", len(w.IDs()), "queues", queues,
		"handlers", strings.Join(classes, ","), "dead_jobs", deadJobsValue{&deadJobs}.String()}
	if timeout > 0 {
		attrs = append(attrs, "timeout", timeout)
	}
	// How each limit is enforced (cgroup v2 or rlimits) follows in a "job
	// isolation" line per class, from the worker.
	attrs = append(attrs, "job_limits", jobLim.describe())
	if len(classCaps) > 0 {
		attrs = append(attrs, "class_concurrency", strings.Join(jobLim.classCaps, ","))
	}
	switch {
	case keyring == nil:
		attrs = append(attrs, "signatures", "not checked (no --keyring)")
	case !keyring.CanVerify():
		attrs = append(attrs, "keyring", keyringPath, "keys", describeKeyring(keyring), "signatures", "not checked (the keyring has no signing keys)")
	case unsigned != "":
		attrs = append(attrs, "keyring", keyringPath, "keys", describeKeyring(keyring), "signatures", "required", "allow_unsigned", unsigned)
	default:
		attrs = append(attrs, "keyring", keyringPath, "keys", describeKeyring(keyring), "signatures", "required")
	}
	if replay > 0 {
		attrs = append(attrs, "replay_window", replay)
	}
	c.logger.Info("resq work starting", attrs...)
	if !noScheduler {
		schedCfg.Keyring = keyring
		stop, err := c.startScheduler(ctx, conn, schedCfg)
		if err != nil {
			return err
		}
		defer stop()
	}
	return c.runWorker(ctx, w)
}

// runWorker runs w until it stops, acting on signals as Ruby Resque does.
func (c *cli) runWorker(ctx context.Context, w *resq.Worker) error {
	sigs, stopSigs := c.sys.Signals(workerSignals()...)
	defer stopSigs()
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	stopping := false
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("worker: %w", err)
			}
			return nil
		case sig := <-sigs:
			switch {
			case sig == sigQuit:
				c.logger.Info("QUIT received: finishing running jobs, then exiting")
				go w.Shutdown(context.WithoutCancel(ctx)) // Run returning ends the loop
			case isFastStop(sig) && stopping:
				c.logger.Warn("second stop signal: exiting now; jobs still running will be recovered by the next worker", "signal", sig.String())
				return exitCode(exitFailure)
			case isFastStop(sig):
				stopping = true
				c.logger.Info("stopping: running jobs are cancelled and requeued; send the signal again to exit at once", "signal", sig.String())
				cancelRun()
			case sig == sigUSR2:
				c.logger.Info("USR2 received: paused; no new jobs are taken until CONT")
				w.Pause()
			case sig == sigCont:
				c.logger.Info("CONT received: resumed")
				w.Resume()
			}
		}
	}
}

// parseExecs checks every --exec CLASS=PATH: PATH must be an executable
// file; it is made absolute so that no $PATH search ever happens.
func parseExecs(execs []string) ([]execSpec, error) {
	seen := map[string]bool{}
	var out []execSpec
	for _, e := range execs {
		class, path, ok := strings.Cut(e, "=")
		class, path = strings.TrimSpace(class), strings.TrimSpace(path)
		if !ok || class == "" || path == "" {
			return nil, usagef("work", "--exec %q: want CLASS=PATH, e.g. --exec ResizeImage=/usr/local/bin/resize-image", e)
		}
		if seen[class] {
			return nil, usagef("work", "--exec: class %s is given twice", class)
		}
		seen[class] = true
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, usagef("work", "--exec %s=%s: %v", class, path, err)
		}
		st, err := os.Stat(abs)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, usagef("work", "--exec %s=%s: %s does not exist (PATH is a file path, run directly with no shell and no $PATH search)", class, path, abs)
		case err != nil:
			return nil, usagef("work", "--exec %s=%s: %v", class, path, err)
		case st.IsDir():
			return nil, usagef("work", "--exec %s=%s: %s is a directory, not a program", class, path, abs)
		case st.Mode()&0o111 == 0:
			return nil, usagef("work", "--exec %s=%s: %s is not executable (chmod +x %s)", class, path, abs, abs)
		}
		out = append(out, execSpec{class: class, path: abs})
	}
	return out, nil
}
