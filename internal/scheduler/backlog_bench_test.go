package scheduler_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/scheduler"
	"github.com/resq-go/resq/internal/wire"
)

// BenchmarkBacklog measures how fast a master drains a backlog of due jobs
// spread over many past seconds (a scheduler outage): perSecond jobs at
// each of n/perSecond timestamps.
//
//	go test -run '^$' -bench Backlog -benchtime 1x ./internal/scheduler/
func BenchmarkBacklog(b *testing.B) {
	for _, perSecond := range []int{1, 10, 1000} {
		b.Run("per-second="+strconv.Itoa(perSecond), func(b *testing.B) {
			srv := pool.Get(b)
			opt, _ := redis.ParseURL(srv.URL())
			rdb := redis.NewClient(opt)
			defer rdb.Close()
			store := wire.NewStore(rdb, "backlog")
			const n = 50000
			var total time.Duration
			for range b.N {
				now, _ := rdb.Time(context.Background()).Result()
				push := make([]wire.DelayedPush, n)
				for i := range push {
					push[i] = wire.DelayedPush{TS: now.Unix() - 1 - int64(i/perSecond), Item: wire.RubyDelayedItem("J", json.RawMessage("["+strconv.Itoa(i)+"]"), "q")}
				}
				store.PushDelayed(context.Background(), push)
				ctx, cancel := context.WithCancel(context.Background())
				sch := scheduler.New(store, scheduler.Config{Lock: wire.Lock{Key: store.Keys.SchedulerMasterLock(""), Value: "b:1"}, Logger: quiet})
				done := make(chan error, 1)
				start := time.Now()
				go func() { done <- sch.Run(ctx) }()
				for rdb.LLen(context.Background(), store.Keys.Queue("q")).Val() < n {
					time.Sleep(time.Millisecond)
				}
				total += time.Since(start)
				cancel()
				<-done
				rdb.Del(context.Background(), store.Keys.Queue("q"))
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "jobs/s")
		})
	}
}
