package worker_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/internal/wire"
	"github.com/resq-go/resq/internal/worker"
)

// Every pushed job reaches ExecuteFunc exactly once, on a slot of the
// engine, and its ack is written: counted as processed, the queue drained,
// no in-flight record left. After the stop the ids are unregistered.
func TestEngineRunsEveryJobOnceAndAcks(t *testing.T) {
	t.Parallel()
	store := newStore(t, pool.Get(t))
	const jobs = 200
	var mu sync.Mutex
	seen := map[string]int{}
	slotsUsed := map[string]bool{}
	cfg := config(t, store, 4, func(ctx context.Context, s worker.Slot, f wire.Fetched) worker.Result {
		mu.Lock()
		seen[string(f.Raw)]++
		slotsUsed[s.ID] = true
		mu.Unlock()
		if f.Queue != "q" {
			t.Errorf("job from queue %q", f.Queue)
		}
		return ack(s, f)
	})
	e, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range jobs {
		push(t, store, "q", fmt.Sprintf(`{"class":"Job","args":[%d]}`, i))
	}
	stop := start(t, e, context.Background())
	testkit.Eventually(t, "every job processed", func() bool { return info(t, store).Processed == jobs })
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != jobs {
		t.Fatalf("%d distinct jobs executed, want %d", len(seen), jobs)
	}
	for raw, n := range seen {
		if n != 1 {
			t.Errorf("job %s executed %d times", raw, n)
		}
	}
	for id := range slotsUsed {
		if !slices.Contains(cfg.IDs, id) {
			t.Errorf("job ran on slot %q, not one of the engine's ids", id)
		}
	}
	in := info(t, store)
	if in.Pending != 0 || in.Working != 0 || in.Workers != 0 || in.Processed != jobs {
		t.Fatalf("after stop: %+v; want nothing pending, working or registered, %d processed", in, jobs)
	}
}

// ActionRequeue puts the job back at the head of its queue and ActionNone
// writes nothing (the execute function moved the job itself): neither
// counts, and the job runs again.
func TestEngineRequeueAndNoneCountNothing(t *testing.T) {
	t.Parallel()
	for _, action := range []worker.Action{worker.ActionRequeue, worker.ActionNone} {
		t.Run(fmt.Sprint(action), func(t *testing.T) {
			t.Parallel()
			store := newStore(t, pool.Get(t))
			var runs atomic.Int32
			var processedAtSecondRun atomic.Int64
			e, err := worker.New(config(t, store, 1, func(ctx context.Context, s worker.Slot, f wire.Fetched) worker.Result {
				if runs.Add(1) == 1 {
					if action == worker.ActionNone {
						// As a class cap does: move the job back, then report nothing.
						if _, err := store.Requeue(ctx, s.ID, f.Queue, f.Raw); err != nil {
							t.Error(err)
						}
					}
					return worker.Result{Action: action}
				}
				processedAtSecondRun.Store(info(t, store).Processed)
				return ack(s, f)
			}))
			if err != nil {
				t.Fatal(err)
			}
			push(t, store, "q", `{"class":"Job","args":[]}`)
			stop := start(t, e, context.Background())
			testkit.Eventually(t, "the job processed", func() bool { return info(t, store).Processed == 1 })
			stop()
			if n := runs.Load(); n != 2 {
				t.Fatalf("job executed %d times, want 2", n)
			}
			if n := processedAtSecondRun.Load(); n != 0 {
				t.Fatalf("processed = %d before the second run, want 0", n)
			}
			if in := info(t, store); in.Pending != 0 || in.Working != 0 {
				t.Fatalf("after stop: %+v", in)
			}
		})
	}
}

// A fast stop (Run's ctx cancelled) cancels the job's ctx; a job that
// ignores it is requeued after StopTimeout and Run returns without waiting
// for it.
func TestEngineFastStopRequeuesStubbornJob(t *testing.T) {
	t.Parallel()
	store := newStore(t, pool.Get(t))
	started := make(chan struct{})
	release := make(chan struct{})
	var cancelled atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	e, err := worker.New(config(t, store, 2, func(ctx context.Context, s worker.Slot, f wire.Fetched) worker.Result {
		defer wg.Done()
		close(started)
		<-ctx.Done()
		cancelled.Store(true)
		<-release // ignores the cancellation
		return ack(s, f)
	}))
	if err != nil {
		t.Fatal(err)
	}
	push(t, store, "q", `{"class":"Job","args":[1]}`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	<-started
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after a fast stop")
	}
	close(release)
	wg.Wait()
	if !cancelled.Load() {
		t.Error("the job's ctx was not cancelled by the fast stop")
	}
	in := info(t, store)
	if in.Pending != 1 || in.Processed != 0 || in.Working != 0 || in.Workers != 0 {
		t.Fatalf("after fast stop: %+v; want the job back in its queue, nothing counted", in)
	}
}

// With Redis down when a job ends, a graceful stop still returns (the ack's
// retries end StopTimeout after the stop request), and the job stays in its
// slot's in-flight record, registered, for the next worker to recover.
func TestEngineStopWithRedisDownLeavesInFlightRecord(t *testing.T) {
	t.Parallel()
	srv := redistest.StartWith(t, redistest.Options{AppendOnly: true})
	store := newStore(t, srv)
	started := make(chan struct{})
	release := make(chan struct{})
	cfg := config(t, store, 1, func(ctx context.Context, s worker.Slot, f wire.Fetched) worker.Result {
		close(started)
		<-release
		return ack(s, f)
	})
	cfg.StopTimeout = 300 * time.Millisecond
	e, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const payload = `{"class":"Job","args":["kept"]}`
	push(t, store, "q", payload)
	done := make(chan error, 1)
	go func() { done <- e.Run(context.Background()) }()
	<-started
	srv.Stop(t)
	close(release) // its ack cannot be written
	time.Sleep(100 * time.Millisecond)
	e.RequestStop()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return with Redis down (the ack retries do not end)")
	}
	srv.Restart(t)
	in := info(t, store)
	if in.Processed != 0 || in.Working != 1 || in.Workers != 1 {
		t.Fatalf("after the stop: %+v; want one worker still registered and working, nothing processed", in)
	}
	states, err := store.WorkerStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rec, err := wire.DecodeWorkingOn(states[0].Record)
	if len(states) != 1 || err != nil || string(rec.Payload) != payload || rec.Queue != "q" {
		t.Fatalf("in-flight record = %q (%v); want the job on queue q", states[0].Record, err)
	}
}

// Pause takes no new job (the queue keeps it); Resume runs it.
func TestEnginePauseResume(t *testing.T) {
	t.Parallel()
	store := newStore(t, pool.Get(t))
	var runs atomic.Int32
	e, err := worker.New(config(t, store, 2, func(ctx context.Context, s worker.Slot, f wire.Fetched) worker.Result {
		runs.Add(1)
		return ack(s, f)
	}))
	if err != nil {
		t.Fatal(err)
	}
	e.Pause()
	start(t, e, context.Background())
	testkit.Eventually(t, "registration", func() bool { return info(t, store).Workers == 2 })
	push(t, store, "q", `{"class":"Job","args":[]}`)
	time.Sleep(150 * time.Millisecond) // several poll intervals
	if n := runs.Load(); n != 0 {
		t.Fatalf("paused engine ran %d jobs", n)
	}
	if in := info(t, store); in.Pending != 1 {
		t.Fatalf("paused engine: %+v; want the job still queued", in)
	}
	e.Resume()
	testkit.Eventually(t, "the job after Resume", func() bool { return info(t, store).Processed == 1 })
}

// StartFunc is retried until it succeeds, before the ids are registered;
// StartedFunc follows once; the upkeep calls PruneFunc every heartbeat.
func TestEngineStartAndUpkeepHooks(t *testing.T) {
	t.Parallel()
	store := newStore(t, pool.Get(t))
	cfg := config(t, store, 1, ackAll)
	var starts, started, prunes atomic.Int32
	var registeredAtStart atomic.Bool
	cfg.StartFunc = func(ctx context.Context) error {
		if ok, _ := store.IsRegistered(ctx, cfg.IDs[0]); ok {
			registeredAtStart.Store(true)
		}
		if starts.Add(1) < 3 {
			return fmt.Errorf("not yet")
		}
		return nil
	}
	cfg.StartedFunc = func() {
		if starts.Load() != 3 {
			t.Errorf("StartedFunc after %d StartFunc calls, want 3", starts.Load())
		}
		started.Add(1)
	}
	cfg.PruneFunc = func(ctx context.Context) error { prunes.Add(1); return nil }
	cfg.HeartbeatInterval = 20 * time.Millisecond
	e, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, e, context.Background())
	testkit.Eventually(t, "upkeep rounds", func() bool { return prunes.Load() >= 3 })
	stop()
	if registeredAtStart.Load() {
		t.Error("ids were registered before StartFunc succeeded")
	}
	if n := started.Load(); n != 1 {
		t.Errorf("StartedFunc called %d times, want 1", n)
	}
}

// An idle engine is woken by its blocking pickup when a job is pushed to an
// empty queue: with an hour-long poll interval it still runs the job.
func TestEngineBlockingPickupWakesIdleSlots(t *testing.T) {
	t.Parallel()
	store := newStore(t, pool.Get(t))
	ran := make(chan string, 1)
	cfg := config(t, store, 2, func(ctx context.Context, s worker.Slot, f wire.Fetched) worker.Result {
		ran <- string(f.Raw)
		return ack(s, f)
	})
	cfg.PollInterval = time.Hour
	e, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, e, context.Background())
	testkit.Eventually(t, "registration", func() bool { return info(t, store).Workers == 2 })
	time.Sleep(100 * time.Millisecond) // the first fetches found nothing; the pickups wait
	push(t, store, "q", `{"class":"Job","args":["late"]}`)
	select {
	case got := <-ran:
		if got != `{"class":"Job","args":["late"]}` {
			t.Fatalf("ran %s", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pushed job did not run: the blocking pickup did not wake the engine")
	}
}

// ResolveQueuesFunc picks the queues from those that exist, in its order.
func TestEngineResolvesQueues(t *testing.T) {
	t.Parallel()
	store := newStore(t, pool.Get(t))
	var mu sync.Mutex
	var order []string
	cfg := config(t, store, 1, func(ctx context.Context, s worker.Slot, f wire.Fetched) worker.Result {
		mu.Lock()
		order = append(order, f.Queue)
		mu.Unlock()
		return ack(s, f)
	})
	cfg.Queues = nil
	cfg.ResolveQueuesFunc = func(known []string) []string {
		var out []string
		for _, q := range []string{"high", "low"} { // "skip" is never worked
			if slices.Contains(known, q) {
				out = append(out, q)
			}
		}
		return out
	}
	e, err := worker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	push(t, store, "low", `{"class":"Job","args":[1]}`)
	push(t, store, "skip", `{"class":"Job","args":[2]}`)
	push(t, store, "high", `{"class":"Job","args":[3]}`)
	stop := start(t, e, context.Background())
	testkit.Eventually(t, "two jobs", func() bool { return info(t, store).Processed == 2 })
	stop()
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 2 || order[0] != "high" || order[1] != "low" {
		t.Fatalf("queues in execution order: %v; want [high low]", order)
	}
	if n, _ := store.QueueSize(context.Background(), "skip"); n != 1 {
		t.Fatalf("skip queue has %d jobs, want 1 (not resolved)", n)
	}
}

// New refuses a config without its required fields.
func TestNewRefusesIncompleteConfig(t *testing.T) {
	t.Parallel()
	store := newStore(t, pool.Get(t))
	good := config(t, store, 1, ackAll)
	for name, mutate := range map[string]func(*worker.Config){
		"no store":        func(c *worker.Config) { c.Store = nil },
		"no ids":          func(c *worker.Config) { c.IDs = nil },
		"no owner":        func(c *worker.Config) { c.Owner = "" },
		"no poll":         func(c *worker.Config) { c.PollInterval = 0 },
		"no stop timeout": func(c *worker.Config) { c.StopTimeout = 0 },
		"no logger":       func(c *worker.Config) { c.Logger = nil },
		"no execute":      func(c *worker.Config) { c.ExecuteFunc = nil },
	} {
		c := good
		mutate(&c)
		if _, err := worker.New(c); err == nil {
			t.Errorf("%s: New returned no error", name)
		}
	}
	if _, err := worker.New(good); err != nil {
		t.Fatalf("complete config: %v", err)
	}
}
