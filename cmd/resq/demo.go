package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/web"
)

// demoNamespace keeps the demo's jobs away from real queues (a real
// "critical" queue may have real ChargeCard workers) unless --namespace or
// RESQ_NAMESPACE says otherwise.
const demoNamespace = "resq-demo"

// demoTimeout bounds the wait for the sample jobs.
const demoTimeout = 60 * time.Second

const demoHelp = `
A working system in one command. Unless --redis or REDIS_URL is given, resq
demo starts an embedded in-memory Redis (miniredis). It enqueues sample jobs
on the queues critical, default and low, runs a worker with Go handlers,
prints one line per job (class, queue, id, duration, outcome; never argument
values) and then a summary. The classes:

  SendWelcomeEmail  default   always succeeds
  ResizeImage       low       always succeeds
  ChargeCard        critical  fails for every fifth order (a card decline)
  DeleteEverything  default   never registered: the worker refuses it and
                              records a failure, because only registered
                              classes run

Jobs go to namespace "resq-demo" unless --namespace or RESQ_NAMESPACE is
given, so a demo against a real Redis never touches your queues.

The dashboard is served on --listen (default 127.0.0.1:5678, or a free port
if that one is taken; loopback only, no login because nothing else can reach
it). With the dashboard on, the demo keeps running after the sample jobs,
enqueueing a few jobs a second, until Ctrl-C. With --listen "" it exits 0
once every sample job is done; --duration D keeps it running for D either
way. Ctrl-C stops it cleanly.

Examples:
  resq demo                         # then open http://127.0.0.1:5678/
  resq demo --listen "" --jobs 50   # run the sample jobs and exit
  resq demo --duration 5m
  REDIS_URL=redis://127.0.0.1:6379/0 resq demo`

// demo sample job arguments.
type welcomeEmail struct {
	UserID int    `json:"user_id"`
	Email  string `json:"email"`
}

func (a welcomeEmail) Validate() error {
	if a.UserID <= 0 || !strings.Contains(a.Email, "@") {
		return errors.New("a welcome email needs a user_id and an email address")
	}
	return nil
}

type resizeImage struct {
	ImageID int `json:"image_id"`
	Width   int `json:"width"`
	Height  int `json:"height"`
}

type chargeCard struct {
	OrderID     int    `json:"order_id"`
	AmountCents int    `json:"amount_cents"`
	Currency    string `json:"currency"`
}

// demoJob is one sample job to enqueue.
type demoJob struct {
	queue, class string
	arg          any
}

// sampleJob returns the i-th sample job (i from 0); every fifth ChargeCard
// order is declined.
func sampleJob(i int) demoJob {
	switch i % 3 {
	case 0:
		return demoJob{"critical", "ChargeCard", chargeCard{OrderID: 5000 + i/3, AmountCents: 1999 + 100*(i%7), Currency: "EUR"}}
	case 1:
		return demoJob{"default", "SendWelcomeEmail", welcomeEmail{UserID: 1000 + i, Email: fmt.Sprintf("user%d@example.com", 1000+i)}}
	default:
		return demoJob{"low", "ResizeImage", resizeImage{ImageID: 700 + i, Width: 640, Height: 480}}
	}
}

func (c *cli) cmdDemo(ctx context.Context, args []string) error {
	fs := c.newFlags("demo", demoHelp).args(0, 0, "")
	var (
		jobs        int
		duration    time.Duration
		listen      string
		redisListen string
	)
	fs.IntVar(&jobs, "jobs", 24, "how many sample jobs (`N`) to enqueue; the last one is the refused DeleteEverything")
	newDuration(fs.FlagSet, &duration, "duration", 0, "keep running for `D` after the sample jobs, enqueueing a few jobs a second (0: exit when they are done)")
	fs.StringVar(&listen, "listen", web.DefaultListen, "dashboard `ADDR` (loopback only; \"\" turns the dashboard off)")
	fs.StringVar(&redisListen, "redis-listen", "127.0.0.1:0", "`ADDR` of the embedded Redis (port 0: any free port); ignored with --redis")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if jobs < 1 {
		return usagef("demo", "--jobs must be at least 1")
	}
	durationSet := false
	fs.Visit(func(f *flag.Flag) { durationSet = durationSet || f.Name == "duration" })
	if listen != "" {
		if err := web.CheckListen(listen, web.Users{}); err != nil {
			return usagef("demo", "--listen %s: %v (the demo dashboard has no login, so it only listens on loopback)", listen, err)
		}
		if !durationSet {
			duration = forever
		}
	}
	ns := c.g.namespace
	if !c.g.namespaceExplicit {
		ns = demoNamespace
	}
	// Job failures are shown as event lines; the worker's own warnings
	// about them would say the same twice.
	logger := c.logger
	if !c.g.levelExplicit {
		logger = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}

	url := string(c.g.redis)
	embedded := !c.g.redisExplicit
	if embedded {
		m := miniredis.NewMiniRedis()
		if err := m.StartAddr(redisListen); err != nil {
			return fmt.Errorf("start the embedded Redis on %s: %w", redisListen, err)
		}
		defer m.Close()
		url = "redis://" + m.Addr() + "/0"
	}
	conn, err := resq.Open(resq.ConnConfig{URL: url, Namespace: ns, Logger: logger})
	if err != nil {
		return usagef("", "--redis: %v", err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	d := &demo{c: c, conn: conn, admin: resq.NewAdmin(conn), embedded: embedded, quiet: c.g.json,
		classOf: map[string]string{}, counts: map[string]int{}}
	if d.client, err = resq.NewClient(conn, resq.ClientConfig{Logger: logger, Middleware: []resq.EnqueueMiddleware{d.remember}}); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return d.run(ctx, jobs, duration, listen, logger)
}

// forever is the --duration of a demo that runs until Ctrl-C.
const forever = time.Duration(1<<63 - 1)

// listenDashboard listens on addr, or on a free loopback port when addr's
// port is taken.
func listenDashboard(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	host, _, _ := net.SplitHostPort(addr)
	if host == "" {
		host = "127.0.0.1"
	}
	if ln2, err2 := net.Listen("tcp", net.JoinHostPort(host, "0")); err2 == nil {
		return ln2, nil
	}
	return nil, err
}

type demo struct {
	c        *cli
	conn     *resq.Conn
	admin    *resq.Admin
	client   *resq.Client
	embedded bool
	quiet    bool // --json: no event lines, one document at the end

	mu      sync.Mutex
	classOf map[string]string // class of each job this demo enqueued, by id
	counts  map[string]int    // outcomes of this demo's jobs: done, failed, rejected
	next    int               // index of the next sample job
}

func (d *demo) printf(format string, args ...any) {
	if !d.quiet {
		fmt.Fprintf(d.c.stdout, format, args...)
	}
}

// onJobDone prints one line per finished job: class, queue, id, duration
// and outcome, never argument values. The worker reports unregistered
// classes as resq.ClassUnknown (a hostile class name must not reach logs
// or metrics); the demo names the class it enqueued itself.
func (d *demo) onJobDone(ev resq.JobEvent) {
	d.mu.Lock()
	class, ours := d.classOf[ev.ID]
	outcome := ev.Outcome
	if outcome == resq.OutcomeFailed && ev.Exception == resq.ExceptionUnknownClass {
		outcome = "rejected"
	}
	if ours && outcome != resq.OutcomeRequeued {
		d.counts[outcome]++
	}
	d.mu.Unlock()
	if !ours {
		class = ev.Class
	}
	detail := ""
	switch outcome {
	case "rejected":
		detail = "  " + ev.Exception + ": never run, no handler is registered for this class"
	case resq.OutcomeFailed:
		detail = "  " + ev.Exception
	}
	d.printf("  %-8s %-17s %-9s id=%s  %6s%s\n", outcome, class, ev.Queue, orDash(ev.ID), ev.Duration.Round(time.Millisecond), detail)
}

// remember records each job's class before it reaches Redis, where the
// worker may finish it at once.
func (d *demo) remember(next resq.EnqueueFunc) resq.EnqueueFunc {
	return func(ctx context.Context, job *resq.Job) error {
		d.mu.Lock()
		d.classOf[job.ID] = job.Class
		d.mu.Unlock()
		return next(ctx, job)
	}
}

// finished is how many of this demo's jobs have finished.
func (d *demo) finished() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts["done"] + d.counts[resq.OutcomeFailed] + d.counts["rejected"] + d.counts[resq.OutcomeSkipped]
}

func (d *demo) register(w *resq.Worker) {
	pause := func(ctx context.Context, lo, hi int) error {
		t := time.NewTimer(time.Duration(lo+rand.IntN(hi-lo+1)) * time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		}
	}
	resq.Handle(w, "SendWelcomeEmail", func(ctx context.Context, a welcomeEmail) error {
		return pause(ctx, 20, 80)
	})
	resq.Handle(w, "ResizeImage", func(ctx context.Context, a resizeImage) error {
		return pause(ctx, 40, 120)
	})
	resq.Handle(w, "ChargeCard", func(ctx context.Context, a chargeCard) error {
		if err := pause(ctx, 20, 60); err != nil {
			return err
		}
		if a.OrderID%5 == 0 {
			// The message names no argument values: failure records and
			// logs are read by people who need not see them.
			return resq.Fail("CardDeclined", "card declined by the payment provider (the demo declines every fifth order)")
		}
		return nil
	})
	// DeleteEverything is deliberately not registered.
}

// enqueue pushes n sample jobs, the refused one last when withRefused.
func (d *demo) enqueue(ctx context.Context, n int, withRefused bool) (map[string]int, error) {
	byClass := map[string]int{}
	for i := 0; i < n; i++ {
		j := demoJob{"default", "DeleteEverything", map[string]bool{"confirm": true}}
		if !withRefused || i < n-1 {
			d.mu.Lock()
			j = sampleJob(d.next)
			d.next++
			d.mu.Unlock()
		}
		if _, err := d.client.Enqueue(ctx, j.queue, j.class, j.arg); err != nil {
			return byClass, fmt.Errorf("enqueue sample job: %w", err)
		}
		byClass[j.class+" → "+j.queue]++
	}
	return byClass, nil
}

func (d *demo) run(ctx context.Context, jobs int, duration time.Duration, listen string, logger *slog.Logger) error {
	c := d.c
	started := time.Now()
	before, err := d.admin.Stats(ctx)
	if err != nil {
		return fmt.Errorf("demo: read stats: %w", err)
	}
	failBase, err := d.admin.FailureCount(ctx)
	if err != nil {
		return fmt.Errorf("demo: count failures: %w", err)
	}
	where := fmt.Sprintf("Redis %s (namespace %q)", d.conn, d.conn.Namespace())
	if d.embedded {
		where = fmt.Sprintf("an embedded in-memory Redis at %s (namespace %q)", redisAddr(d.conn), d.conn.Namespace())
	}
	d.printf("resq demo: using %s\n\n", where)

	metrics := web.NewMetrics(d.conn)
	w, err := resq.NewWorker(d.conn, resq.WorkerConfig{
		Queues:        []string{"critical", "default", "low"},
		Concurrency:   4,
		PollInterval:  100 * time.Millisecond,
		OnJobDoneFunc: func(ev resq.JobEvent) { metrics.ObserveJob(ev); d.onJobDone(ev) },
		Logger:        logger,
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d.register(w)

	byClass, err := d.enqueue(ctx, jobs, true)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	d.printf("enqueued %d sample jobs:\n", jobs)
	for _, k := range sortedKeys(byClass) {
		d.printf("  %3d × %s\n", byClass[k], k)
	}
	d.printf("\nrunning a worker with 4 slots on queues critical, default, low; handlers: ChargeCard, ResizeImage, SendWelcomeEmail\n\n")

	sigs, stopSigs := c.sys.Signals(stopSignals()...)
	defer stopSigs()
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	runDone := make(chan error, 1)
	go func() { runDone <- w.Run(runCtx) }()
	if listen != "" {
		h, err := web.New(d.conn, web.Config{Logger: logger, Metrics: metrics})
		if err != nil {
			return fmt.Errorf("demo: dashboard: %w", err)
		}
		ln, err := listenDashboard(listen)
		if err != nil {
			return fmt.Errorf("demo: dashboard: %w", err)
		}
		webCtx, stopWeb := context.WithCancel(context.WithoutCancel(ctx))
		webDone := make(chan error, 1)
		go func() { webDone <- web.Serve(webCtx, ln, h) }()
		defer func() { stopWeb(); <-webDone }()
		d.printf("dashboard: http://%s/  (metrics: http://%s/metrics)\n\n", ln.Addr(), ln.Addr())
	}

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(demoTimeout)
	interrupted := false
	var runErr error
	workerGone := false

	// Phase 1: until the sample jobs are done.
wait:
	for {
		select {
		case <-tick.C:
			if d.finished() >= jobs {
				break wait
			}
		case sig := <-sigs:
			d.printf("\n%s: stopping\n", sig)
			interrupted = true
			break wait
		case <-ctx.Done():
			interrupted = true
			break wait
		case runErr = <-runDone:
			workerGone = true
			break wait
		case <-deadline:
			cancelRun()
			<-runDone
			return fmt.Errorf("demo: the sample jobs did not finish within %s (is pause-all-workers set in namespace %q, or are other workers taking the jobs?)", demoTimeout, d.conn.Namespace())
		}
	}

	// Phase 2: keep running for --duration, a few new jobs a second.
	if duration > 0 && !interrupted && !workerGone {
		if duration == forever {
			d.printf("\nall %d sample jobs are done. Keeping Redis, the worker and the dashboard running (Ctrl-C stops).\n", jobs)
		} else {
			d.printf("\nall %d sample jobs are done. Keeping Redis and the worker running for %s (Ctrl-C stops).\n", jobs, duration)
		}
		if d.embedded {
			d.printf("In another terminal, try:\n")
		} else {
			d.printf("In another terminal, with the same --redis or REDIS_URL, try:\n")
		}
		for _, cmd := range d.nextCommands() {
			d.printf("  %s\n", cmd)
		}
		d.printf("\n")
		end := time.After(duration)
		feed := time.NewTicker(350 * time.Millisecond)
		defer feed.Stop()
	keep:
		for {
			select {
			case <-feed.C:
				if _, err := d.enqueue(ctx, 1, false); err != nil {
					logger.Error("demo: enqueue failed", "error", err)
				}
			case <-end:
				break keep
			case sig := <-sigs:
				d.printf("\n%s: stopping\n", sig)
				interrupted = true
				break keep
			case <-ctx.Done():
				interrupted = true
				break keep
			case runErr = <-runDone:
				workerGone = true
				break keep
			}
		}
	}

	if !workerGone {
		if interrupted {
			cancelRun() // fast stop: running jobs are requeued
		} else {
			go w.Shutdown(context.WithoutCancel(ctx)) // finish running jobs; Run returning ends the wait
		}
		select {
		case runErr = <-runDone:
		case sig := <-sigs:
			d.printf("%s again: exiting now\n", sig)
			return exitCode(exitFailure)
		}
	}
	if runErr != nil {
		return fmt.Errorf("demo: worker: %w", runErr)
	}
	return d.summary(context.WithoutCancel(ctx), before, failBase, time.Since(started), interrupted)
}

func (d *demo) summary(ctx context.Context, before resq.Stats, failBase int64, took time.Duration, interrupted bool) error {
	c := d.c
	st, err := d.admin.Stats(ctx)
	if err != nil {
		return fmt.Errorf("demo: read stats: %w", err)
	}
	fails, err := d.admin.Failures(ctx, failBase, 1000)
	if err != nil {
		return fmt.Errorf("demo: read failures: %w", err)
	}
	d.mu.Lock()
	counts := map[string]int{"done": d.counts["done"], "failed": d.counts["failed"], "rejected": d.counts["rejected"], "finished": 0}
	counts["finished"] = counts["done"] + counts["failed"] + counts["rejected"]
	d.mu.Unlock()
	processed := st.Processed - before.Processed
	if c.g.json {
		if fails == nil {
			fails = []resq.FailureView{}
		}
		return c.printJSON(map[string]any{
			"redis": d.conn.String(), "namespace": d.conn.Namespace(), "embedded": d.embedded,
			"interrupted": interrupted, "processed": processed, "outcomes": counts,
			"stats": st, "failures": fails,
		})
	}
	d.printf("\nprocessed %d jobs in %s: %d done, %d failed, %d rejected\n",
		processed, took.Round(10*time.Millisecond), counts["done"], counts["failed"], counts["rejected"])
	d.printf("\nResque.info (resq stats):\n")
	c.writeStats(st)
	if len(fails) > 0 {
		d.printf("\nfailures recorded by this run (resq failed list):\n")
		t := newTable(c.stdout, "INDEX", "QUEUE", "CLASS", "EXCEPTION", "ERROR")
		for _, f := range fails {
			t.row(fmt.Sprint(f.Index), f.Queue, orDash(f.Job.Class), f.Exception, firstLine(f.Error, 90))
		}
		t.flush()
	}
	d.printf("\nnext:\n")
	d.printf("  run it against your own Redis:  REDIS_URL=redis://host:6379/0 resq demo\n")
	d.printf("    (its jobs go to namespace %q, away from your queues)\n", demoNamespace)
	if d.embedded {
		d.printf("  keep it running to explore:     resq demo --duration 5m --redis-listen 127.0.0.1:6390\n")
		d.printf("    then, while it runs, in another terminal:\n")
		for _, cmd := range d.nextCommandsFor("redis://127.0.0.1:6390/0") {
			d.printf("      %s\n", cmd)
		}
		d.printf("    (the embedded Redis lives only as long as the demo)\n")
	} else {
		d.printf("  explore what it left (with the same --redis or REDIS_URL):\n")
		for _, cmd := range d.nextCommands() {
			d.printf("      %s\n", cmd)
		}
	}
	d.printf("  run your own program as a handler: resq work --queues default --exec MyJob=/path/to/program\n")
	return nil
}

// nextCommands are resq commands pointed at the demo's Redis. A Redis URL
// given by the user is not repeated (it may hold a password).
func (d *demo) nextCommands() []string {
	if d.embedded {
		return d.nextCommandsFor("redis://" + redisAddr(d.conn) + "/0")
	}
	return d.nextCommandsFor("")
}

func (d *demo) nextCommandsFor(url string) []string {
	prefix := "resq"
	if url != "" {
		prefix += " --redis " + url
	}
	if ns := d.conn.Namespace(); ns != resq.DefaultNamespace {
		prefix += " --namespace " + ns
	}
	return []string{
		prefix + " queues",
		prefix + " peek default",
		prefix + " workers",
		prefix + " stats",
		prefix + " failed list",
		prefix + " failed retry --all",
	}
}

// redisAddr is host:port of an embedded Redis's URL.
func redisAddr(conn *resq.Conn) string {
	s := strings.TrimPrefix(conn.String(), "redis://")
	host, _, _ := strings.Cut(s, "/")
	return host
}
