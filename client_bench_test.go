package resq_test

import (
	"context"
	"testing"
)

// benchArgs is the bench module's job argument shape.
type benchArgs struct {
	N int64 `json:"n"`
	T int64 `json:"t"`
}

// BenchmarkEnqueue: one producer's checked Enqueue, one round trip per call.
// Compare allocs/op and ns/op with benchstat; wall time includes Redis.
func BenchmarkEnqueue(b *testing.B) {
	bd := setupBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	var n int64
	for b.Loop() {
		n++
		if _, err := bd.client.Enqueue(ctx, "q", "Noop", benchArgs{N: n, T: n}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnqueueParallel: 8 goroutines per GOMAXPROCS enqueue through one
// Client (the group commit of concurrent callers).
func BenchmarkEnqueueParallel(b *testing.B) {
	bd := setupBench(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		var n int64
		for pb.Next() {
			n++
			if _, err := bd.client.Enqueue(ctx, "q", "Noop", benchArgs{N: n, T: n}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
