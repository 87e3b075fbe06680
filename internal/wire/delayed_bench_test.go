package wire_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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
				rdb := clientOf(b, srv)
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

// BenchmarkMoveBacklog drains 50,000 due jobs spread over past seconds
// (perSecond jobs per timestamp) with the default batch, step by step
// (MoveDueUpTo: read, then move) and with a DueMover (each move pipelined
// with the next step's read), with and without Lua.
//
//	go test -run '^$' -bench MoveBacklog -benchtime 3x ./internal/wire/
func BenchmarkMoveBacklog(b *testing.B) {
	for _, plain := range []bool{false, true} {
		for _, perSecond := range []int{1, 100} {
			for _, mode := range []string{"step", "mover"} {
				b.Run(fmt.Sprintf("plain=%v/per-second=%d/%s", plain, perSecond, mode), func(b *testing.B) {
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
					var cpu float64
					for range b.N {
						b.StopTimer()
						push := make([]wire.DelayedPush, n)
						for i := range push {
							push[i] = wire.DelayedPush{TS: 100000 - int64(i/perSecond), Item: wire.RubyDelayedItem("SendFollowUpEmail", json.RawMessage(`[{"user_id":`+strconv.Itoa(i)+`}]`), "email")}
						}
						for _, err := range s.PushDelayed(bg, push) {
							if err != nil {
								b.Fatal(err)
							}
						}
						b.StartTimer()
						cpu0 := redisCPU(b, srv.Do(b, "INFO", "cpu"))
						start := time.Now()
						m := s.NewDueMover(lock, wire.MoveOptions{})
						for {
							var r wire.MoveResult
							if mode == "step" {
								r, err = s.MoveDueUpTo(bg, lock, 200000, wire.MoveOptions{})
							} else {
								r, err = m.Step(bg, 200000, time.Now())
							}
							if err != nil {
								b.Fatal(err)
							}
							if r.Timestamps == 0 {
								break
							}
						}
						moved += time.Since(start)
						b.StopTimer()
						cpu += redisCPU(b, srv.Do(b, "INFO", "cpu")) - cpu0
						if got := srv.Do(b, "LLEN", "bench:queue:email"); got != strconv.Itoa(n) {
							b.Fatalf("moved %s of %d", got, n)
						}
						srv.Do(b, "DEL", "bench:queue:email")
						b.StartTimer()
					}
					b.ReportMetric(float64(n*b.N)/moved.Seconds(), "jobs/s")
					b.ReportMetric(cpu*1e6/float64(n*b.N), "redis-cpu-µs/job")
				})
			}
		}
	}
}

// redisCPU reads used_cpu_sys + used_cpu_user (seconds) from INFO cpu:
// the Redis work of a move, which other load on the machine does not
// inflate as it does the wall time.
func redisCPU(b *testing.B, info string) float64 {
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		if k == "used_cpu_sys" || k == "used_cpu_user" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("INFO cpu: %q", line)
			}
			sum += f
		}
	}
	return sum
}
