package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

// asynq's delayed tasks: Client.Enqueue with asynq.ProcessAt(due) stores the
// task in its queue's scheduled set; the Server's forwarder moves due tasks
// to pending every Config.DelayedTaskCheckInterval (default 5 s), 100 per
// script call, until none is due. Its defaults are kept.

func (s asynqSystem) delayedProducer(ctx context.Context, addr string) (delayedFunc, error) {
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	return func(ctx context.Context, a jobArgs, due time.Time) error {
		payload, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = client.EnqueueContext(ctx, asynq.NewTask(asynqType, payload), asynq.ProcessAt(due))
		return err
	}, nil
}

func (s asynqSystem) startScheduledWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error {
	return s.startWorker(ctx, addr, concurrency, done)
}

// prepBacklog: asynq's client enqueues a task whose time has come at once,
// so the backlog is enqueued due a few seconds ahead (all in one or a few
// seconds: asynq's scheduled set is one sorted set, so the spread over
// seconds does not matter to its forwarder) and prepBacklog returns once
// all are due.
func (s asynqSystem) prepBacklog(ctx context.Context, addr string, n, _ int) error {
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	defer client.Close()
	last, err := enqueueDueSoon(ctx, n, 8, func(i int, due time.Time) error {
		payload, err := json.Marshal(jobArgs{N: int64(i), T: due.UnixMicro()})
		if err != nil {
			return err
		}
		_, err = client.EnqueueContext(ctx, asynq.NewTask(asynqType, payload), asynq.ProcessAt(due))
		return err
	})
	if err != nil {
		return err
	}
	time.Sleep(time.Until(last.Add(100 * time.Millisecond)))
	return nil
}

// startMover pauses the queue (Inspector.PauseQueue: the processor skips
// it, the forwarder does not) and starts a Server with its defaults.
func (s asynqSystem) startMover(ctx context.Context, addr string) error {
	insp := asynq.NewInspector(asynq.RedisClientOpt{Addr: addr})
	if err := insp.PauseQueue("default"); err != nil {
		return fmt.Errorf("pausing asynq's queue: %w", err)
	}
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{LogLevel: asynq.WarnLevel})
	return srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error { return nil }))
}

func (s asynqSystem) moved(r *resp, n int) (int64, error) {
	return r.int("LLEN", "asynq:{default}:pending")
}

// enqueueDueSoon calls enq for jobs 0..n-1 from `producers` goroutines, each
// job due at a whole second at least 500 ms ahead (the second moves on as
// enqueueing goes), and returns the latest due second used.
func enqueueDueSoon(ctx context.Context, n, producers int, enq func(i int, due time.Time) error) (time.Time, error) {
	var dueSec atomic.Int64
	dueSec.Store(time.Now().Unix() + 2)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for range producers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				d := dueSec.Load()
				if time.Until(time.Unix(d, 0)) < 500*time.Millisecond {
					dueSec.CompareAndSwap(d, time.Now().Unix()+2)
					d = dueSec.Load()
				}
				if err := enq(int(i), time.Unix(d, 0)); err != nil {
					errs <- fmt.Errorf("delayed enqueue of job %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return time.Unix(dueSec.Load(), 0), <-errs
}
