package resq_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
)

// redisCounters reads a private server's total command calls and its CPU
// seconds (INFO commandstats and cpu).
func redisCounters(tb testing.TB, rdb *redis.Client) (calls int64, cpu float64) {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "commandstats", "cpu").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(info, "\r\n") {
		switch {
		case strings.HasPrefix(l, "cmdstat_"):
			for _, f := range strings.Split(l[strings.IndexByte(l, ':')+1:], ",") {
				if v, ok := strings.CutPrefix(f, "calls="); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					calls += n
				}
			}
		case strings.HasPrefix(l, "used_cpu_sys:"), strings.HasPrefix(l, "used_cpu_user:"):
			v, _ := strconv.ParseFloat(l[strings.IndexByte(l, ':')+1:], 64)
			cpu += v
		}
	}
	return calls, cpu
}

// BenchmarkRetryCost compares what Redis does for a retry with what it does
// for a delayed enqueue (issue 15: a retry should cost no more): per job,
// Redis commands (scripts' inner calls included) and Redis CPU, on a
// private server. enqueue-in is Client.EnqueueIn; job-ok a job that
// succeeds, job-ok-policy the same under a retry policy (resque-retry's
// attempt counter, one round trip per run), job-retried one that fails and
// is retried in an hour (the retry written in the ack's MULTI).
//
//	go test -run '^$' -bench BenchmarkRetryCost -benchtime 20000x .
func BenchmarkRetryCost(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"enqueue-in", "job-ok", "job-ok-policy", "job-retried"} {
		b.Run(mode, func(b *testing.B) {
			srv := redistest.Start(b)
			opt, err := redis.ParseURL(srv.URL())
			if err != nil {
				b.Fatal(err)
			}
			rdb := redis.NewClient(opt)
			defer rdb.Close()
			conn, err := resq.Open(resq.ConnConfig{URL: srv.URL(), Logger: quietLogger})
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			client := testkit.Client(b, conn, resq.ClientConfig{})
			admin := resq.NewAdmin(conn)
			if mode == "enqueue-in" {
				c0, cpu0 := redisCounters(b, rdb)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := client.EnqueueIn(ctx, time.Hour, "q", "Job", i); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				c1, cpu1 := redisCounters(b, rdb)
				b.ReportMetric(float64(c1-c0)/float64(b.N), "redis-cmds/job")
				b.ReportMetric((cpu1-cpu0)*1e6/float64(b.N), "redis-µs/job")
				return
			}
			cfg := resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 10, Logger: quietLogger}
			if mode != "job-ok" {
				cfg.Retry.Default = &resq.RetryPolicy{Limit: 3, Backoff: resq.Backoff{Delays: []time.Duration{time.Hour}}}
			}
			w, err := resq.NewWorker(conn, cfg)
			if err != nil {
				b.Fatal(err)
			}
			fail := errors.New("try later")
			resq.Handle(w, "Job", func(ctx context.Context, n int) error {
				if mode == "job-retried" {
					return fail
				}
				return nil
			})
			for i := 0; i < b.N; i += 500 {
				batch := make([]resq.EnqueueParams, 0, 500)
				for j := i; j < min(b.N, i+500); j++ {
					batch = append(batch, resq.EnqueueParams{Queue: "q", Class: "Job", Args: []any{j}})
				}
				res, err := client.EnqueueBatch(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			runCtx, cancel := context.WithCancel(ctx)
			done := make(chan error, 1)
			c0, cpu0 := redisCounters(b, rdb)
			b.ResetTimer()
			go func() { done <- w.Run(runCtx) }()
			for {
				st, err := admin.Stats(ctx)
				if err == nil && st.Processed >= int64(b.N) {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
			b.StopTimer()
			c1, cpu1 := redisCounters(b, rdb)
			cancel()
			<-done
			b.ReportMetric(float64(c1-c0)/float64(b.N), "redis-cmds/job")
			b.ReportMetric((cpu1-cpu0)*1e6/float64(b.N), "redis-µs/job")
			if mode == "job-retried" {
				if n, _ := rdb.LLen(ctx, "resque:failed").Result(); n != 0 {
					b.Fatalf("%d failure records; every job should have been retried", n)
				}
			}
		})
	}
}
