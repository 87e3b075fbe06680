package wire_test

import (
	"fmt"
	"testing"

	"github.com/resq-go/resq/internal/wire"
)

// BenchmarkAckAndFetch is one batch of 10 acks that fetches the slots'
// next jobs, with scripts and with plain commands (held ahead in the pickup
// list); ns/op and allocs/op are per job.
//
//	go test -run '^$' -bench AckAndFetch -benchtime 20000x ./internal/wire/
func BenchmarkAckAndFetch(b *testing.B) {
	for _, mode := range []string{"scripts", "plain"} {
		b.Run(mode, func(b *testing.B) {
			srv := pool.Get(b)
			rdb := clientOf(b, srv)
			s := wire.NewStore(rdb, "resque")
			if mode == "plain" {
				s.UsePlainCommands()
			}
			const slots = 10
			ids := make([]string, slots)
			acks := make([]wire.Ack, slots)
			for i := range ids {
				ids[i] = fmt.Sprintf("h:1:q:%d", i)
				acks[i] = wire.Ack{WorkerID: ids[i], Processed: true, Queue: "q", Class: "Archive"}
			}
			fill := func(n int) {
				args := []string{"RPUSH", "resque:queue:q"}
				for range n {
					args = append(args, archivePayload)
				}
				srv.Do(b, args...)
			}
			next := &wire.FetchRequest{Queues: []string{"q"}, PickupOwner: "h:1", WorkerIDs: ids, MaxBytes: maxPayload}
			fill(4 * slots)
			if _, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, PickupOwner: "h:1", WorkerIDs: ids, MaxBytes: maxPayload, CheckHeld: true}, specInstant); err != nil {
				b.Fatal(err)
			}
			mark := wire.AckMark{Owner: "h:1:0"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += slots {
				if i%1000 == 0 {
					b.StopTimer()
					fill(1000 + 3*slots)
					b.StartTimer()
				}
				mark.Seq++
				got, _, err := s.AckAndFetch(bg, acks, specInstant, next, mark)
				if err != nil || len(got) != slots {
					b.Fatalf("AckAndFetch = %d jobs, %v", len(got), err)
				}
			}
		})
	}
}
