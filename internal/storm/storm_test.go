package storm_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/internal/wire"
)

func TestMain(m *testing.M) { testkit.Main(m, nil) }

// scale is the size of one storm: the short form runs in CI; RESQ_STORM=long
// runs the long form (docs/operations.md, "Fault storms").
type scale struct {
	name       string
	killJobs   int           // jobs of the SIGKILL storm
	killFor    time.Duration // how long workers are killed
	jobs       int           // jobs of each other fault
	pause      time.Duration // Redis SIGSTOP, longer than the 5 s read timeout
	wait       time.Duration // how long a storm may take to drain
	maxRefused int           // refused enqueues to reach at maxmemory
}

func currentScale() scale {
	s := scale{name: "short", killJobs: 400, killFor: 5 * time.Second, jobs: 150, pause: 6 * time.Second, wait: 90 * time.Second, maxRefused: 20}
	if os.Getenv("RESQ_STORM") == "long" {
		s = scale{name: "long", killJobs: 5000, killFor: 60 * time.Second, jobs: 2000, pause: 12 * time.Second, wait: 10 * time.Minute, maxRefused: 500}
	}
	if n, err := strconv.Atoi(os.Getenv("RESQ_STORM_JOBS")); err == nil && n > 0 {
		s.killJobs, s.jobs = n, n
	}
	return s
}

// figures is what one storm left behind.
type figures struct {
	Fault      string
	In         int // jobs acknowledged by the client
	Refused    int // enqueues refused (with an error) by Redis
	Done       int // distinct jobs that ran to completion
	Lost       int // acknowledged jobs that never completed: must be 0
	Duplicates int // extra completions (at-least-once)
	Failures   int // failure records
	Queued     int // jobs left in queues
	Registry   int // workers registered or with a heartbeat
	InFlight   int // in-flight records (worker:<id>, pickups)
	Processes  int // resq processes and job processes still running
	Kills      int // worker processes SIGKILLed
	Pruned     int // dead worker ids the final check pruned (no live worker had yet)
	Took       time.Duration
}

func (f figures) String() string {
	return fmt.Sprintf("%-20s in %5d  refused %3d  done %5d  lost %d  dup %3d  failures %d  queued %d  registry %d  in-flight %d  processes %d  kills %3d  final-prune %d  %s",
		f.Fault, f.In, f.Refused, f.Done, f.Lost, f.Duplicates, f.Failures, f.Queued, f.Registry, f.InFlight, f.Processes, f.Kills, f.Pruned, f.Took.Round(100*time.Millisecond))
}

// resqBinary is the real resq program, built once per test binary.
func resqBinary(t *testing.T) string { return testkit.BuildResq(t) }

// rig is one storm: a private Redis, a namespace, a job script and the
// resq work processes started so far.
type rig struct {
	t      *testing.T
	srv    *redistest.Server
	keys   wire.Keys
	conn   *resq.Conn
	client *resq.Client
	admin  *resq.Admin
	dir    string
	job    string
	env    []string
	fig    figures
	start  time.Time
	mark   string // RESQ_STORM_RIG=…, in the environment of this storm's workers

	mu      sync.Mutex
	workers []*isolate.Process // every worker started
	in      map[string]bool    // acknowledged job ids
}

// newRig starts a private Redis with the append-only file (fsync always)
// and writes the job script: it marks the job started, runs a background
// child for jobSleep and waits for it (so a kill mid-job has a process tree
// to leave behind), and marks it done.
func newRig(t *testing.T, fault, jobSleep string) *rig {
	t.Helper()
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	t.Cleanup(func() { srv.Resume(t) })
	ns := "storm"
	conn, err := resq.Open(resq.ConnConfig{URL: srv.URL(), Namespace: ns, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	dir, err := os.MkdirTemp("", "resq-storm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(dir, "job.sh")
	body := "#!/bin/bash\n" +
		`echo "$RESQ_JOB_ID" >> "` + dir + `/started"` + "\n" +
		"sleep " + jobSleep + " &\nwait\n" +
		`echo "$RESQ_JOB_ID" >> "` + dir + `/done"` + "\n"
	if err := os.WriteFile(job, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	mark := "RESQ_STORM_RIG=" + fault + "-" + strconv.Itoa(rand.IntN(1<<30))
	r := &rig{t: t, srv: srv, keys: wire.NewKeys(ns), conn: conn, admin: resq.NewAdmin(conn), dir: dir, job: job,
		env: []string{"REDIS_URL=" + srv.URL(), "RESQ_NAMESPACE=" + ns, "RESQ_NO_TITLE=1", mark},
		in:  map[string]bool{}, fig: figures{Fault: fault}, start: time.Now(), mark: mark}
	r.client = testkit.Client(t, conn, resq.ClientConfig{})
	t.Cleanup(r.killAll)
	return r
}

// enqueue pushes n jobs in batches and records the acknowledged ids; it
// returns how many were refused.
func (r *rig) enqueue(n int) int {
	r.t.Helper()
	refused := 0
	for done := 0; done < n; {
		batch := min(100, n-done)
		ps := make([]resq.EnqueueParams, batch)
		for i := range ps {
			ps[i] = resq.EnqueueParams{Queue: "storm", Class: "Job", Args: []any{done + i}}
		}
		res, _ := r.client.EnqueueBatch(context.Background(), ps)
		r.mu.Lock()
		for _, br := range res {
			if br.Job != nil {
				r.in[br.Job.ID] = true
			} else {
				refused++
			}
		}
		r.mu.Unlock()
		done += batch
	}
	r.fig.Refused += refused
	return refused
}

// work starts one resq work process.
func (r *rig) work(extra ...string) *isolate.Process {
	r.t.Helper()
	args := append([]string{"work", "--queues", "storm", "--concurrency", "2", "--poll", "0.05", "--stop-timeout", "1s",
		"--exec", "Job=" + r.job}, extra...)
	p, err := isolate.Start(isolate.Command{Path: resqBinary(r.t), Args: args, Env: r.env})
	if err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.workers = append(r.workers, p)
	r.mu.Unlock()
	return p
}

// ready waits until worker p has registered in Redis (it handles its
// signals by then; a QUIT before that would end it the default way).
func (r *rig) ready(p *isolate.Process) {
	r.t.Helper()
	pid := ":" + strconv.Itoa(p.Pid()) + ":"
	deadline := time.Now().Add(30 * time.Second)
	for !p.Exited() && time.Now().Before(deadline) {
		if ids, err := r.srv.Try("SMEMBERS", r.keys.Workers()); err == nil && strings.Contains(ids, pid) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !p.Exited() {
		r.t.Fatalf("worker %d did not register within 30 s", p.Pid())
	}
}

// alive returns the started workers still running.
func (r *rig) alive() []*isolate.Process {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*isolate.Process
	for _, p := range r.workers {
		if !p.Exited() {
			out = append(out, p)
		}
	}
	return out
}

// killAll SIGKILLs whatever is left (test cleanup).
func (r *rig) killAll() {
	for _, p := range r.alive() {
		p.Kill()
	}
}

// lines reads a marks file: every line, and the distinct ones.
func (r *rig) lines(name string) (all int, distinct map[string]bool) {
	distinct = map[string]bool{}
	f, err := os.Open(filepath.Join(r.dir, name))
	if err != nil {
		return 0, distinct
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			all++
			distinct[l] = true
		}
	}
	return all, distinct
}

// drained reports whether every acknowledged job has completed.
func (r *rig) drained() bool {
	_, done := r.lines("done")
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.in {
		if !done[id] {
			return false
		}
	}
	return true
}

// waitDrained waits until every acknowledged job has completed, or d.
func (r *rig) waitDrained(d time.Duration) {
	deadline := time.Now().Add(d)
	for !r.drained() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
}

// finish stops every worker with QUIT, waits for them, counts what is left
// and checks the invariants: nothing lost, no failure, nothing left in
// Redis, no process left running. Duplicates are allowed and counted.
func (r *rig) finish() figures {
	t := r.t
	t.Helper()
	ctx := context.Background()
	// Every live worker has made its start-up check for dead workers.
	for _, p := range r.alive() {
		r.ready(p)
	}
	// Dead workers whose jobs no live worker recovered yet (a worker prunes
	// at start-up and with every heartbeat, 30 s): prune as an operator
	// would, and let the jobs run again.
	for range 5 {
		res, err := r.admin.Prune(ctx, 0, resq.RequeueDeadJobs)
		if err != nil {
			t.Fatalf("prune: %v", err)
		}
		if len(res.Pruned) == 0 {
			break
		}
		r.fig.Pruned += len(res.Pruned)
		time.Sleep(100 * time.Millisecond)
		r.waitQueueEmpty()
	}
	for _, p := range r.alive() {
		r.ready(p)
		_ = p.Signal("QUIT")
	}
	for _, p := range r.alive() {
		if code, err := p.Wait(20 * time.Second); err != nil || code != 0 {
			_, stderr := p.Output()
			t.Errorf("a worker did not exit 0 on QUIT: %d %v\n%s", code, err, lastLines(stderr, 20))
		}
	}
	// The keepers of killed workers exit on their own; give them a moment.
	deadline := time.Now().Add(5 * time.Second)
	for r.processes() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	f := &r.fig
	all, done := r.lines("done")
	f.In, f.Done = len(r.in), len(done)
	for id := range r.in {
		if !done[id] {
			f.Lost++
		}
	}
	f.Duplicates = all - len(done)
	n, _ := r.admin.FailureCount(ctx)
	f.Failures = int(n)
	q, _ := r.admin.QueueSize(ctx, "storm")
	f.Queued = int(q)
	f.Registry = r.count("SCARD", r.keys.Workers()) + r.count("HLEN", r.keys.Heartbeats())
	f.InFlight = r.keyCount(r.keys.Worker("*")) - r.keyCount(r.keys.Worker("*:started")) + r.keyCount(r.keys.PickupPrefix()+"*")
	f.Processes = r.processes()
	f.Took = time.Since(r.start)
	t.Logf("%s", f)
	report(*f)
	if f.Lost != 0 || f.Failures != 0 || f.Queued != 0 || f.Registry != 0 || f.InFlight != 0 || f.Processes != 0 {
		fs, _ := r.admin.Failures(ctx, 0, 5)
		for _, x := range fs {
			t.Logf("failure: %s %s", x.Exception, x.Error)
		}
		t.Errorf("storm %q left: %s", f.Fault, f)
	}
	return *f
}

// waitQueueEmpty waits until the queue is empty and no job runs.
func (r *rig) waitQueueEmpty() {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		q, _ := r.admin.QueueSize(context.Background(), "storm")
		if q == 0 && r.drained() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *rig) count(cmd, key string) int {
	n, _ := strconv.Atoi(r.srv.Do(r.t, cmd, key))
	return n
}

func (r *rig) keyCount(pattern string) int {
	out := r.srv.Do(r.t, "KEYS", pattern)
	if out == "" {
		return 0
	}
	return len(strings.Split(out, "\n"))
}

// processes counts what runs of this storm: its workers (their mark in
// the environment), their keepers and job processes (the owner mark of one
// of its workers, or a job id of this storm).
func (r *rig) processes() int {
	r.mu.Lock()
	ids := make(map[string]bool, len(r.in)+1)
	for id := range r.in {
		ids["RESQ_JOB_ID="+id] = true
	}
	ids[r.mark] = true
	owners := make([]string, 0, len(r.workers))
	for _, p := range r.workers {
		owners = append(owners, "RESQ_ISOLATE_OWNER="+strconv.Itoa(p.Pid())+".")
	}
	r.mu.Unlock()
	n := 0
	names, _ := filepath.Glob("/proc/[0-9]*")
	self := strconv.Itoa(os.Getpid())
	for _, d := range names {
		if filepath.Base(d) == self {
			continue
		}
		if st, err := os.ReadFile(d + "/stat"); err == nil {
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && (st[i+2] == 'Z' || st[i+2] == 'X') {
				continue // exited, waiting to be reaped by its parent
			}
		}
		env, err := os.ReadFile(d + "/environ")
		if err != nil {
			continue
		}
	entries:
		for _, kv := range strings.Split(string(env), "\x00") {
			if ids[kv] {
				n++
				break
			}
			for _, o := range owners {
				if strings.HasPrefix(kv, o) {
					n++
					break entries
				}
			}
		}
	}
	return n
}

func lastLines(b []byte, n int) string {
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

var (
	reportMu sync.Mutex
	reported []figures
)

// report keeps a storm's figures for the summary, and appends them to the
// file RESQ_STORM_REPORT names (scripts/test prints it).
func report(f figures) {
	reportMu.Lock()
	defer reportMu.Unlock()
	reported = append(reported, f)
	if path := os.Getenv("RESQ_STORM_REPORT"); path != "" {
		if fh, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(fh, f)
			fh.Close()
		}
	}
}

// TestStorm runs every fault against real resq work processes and a real
// redis-server, and prints what each left behind.
func TestStorm(t *testing.T) {
	sc := currentScale()
	if path := os.Getenv("RESQ_STORM_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(fmt.Sprintf("fault storms (%s form), %s\n", sc.name, time.Now().UTC().Format(time.RFC3339))), 0o644)
	}
	resqBinary(t)
	t.Run("sigkill-storm", func(t *testing.T) { t.Parallel(); sigkillStorm(t, sc, false) })
	t.Run("sigkill-storm-no-lua", func(t *testing.T) { t.Parallel(); sigkillStorm(t, sc, true) })
	t.Run("redis-restart-aof", func(t *testing.T) { t.Parallel(); redisRestart(t, sc) })
	t.Run("redis-sigstop", func(t *testing.T) { t.Parallel(); redisPause(t, sc) })
	t.Run("redis-down-at-start", func(t *testing.T) { t.Parallel(); redisDownAtStart(t, sc) })
	t.Run("term-quit-mid-job", func(t *testing.T) { t.Parallel(); termQuitMidJob(t, sc) })
	t.Run("other-host-dies", func(t *testing.T) { t.Parallel(); otherHostDies(t, sc) })
	t.Run("redis-maxmemory", func(t *testing.T) { t.Parallel(); maxmemory(t, sc) })
	t.Run("stop-with-redis-down", func(t *testing.T) { t.Parallel(); stopWithRedisDown(t, sc) })
	t.Cleanup(func() {
		reportMu.Lock()
		defer reportMu.Unlock()
		t.Logf("fault storms (%s form):", sc.name)
		for _, f := range reported {
			t.Logf("  %s", f)
		}
	})
}

// sigkillStorm: workers are SIGKILLed every 100–300 ms and replaced. With
// noLua the workers' Redis user may not run scripts, so they run on plain
// commands and their acks hold jobs ahead in the pickup lists (decisions
// §28) when they are killed.
func sigkillStorm(t *testing.T, sc scale, noLua bool) {
	name := "sigkill-storm"
	if noLua {
		name += "-no-lua"
	}
	r := newRig(t, name, "0.05")
	if noLua {
		r.srv.Do(t, "ACL", "SETUSER", "nolua", "on", ">pw", "~*", "&*", "+@all", "-@scripting")
		for i, kv := range r.env {
			if strings.HasPrefix(kv, "REDIS_URL=") {
				r.env[i] = "REDIS_URL=redis://nolua:pw@" + r.srv.Addr() + "/0"
			}
		}
	}
	r.enqueue(sc.killJobs)
	for range 3 {
		r.work()
	}
	stop := time.Now().Add(sc.killFor)
	for time.Now().Before(stop) && !r.drained() {
		time.Sleep(time.Duration(100+rand.IntN(200)) * time.Millisecond)
		if ws := r.alive(); len(ws) > 0 {
			_ = ws[rand.IntN(len(ws))].Signal("KILL")
			r.fig.Kills++
		}
		r.work()
	}
	r.waitDrained(sc.wait)
	r.finish()
}

// redisRestart: Redis is SIGKILLed mid-run and restarted from its AOF.
func redisRestart(t *testing.T, sc scale) {
	r := newRig(t, "redis-restart-aof", "0.02")
	r.enqueue(sc.jobs)
	r.work()
	r.work()
	for range 2 {
		time.Sleep(500 * time.Millisecond)
		r.srv.Kill(t)
		time.Sleep(300 * time.Millisecond)
		r.srv.Restart(t)
	}
	r.waitDrained(sc.wait)
	r.finish()
}

// redisPause: Redis stops answering (SIGSTOP) for longer than the read
// timeout, with jobs running and queued.
func redisPause(t *testing.T, sc scale) {
	r := newRig(t, "redis-sigstop", "0.05")
	r.enqueue(sc.jobs)
	r.work()
	r.work()
	time.Sleep(500 * time.Millisecond)
	r.srv.Pause(t)
	time.Sleep(sc.pause)
	r.srv.Resume(t)
	r.waitDrained(sc.wait)
	r.finish()
}

// redisDownAtStart: workers start while Redis is down, and work once it
// is back.
func redisDownAtStart(t *testing.T, sc scale) {
	r := newRig(t, "redis-down-at-start", "0.01")
	r.enqueue(sc.jobs)
	r.srv.Stop(t)
	r.work()
	r.work()
	time.Sleep(1500 * time.Millisecond)
	if len(r.alive()) != 2 {
		t.Errorf("%d of 2 workers still running while Redis is down", len(r.alive()))
	}
	r.srv.Restart(t)
	r.waitDrained(sc.wait)
	r.finish()
}

// termQuitMidJob: TERM (running jobs requeued) and QUIT (running jobs
// finish) while jobs run, over and over; a worker is always replaced.
func termQuitMidJob(t *testing.T, sc scale) {
	r := newRig(t, "term-quit-mid-job", "0.3")
	r.enqueue(sc.jobs / 3)
	r.work()
	r.work()
	for i := 0; !r.drained() && i < 8; i++ {
		time.Sleep(400 * time.Millisecond)
		ws := r.alive()
		if len(ws) == 0 {
			r.work()
			continue
		}
		sig := "TERM"
		if i%2 == 1 {
			sig = "QUIT"
		}
		p := ws[0]
		r.ready(p)
		_ = p.Signal(sig)
		if code, err := p.Wait(15 * time.Second); err != nil || code != 0 {
			_, stderr := p.Output()
			t.Errorf("%s mid-job: exit %d, %v\n%s", sig, code, err, lastLines(stderr, 10))
		}
		r.work()
	}
	r.waitDrained(sc.wait)
	r.finish()
}

// otherHostDies: a worker of another host died mid-job (its heartbeat is an
// hour old); a worker here prunes it and runs its job.
func otherHostDies(t *testing.T, sc scale) {
	r := newRig(t, "other-host-dies", "0.01")
	ctx := context.Background()
	// The dead worker's job: a real job, taken out of the queue as its
	// fetch would have.
	r.enqueue(1)
	payload := r.srv.Do(t, "LPOP", r.keys.Queue("storm"))
	id := "far-away-host:4242:storm"
	rec, _ := json.Marshal(map[string]any{"queue": "storm", "run_at": time.Now().UTC().Format(time.RFC3339), "payload": json.RawMessage(payload)})
	r.srv.Do(t, "SADD", r.keys.Workers(), id)
	r.srv.Do(t, "SET", r.keys.Worker(id), string(rec))
	r.srv.Do(t, "SET", r.keys.WorkerStarted(id), time.Now().Add(-2*time.Hour).Format(time.RFC3339))
	r.srv.Do(t, "HSET", r.keys.Heartbeats(), id, time.Now().Add(-time.Hour).Format(time.RFC3339))
	r.enqueue(sc.jobs / 3)
	r.work()
	r.waitDrained(sc.wait)
	if ws, _ := r.admin.Workers(ctx); len(ws) > 0 {
		for _, w := range ws {
			if w.ID == id {
				t.Errorf("the dead worker of another host is still registered")
			}
		}
	}
	r.finish()
}

// maxmemory: Redis is at its memory limit (noeviction) while workers run
// and producers push: every enqueue is either refused with an error or
// runs; the workers' own writes are refused too until memory frees up.
func maxmemory(t *testing.T, sc scale) {
	r := newRig(t, "redis-maxmemory", "0.05")
	r.enqueue(sc.jobs)
	r.ready(r.work())
	r.ready(r.work())
	used, _ := strconv.Atoi(infoField(r.srv.Do(t, "INFO", "memory"), "used_memory"))
	r.srv.Do(t, "CONFIG", "SET", "maxmemory-policy", "noeviction")
	r.srv.Do(t, "CONFIG", "SET", "maxmemory", strconv.Itoa(used+64<<10))
	big := strings.Repeat("x", 8<<10)
	var refusal error
	refused := 0
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end) || refused < sc.maxRefused; {
		e, err := r.client.Enqueue(context.Background(), "storm", "Job", refused, big)
		if err != nil {
			refused++
			refusal = err
			time.Sleep(10 * time.Millisecond)
			continue
		}
		r.mu.Lock()
		r.in[e.ID] = true
		r.mu.Unlock()
	}
	r.fig.Refused = refused
	if refusal == nil || !strings.Contains(refusal.Error(), "OOM") {
		t.Errorf("at maxmemory an enqueue was not refused loudly: %v", refusal)
	} else {
		t.Logf("refused at maxmemory: %v", refusal)
	}
	r.srv.Do(t, "CONFIG", "SET", "maxmemory", "0")
	r.waitDrained(sc.wait)
	r.finish()
}

// stopWithRedisDown: Redis dies with jobs running; TERM to one worker and
// QUIT to the other must end them within the stop timeout all the same
// (every retry loop honours the worker's context), and the next worker
// recovers what they could not record once Redis is back.
func stopWithRedisDown(t *testing.T, sc scale) {
	r := newRig(t, "stop-with-redis-down", "0.5")
	r.enqueue(sc.jobs / 5)
	a, b := r.work(), r.work()
	r.ready(a)
	r.ready(b)
	time.Sleep(700 * time.Millisecond) // jobs running
	r.srv.Kill(t)
	start := time.Now()
	_ = a.Signal("TERM")
	_ = b.Signal("QUIT")
	for i, p := range []*isolate.Process{a, b} {
		// --stop-timeout 1s, the 0.5 s jobs, and the 5 s read timeout of a
		// command already sent.
		sig := []string{"TERM", "QUIT"}[i]
		if _, err := p.Wait(15 * time.Second); err != nil {
			_, stderr := p.Output()
			p.Kill()
			t.Errorf("a worker did not stop within 15 s of %s with Redis down: %v\n%s", sig, err, lastLines(stderr, 15))
		}
	}
	t.Logf("both workers stopped %s after TERM/QUIT with Redis down", time.Since(start).Round(10*time.Millisecond))
	r.srv.Restart(t)
	r.work()
	r.waitDrained(sc.wait)
	r.finish()
}

func infoField(info, name string) string {
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), name+":"); ok {
			return v
		}
	}
	return ""
}
