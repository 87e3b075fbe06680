package main

import (
	"context"
	"time"

	"github.com/gocraft/work"
	"github.com/gomodule/redigo/redis"
)

// gocraft/work v0.5.1 with its defaults (its own fetch backoff of 0, 10, 100,
// 1000, 5000 ms on empty queues; no retries configured) and a redigo pool
// as its README builds one but sized so that nothing waits for a connection:
// MaxActive = MaxIdle = 2×concurrency + 10 (each worker fetches and acks on
// its own connection; observers, heartbeater and requeuers share the rest),
// Wait: true.
type gocraftSystem struct{}

func newGocraft() system { return gocraftSystem{} }

const (
	gocraftNamespace = "bench"
	gocraftJob       = "noop"
)

func gocraftPool(addr string, size int) *redis.Pool {
	return &redis.Pool{
		MaxActive: size,
		MaxIdle:   size,
		Wait:      true,
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr, redis.DialConnectTimeout(2*time.Second))
		},
	}
}

func (gocraftSystem) producer(ctx context.Context, addr string, producers int) (enqueueFunc, error) {
	enq := work.NewEnqueuer(gocraftNamespace, gocraftPool(addr, producers+2))
	return func(ctx context.Context, a jobArgs) error {
		_, err := enq.Enqueue(gocraftJob, work.Q{"n": a.N, "t": a.T})
		return err
	}, nil
}

func (gocraftSystem) startWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error {
	pool := work.NewWorkerPool(struct{}{}, uint(concurrency), gocraftNamespace, gocraftPool(addr, 2*concurrency+10))
	pool.Job(gocraftJob, func(job *work.Job) error {
		a := jobArgs{N: job.ArgInt64("n"), T: job.ArgInt64("t")}
		if err := job.ArgError(); err != nil {
			return err
		}
		done(a)
		return nil
	})
	pool.Start()
	return nil
}

func (gocraftSystem) queued(r *resp) (int64, error) {
	return r.int("LLEN", gocraftNamespace+":jobs:"+gocraftJob)
}

// finished: gocraft counts running jobs in jobs:<name>:lock (INCR in the
// fetch script, DECR in the MULTI that removes the job from its in-progress
// list). Called once every handler has run, 0 means every job is acked.
func (gocraftSystem) finished(r *resp, n int) (bool, error) {
	v, err := r.int("GET", gocraftNamespace+":jobs:"+gocraftJob+":lock")
	return v == 0, err
}
