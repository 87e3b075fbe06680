package wire_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/wire"
)

// BenchmarkMoveDue moves a backlog of 50,000 due jobs (one timestamp) per
// iteration and reports the move rate, with and without Lua.
//
//	go test -run '^$' -bench MoveDue -benchtime 3x ./internal/wire/
func BenchmarkMoveDue(b *testing.B) {
	for _, plain := range []bool{false, true} {
		for _, batch := range []int{100, 300, 1000} {
			b.Run(fmt.Sprintf("plain=%v/batch=%d", plain, batch), func(b *testing.B) {
				srv := pool.Get(b)
				opt, err := redis.ParseURL(srv.URL())
				if err != nil {
					b.Fatal(err)
				}
				rdb := redis.NewClient(opt)
				defer rdb.Close()
				s := wire.NewStore(rdb, "bench")
				if plain {
					s.UsePlainCommands()
				}
				lock := wire.Lock{Key: s.Keys.SchedulerMasterLock(""), Value: "bench:1"}
				srv.Do(b, "SET", lock.Key, lock.Value)
				const n = 50000
				var moved time.Duration
				for range b.N {
					b.StopTimer()
					push := make([]wire.DelayedPush, n)
					for i := range push {
						push[i] = wire.DelayedPush{TS: 100, Item: wire.RubyDelayedItem("SendFollowUpEmail", json.RawMessage(`[{"user_id":`+strconv.Itoa(i)+`}]`), "email")}
					}
					for _, err := range s.PushDelayed(bg, push) {
						if err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					start := time.Now()
					for {
						r, err := s.MoveDue(bg, lock, 100, wire.MoveOptions{Batch: batch})
						if err != nil {
							b.Fatal(err)
						}
						if r.Empty {
							break
						}
					}
					moved += time.Since(start)
					b.StopTimer()
					srv.Do(b, "DEL", "bench:queue:email")
					b.StartTimer()
				}
				b.ReportMetric(float64(n*b.N)/moved.Seconds(), "jobs/s")
			})
		}
	}
}
