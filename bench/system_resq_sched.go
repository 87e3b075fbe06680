package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq"
)

// resq's delayed jobs: Client.EnqueueAt (the job goes to resque-scheduler's
// delayed queue and the push announces a sooner due second on resq's wake
// channel), moved by a Scheduler with SchedulerConfig's defaults (lock TTL
// 10 s, refresh 2 s, poll 1 s, batch 1000) running beside the worker, as in
// `resq work`.

// resqSchedPoll is resq-sched-poll: the same worker and Scheduler, the
// Scheduler polling every 5 s, and delayed jobs written as Ruby's
// Resque.enqueue_at writes them, which announce nothing.
type resqSchedPoll struct{ resqSystem }

func newResqSchedPoll() system { return &resqSchedPoll{} }

// schedPollInterval is resque-scheduler's default poll_sleep_amount.
const schedPollInterval = 5 * time.Second

func (s *resqSystem) delayedProducer(ctx context.Context, addr string) (delayedFunc, error) {
	conn, err := resqConn(addr)
	if err != nil {
		return nil, err
	}
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return func(ctx context.Context, a jobArgs, due time.Time) error {
		_, err := client.EnqueueAt(ctx, due, resqQueue, resqClass, a)
		return err
	}, nil
}

func (s *resqSystem) startScheduledWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error {
	if err := s.startWorker(ctx, addr, concurrency, done); err != nil {
		return err
	}
	return startResqScheduler(ctx, addr, resq.SchedulerConfig{})
}

func startResqScheduler(ctx context.Context, addr string, cfg resq.SchedulerConfig) error {
	conn, err := resqConn(addr)
	if err != nil {
		return err
	}
	sch, err := resq.NewScheduler(conn, cfg)
	if err != nil {
		return err
	}
	go func() {
		if err := sch.Run(ctx); err != nil {
			fatalf("resq scheduler: %v", err)
		}
	}()
	return nil
}

// prepBacklog enqueues n delayed jobs with Client.EnqueueBatch from a client
// whose clock (ClientConfig.NowFunc) runs behind the earliest due second,
// so the jobs are
// stored due in the past, perSecond per second (default 100: 50,000 jobs
// span 500 past seconds, as a scheduler outage of 8 minutes at 100 delayed
// jobs/s leaves them). Unsigned delayed jobs are stored in Ruby's item
// format, so this is also the backlog a Ruby producer leaves.
func (s *resqSystem) prepBacklog(ctx context.Context, addr string, n, perSecond int) error {
	conn, err := resqConn(addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	back := time.Hour + time.Duration(n/perSecond)*time.Second // before the earliest due second
	client, err := resq.NewClient(conn, resq.ClientConfig{NowFunc: func() time.Time { return time.Now().Add(-back) }})
	if err != nil {
		return err
	}
	now := time.Now().Unix()
	const chunk = 1000
	for lo := 0; lo < n; lo += chunk {
		batch := make([]resq.EnqueueParams, 0, chunk)
		for i := lo; i < min(lo+chunk, n); i++ {
			due := time.Unix(now-1-int64(i/perSecond), 0)
			batch = append(batch, resq.EnqueueParams{Queue: resqQueue, Class: resqClass, Args: []any{jobArgs{N: int64(i), T: due.UnixMicro()}}, At: due})
		}
		if _, err := client.EnqueueBatch(ctx, batch); err != nil {
			return err
		}
	}
	return nil
}

func (s *resqSystem) startMover(ctx context.Context, addr string) error {
	return startResqScheduler(ctx, addr, resq.SchedulerConfig{})
}

// moved: nothing takes jobs from the queue while the backlog is measured.
func (s *resqSystem) moved(r *resp, n int) (int64, error) {
	return r.int("LLEN", "resque:queue:"+resqQueue)
}

func (s *resqSchedPoll) startScheduledWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error {
	if err := s.startWorker(ctx, addr, concurrency, done); err != nil {
		return err
	}
	return startResqScheduler(ctx, addr, resq.SchedulerConfig{Poll: schedPollInterval})
}

// rubyItem is a delayed item as resque-scheduler encodes it.
type rubyItem struct {
	Class string    `json:"class"`
	Args  []jobArgs `json:"args"`
	Queue string    `json:"queue"`
}

// delayedProducer writes each job as Ruby's delayed_push does: three
// separate commands, no wake announcement (protocol spec §9.3).
func (s *resqSchedPoll) delayedProducer(ctx context.Context, addr string) (delayedFunc, error) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	return func(ctx context.Context, a jobArgs, due time.Time) error {
		item, err := json.Marshal(rubyItem{Class: resqClass, Args: []jobArgs{a}, Queue: resqQueue})
		if err != nil {
			return err
		}
		ts := strconv.FormatInt(due.Unix(), 10)
		if err := rdb.RPush(ctx, "resque:delayed:"+ts, item).Err(); err != nil {
			return fmt.Errorf("RPUSH: %w", err)
		}
		if err := rdb.SAdd(ctx, "resque:timestamps:"+string(item), "delayed:"+ts).Err(); err != nil {
			return fmt.Errorf("SADD: %w", err)
		}
		if err := rdb.ZAdd(ctx, "resque:delayed_queue_schedule", redis.Z{Score: float64(due.Unix()), Member: ts}).Err(); err != nil {
			return fmt.Errorf("ZADD: %w", err)
		}
		return nil
	}, nil
}
