package main

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/resq-go/resq"
)

// resq with its defaults: namespace "resque", ConnConfig's default pool,
// WorkerConfig defaults except Queues and Concurrency (blocking pickup on;
// PollInterval 1 s, polls of empty queues back off from 2 ms to it).
const (
	resqQueue = "bench"
	resqClass = "Noop"
)

type resqSystem struct {
	exec  bool // every job runs /bin/true (HandleCommand, the --exec mode)
	warm  bool // the handler runs in a warm child process (resq.ChildProcess)
	plain bool // the worker's Redis user may not run Lua scripts
	poll  bool // DisableBlockingPickup: polling only
	batch bool // producer uses Client.EnqueueBatch
	// nohold: WorkerConfig.DisableHoldAhead (every slot waits for its
	// ack's round trip between two jobs, as before decisions §31)
	nohold bool
}

func newResqBatch() system { return &resqSystem{batch: true} }

// batchSize is how many jobs resq-batch pushes per pipeline.
const batchSize = 100

func newResq() system      { return &resqSystem{} }
func newResqExec() system  { return &resqSystem{exec: true} }
func newResqWarm() system  { return &resqSystem{warm: true} }
func newResqPlain() system { return &resqSystem{plain: true} }

// warmOptions are resq-warm's handler options, the same in the worker and
// in its children.
var warmOptions = resq.HandlerOptions{Isolation: resq.ChildProcess, Limits: resq.ChildLimits{MaxJobs: 1_000_000}}

// serveWarmChild is main in a resq-warm child process: register the same
// handler and let Worker.Run serve the worker's pipe (it exits the process).
func serveWarmChild() {
	conn, err := resq.Open(resq.ConnConfig{URL: "redis://127.0.0.1:1/0"}) // never dialled: a child does not talk to Redis
	if err != nil {
		fatalf("warm child: %v", err)
	}
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{resqQueue}})
	if err != nil {
		fatalf("warm child: %v", err)
	}
	resq.Handle(w, resqClass, func(ctx context.Context, a jobArgs) error { return nil }, warmOptions)
	if err := w.Run(context.Background()); err != nil {
		fatalf("warm child: %v", err)
	}
	os.Exit(0)
}
func newResqPoll() system   { return &resqSystem{poll: true} }
func newResqNoHold() system { return &resqSystem{nohold: true} }

func resqConn(addr string) (*resq.Conn, error) {
	return resq.Open(resq.ConnConfig{
		URL:    "redis://" + addr + "/0",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
}

func (s *resqSystem) producer(ctx context.Context, addr string, producers int) (enqueueFunc, error) {
	conn, err := resqConn(addr)
	if err != nil {
		return nil, err
	}
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		conn.Close()
		return nil, err
	}
	if s.batch {
		return batchProducer(ctx, client), nil
	}
	return func(ctx context.Context, a jobArgs) error {
		_, err := client.Enqueue(ctx, resqQueue, resqClass, a)
		return err
	}, nil
}

func (s *resqSystem) startWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error {
	url := "redis://" + addr + "/0"
	if s.plain {
		// A Redis user without @scripting, as operators who deny Lua set up.
		r, err := dialRESP(addr)
		if err != nil {
			return err
		}
		_, err = r.do("ACL", "SETUSER", "noscripts", "on", ">bench", "~*", "&*", "+@all", "-@scripting")
		r.close()
		if err != nil {
			return err
		}
		url = "redis://noscripts:bench@" + addr + "/0"
	}
	conn, err := resq.Open(resq.ConnConfig{
		URL:    url,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		return err
	}
	cfg := resq.WorkerConfig{Queues: []string{resqQueue}, Concurrency: concurrency, DisableBlockingPickup: s.poll, DisableHoldAhead: s.nohold}
	if s.exec || s.warm {
		// The command's exit (the child's reply) is the job's end: count it
		// from the outcome hook.
		cfg.OnJobDoneFunc = func(ev resq.JobEvent) {
			if ev.Outcome == resq.OutcomeDone {
				done(jobArgs{})
			}
		}
	}
	w, err := resq.NewWorker(conn, cfg)
	if err != nil {
		return err
	}
	switch {
	case s.exec:
		w.HandleCommand(resqClass, resq.Command{Path: "/bin/true"})
	case s.warm:
		resq.Handle(w, resqClass, func(ctx context.Context, a jobArgs) error { return nil }, warmOptions)
	default:
		resq.Handle(w, resqClass, func(ctx context.Context, a jobArgs) error {
			done(a)
			return nil
		})
	}
	go func() {
		if err := w.Run(ctx); err != nil {
			fatalf("resq worker: %v", err)
		}
	}()
	return nil
}

func (s *resqSystem) queued(r *resp) (int64, error) {
	return r.int("LLEN", "resque:queue:"+resqQueue)
}

// finished: stat:processed is incremented in the same MULTI that deletes the
// slot's in-flight record, so reaching n means every ack is written.
func (s *resqSystem) finished(r *resp, n int) (bool, error) {
	v, err := r.int("GET", "resque:stat:processed")
	return v >= int64(n), err
}

// batchProducer buffers jobs and pushes them with EnqueueBatch when batchSize
// are waiting (on the caller that fills the batch, which gets the batch's
// error) or after 2 ms without a new job (the tail of a run).
func batchProducer(ctx context.Context, client *resq.Client) enqueueFunc {
	var mu sync.Mutex
	var buf []resq.EnqueueParams
	last := time.Now()
	flush := func() error {
		jobs := buf
		buf = nil
		if len(jobs) == 0 {
			return nil
		}
		_, err := client.EnqueueBatch(ctx, jobs)
		return err
	}
	go func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				mu.Lock()
				if len(buf) > 0 && time.Since(last) > 2*time.Millisecond {
					if err := flush(); err != nil {
						fatalf("resq batch enqueue: %v", err)
					}
				}
				mu.Unlock()
			}
		}
	}()
	return func(ctx context.Context, a jobArgs) error {
		mu.Lock()
		defer mu.Unlock()
		last = time.Now()
		buf = append(buf, resq.EnqueueParams{Queue: resqQueue, Class: resqClass, Args: []any{a}})
		if len(buf) >= batchSize {
			return flush()
		}
		return nil
	}
}
