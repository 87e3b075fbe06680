package scheduler_test

import (
	"context"
	"encoding/json"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/scheduler"
	"github.com/resq-go/resq/internal/wire"
)

// BenchmarkLateness measures how late due jobs reach their queue after
// their due second, by Redis's clock, with the default settings: one job
// due in each of the next 15 seconds, pushed by a resq producer (which wakes
// the scheduler) or written raw as Ruby does (found by the 1 s poll).
//
//	go test -run '^$' -bench Lateness -benchtime 1x ./internal/scheduler/
func BenchmarkLateness(b *testing.B) {
	for _, ruby := range []bool{false, true} {
		name := "resq-producer"
		if ruby {
			name = "ruby-producer"
		}
		b.Run(name, func(b *testing.B) {
			srv := pool.Get(b)
			opt, _ := redis.ParseURL(srv.URL())
			rdb := redis.NewClient(opt)
			defer rdb.Close()
			ns := "late"
			store := wire.NewStore(rdb, ns)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			sch := scheduler.New(store, scheduler.Config{Lock: wire.Lock{Key: store.Keys.SchedulerMasterLock(""), Value: "b:1"}, Logger: quiet})
			go sch.Run(ctx)
			var late []time.Duration
			for range b.N {
				now, _ := rdb.Time(ctx).Result()
				const n = 15
				for i := 1; i <= n; i++ {
					ts := now.Unix() + int64(i)
					item := wire.RubyDelayedItem("J", json.RawMessage(strconv.FormatInt(ts, 10)), "q")
					if ruby {
						rdb.RPush(ctx, store.Keys.Delayed(ts), item)
						rdb.ZAdd(ctx, store.Keys.DelayedSchedule(), redis.Z{Score: float64(ts), Member: strconv.FormatInt(ts, 10)})
					} else {
						store.PushDelayed(ctx, []wire.DelayedPush{{TS: ts, Item: item}})
					}
				}
				for range n {
					v, err := rdb.BLPop(ctx, 5*time.Second, store.Keys.Queue("q")).Result()
					if err != nil {
						b.Fatal(err)
					}
					at, _ := rdb.Time(ctx).Result()
					var p struct{ Args []int64 }
					json.Unmarshal([]byte(v[1]), &p)
					late = append(late, at.Sub(time.Unix(p.Args[0], 0)))
				}
			}
			sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
			b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(late[(len(late)*99)/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "max-ms")
		})
	}
}
