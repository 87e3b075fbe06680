package resq

import (
	"context"
	"testing"
)

// BenchmarkEnqueuePrepare is the client-side work of one Enqueue without
// Redis: validate, encode the args, stamp the id, encode the payload.
func BenchmarkEnqueuePrepare(b *testing.B) {
	type args struct {
		N int64 `json:"n"`
		T int64 `json:"t"`
	}
	conn, err := Open(ConnConfig{URL: "redis://127.0.0.1:1/0"}) // never dialled
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	c, err := NewClient(conn, ClientConfig{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	var n int64
	for b.Loop() {
		n++
		job, err := c.prepare(ctx, EnqueueParams{Queue: "q", Class: "Noop", Args: []any{args{N: n, T: n}}})
		if err != nil {
			b.Fatal(err)
		}
		if err := c.encode(job); err != nil {
			b.Fatal(err)
		}
	}
}
