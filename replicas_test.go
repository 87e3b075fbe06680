package resq_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/testkit"
)

// ReplicaAcks, set from the URL: every enqueue call (Enqueue, EnqueueIn,
// EnqueueBatch, a capped queue) returns ErrNotReplicated while the master
// has no replica, and succeeds once one holds the job.
func TestEnqueueReplicaAcks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	master := redistest.Start(t)
	// A short wait where no replica can answer, a long one (it ends when
	// the replica answers) where one can.
	client := func(timeout string) *resq.Client {
		conn := openConn(t, resq.ConnConfig{URL: master.URL() + "?replica_acks=1&replica_ack_timeout=" + timeout, Namespace: "ra"})
		return testkit.Client(t, conn, resq.ClientConfig{QueueCaps: map[string]int64{"capped": 100}})
	}
	short, long := client("50ms"), client("5s")
	cl := short
	calls := []struct {
		name string
		do   func() error
	}{
		{"Enqueue", func() error { _, err := cl.Enqueue(ctx, "q", "Job", 1); return err }},
		{"Enqueue to a capped queue", func() error { _, err := cl.Enqueue(ctx, "capped", "Job", 2); return err }},
		{"EnqueueIn", func() error { _, err := cl.EnqueueIn(ctx, time.Hour, "q", "Job", 3); return err }},
		{"EnqueueBatch", func() error {
			res, err := cl.EnqueueBatch(ctx, []resq.EnqueueParams{{Queue: "q", Class: "Job", Args: []any{4}}, {Queue: "q", Class: "Job", Args: []any{5}}})
			for _, r := range res {
				if r.Err != nil && !errors.Is(r.Err, resq.ErrNotReplicated) {
					t.Errorf("EnqueueBatch item: %v, want ErrNotReplicated", r.Err)
				}
			}
			return err
		}},
	}
	for _, c := range calls {
		if err := c.do(); !errors.Is(err, resq.ErrNotReplicated) {
			t.Errorf("%s without a replica: %v, want ErrNotReplicated", c.name, err)
		}
	}
	replica := redistest.StartReplica(t, master, redistest.Options{})
	cl = long
	for _, c := range calls {
		if err := c.do(); err != nil {
			t.Errorf("%s with a replica: %v", c.name, err)
		}
	}
	// Each call returned after the replica had its job: 1 + 2 jobs in q,
	// twice (the first round is stored on the master and replicated later).
	if n := replica.Do(t, "LLEN", "ra:queue:q"); n != "6" {
		t.Errorf("replica's queue holds %s jobs, want 6", n)
	}
}

// On a cluster the WAIT goes to the master owning the namespace's slot,
// on the connection that made the write; only that master has a replica
// here, so a WAIT sent to any other node would find none.
func TestEnqueueReplicaAcksCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := redistest.StartCluster(t, redistest.Options{})
	const ns = "{ra}"
	owner := c.SlotOwner(t, ns+":queues")
	replica := c.AddReplica(t, owner)
	conn := openConn(t, resq.ConnConfig{URL: c.URL(), Namespace: ns, ReplicaAcks: 1, ReplicaAckTimeout: 5 * time.Second})
	cl := newTestClient(t, conn)
	for i := range 20 {
		if _, err := cl.Enqueue(ctx, "q", "Job", i); err != nil {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	if _, err := cl.EnqueueIn(ctx, time.Hour, "q", "Job", 99); err != nil {
		t.Fatalf("EnqueueIn: %v", err)
	}
	// a cluster replica serves reads on a READONLY connection
	rd := redis.NewClient(&redis.Options{Addr: replica.Addr(), OnConnect: func(ctx context.Context, cn *redis.Conn) error {
		return cn.ReadOnly(ctx).Err()
	}})
	defer rd.Close()
	if n, err := rd.LLen(ctx, ns+":queue:q").Result(); n != 20 || err != nil {
		t.Errorf("the owner's replica holds %d jobs (%v), want 20", n, err)
	}
	// A namespace whose slot's master has no replica is refused.
	other := "{rb}"
	for i := 0; c.SlotOwner(t, other+":queues") == owner; i++ {
		other = "{rb" + string(rune('a'+i)) + "}"
	}
	conn2 := openConn(t, resq.ConnConfig{URL: c.URL(), Namespace: other, ReplicaAcks: 1, ReplicaAckTimeout: 50 * time.Millisecond})
	if _, err := newTestClient(t, conn2).Enqueue(ctx, "q", "Job", 1); !errors.Is(err, resq.ErrNotReplicated) {
		t.Errorf("enqueue under %s (master without a replica): %v, want ErrNotReplicated", other, err)
	}
}

// BenchmarkEnqueueReplicaAcks: one producer's Enqueue to a master with one
// replica, without and with ReplicaAcks 1 (the WAIT pipelined behind the
// push), and 8 producers sharing the Client's pipelines (one WAIT per
// flush). go test -run '^$' -bench BenchmarkEnqueueReplicaAcks -count 3 .
func BenchmarkEnqueueReplicaAcks(b *testing.B) {
	ctx := context.Background()
	master := redistest.Start(b)
	redistest.StartReplica(b, master, redistest.Options{})
	for _, acks := range []int{0, 1} {
		conn, err := resq.Open(resq.ConnConfig{URL: master.URL(), Namespace: "bra" + strconv.Itoa(acks), ReplicaAcks: acks})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		cl := testkit.Client(b, conn, resq.ClientConfig{})
		b.Run("acks="+strconv.Itoa(acks), func(b *testing.B) {
			var n int64
			for b.Loop() {
				n++
				if _, err := cl.Enqueue(ctx, "q", "Noop", benchArgs{N: n, T: n}); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("acks="+strconv.Itoa(acks)+"/producers=8", func(b *testing.B) {
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				var n int64
				for pb.Next() {
					n++
					if _, err := cl.Enqueue(ctx, "q", "Noop", benchArgs{N: n, T: n}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
