package main

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocraft/work"
)

// gocraft/work's delayed jobs: Enqueuer.EnqueueIn(name, seconds, args) adds
// the job to <ns>:scheduled with its due second; every worker pool runs a
// requeuer that, once a second, moves due jobs to their job list, one job per
// script call, until none is due.

func (s gocraftSystem) delayedProducer(ctx context.Context, addr string) (delayedFunc, error) {
	enq := work.NewEnqueuer(gocraftNamespace, gocraftPool(addr, 3))
	return func(ctx context.Context, a jobArgs, due time.Time) error {
		// EnqueueIn counts from its own reading of the clock; the bench
		// keeps 3 ms away from a second boundary, so it reads this second.
		_, err := enq.EnqueueIn(gocraftJob, due.Unix()-time.Now().Unix(), work.Q{"n": a.N, "t": a.T})
		return err
	}, nil
}

func (s gocraftSystem) startScheduledWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error {
	return s.startWorker(ctx, addr, concurrency, done)
}

// prepBacklog enqueues with EnqueueIn and a negative delay: due in the
// past, perSecond per second, as resq's backlog.
func (s gocraftSystem) prepBacklog(ctx context.Context, addr string, n, perSecond int) error {
	const producers = 8
	enq := work.NewEnqueuer(gocraftNamespace, gocraftPool(addr, producers+2))
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
				if _, err := enq.EnqueueIn(gocraftJob, -1-i/int64(perSecond), work.Q{"n": i, "t": 0}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// startMover starts a worker pool of concurrency 1 whose handler never
// returns, so its requeuer moves jobs and nothing else takes them.
func (s gocraftSystem) startMover(ctx context.Context, addr string) error {
	pool := work.NewWorkerPool(struct{}{}, 1, gocraftNamespace, gocraftPool(addr, 12))
	pool.Job(gocraftJob, func(job *work.Job) error {
		<-ctx.Done()
		return nil
	})
	pool.Start()
	return nil
}

// moved: the jobs no longer in <ns>:scheduled (the requeue script removes
// a job and pushes it to its list in one step).
func (s gocraftSystem) moved(r *resp, n int) (int64, error) {
	left, err := r.int("ZCARD", gocraftNamespace+":scheduled")
	return int64(n) - left, err
}
