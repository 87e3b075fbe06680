package main

import (
	"context"
	"encoding/json"

	"github.com/hibiken/asynq"
)

// asynq with its defaults (queue "default", MaxRetry 25, no retention,
// TaskCheckInterval 1 s: the wait before looking again at empty queues;
// go-redis pool of the default size) except Concurrency = the test's
// concurrency and LogLevel Warn. The handler decodes the JSON payload, as an
// asynq handler does (asynq hands it raw bytes).
type asynqSystem struct{}

func newAsynq() system { return asynqSystem{} }

const asynqType = "noop"

func (asynqSystem) producer(ctx context.Context, addr string, producers int) (enqueueFunc, error) {
	client := asynq.NewClient(asynq.RedisClientOpt{Addr: addr})
	return func(ctx context.Context, a jobArgs) error {
		payload, err := json.Marshal(a)
		if err != nil {
			return err
		}
		_, err = client.EnqueueContext(ctx, asynq.NewTask(asynqType, payload))
		return err
	}, nil
}

func (asynqSystem) startWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error {
	srv := asynq.NewServer(asynq.RedisClientOpt{Addr: addr}, asynq.Config{
		Concurrency: concurrency,
		LogLevel:    asynq.WarnLevel,
	})
	return srv.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		var a jobArgs
		if err := json.Unmarshal(t.Payload(), &a); err != nil {
			return err
		}
		done(a)
		return nil
	}))
}

func (asynqSystem) queued(r *resp) (int64, error) {
	return r.int("LLEN", "asynq:{default}:pending")
}

// finished: asynq's total processed counter of the queue (what
// Inspector.GetQueueInfo reports as ProcessedTotal), incremented by the
// script that marks a task done.
func (asynqSystem) finished(r *resp, n int) (bool, error) {
	v, err := r.int("GET", "asynq:{default}:processed")
	return v >= int64(n), err
}
