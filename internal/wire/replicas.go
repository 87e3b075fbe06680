package wire

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Replica acknowledgements. Redis replicates asynchronously: a master
// answers a write before any replica has it, and a failover that promotes
// a replica loses what the replica had not received. Sentinel's own
// failover opens such a window on purpose: it promotes the replica while
// the old master still takes writes, and writes the old master takes until
// it is turned into a replica are gone.
//
// With SetReplicaAcks(n, timeout) the enqueue writes (Push, PushMany,
// PushCapped, PushDelayed) send WAIT n timeout on the connection that made
// the write, pipelined behind it, and report success only when n replicas
// confirmed it. WAIT counts the writes of its own connection, so it is
// always on that connection: in the same pipeline, after the EVALSHA of a
// script, after the EXEC of a WATCH transaction; on a cluster the pipeline
// goes to the master that owns the namespace's slot (a cluster client would
// route the keyless WAIT to any node).
//
// The worker's writes (pickups, acks, retries, failure records) and the
// scheduler's moves are not confirmed: losing one of them puts the job
// back where it was before (the slot's record or the delayed queue holds
// it), so it runs again, which at-least-once delivery allows.

// ErrNotReplicated is wrapped by the error of an enqueue write that the
// master stored but fewer replicas than asked confirmed in time. The job
// may still run (the master has it) or be lost in a failover; retrying the
// enqueue may run it twice.
var ErrNotReplicated = errors.New("write not confirmed by enough replicas")

// replicaAcks is a Store's WAIT setting; n == 0 turns it off.
type replicaAcks struct {
	n       int64
	timeout time.Duration
}

// DefaultReplicaAckTimeout is how long a confirmed write waits for its
// replicas when no timeout is given.
const DefaultReplicaAckTimeout = time.Second

// SetReplicaAcks makes the enqueue writes wait for n replicas (see above),
// each for at most timeout (DefaultReplicaAckTimeout when 0). n == 0 turns
// it off. Call it before the Store is used.
func (s *Store) SetReplicaAcks(n int, timeout time.Duration) {
	if timeout <= 0 {
		timeout = DefaultReplicaAckTimeout
	}
	s.acks = replicaAcks{n: int64(n), timeout: timeout}
}

// writeNode is where a confirmed write goes: the Store's client, or on a
// cluster the master of the namespace's slot, so that the write and its
// WAIT share a connection.
func (s *Store) writeNode(ctx context.Context) (redis.Cmdable, error) {
	if s.acks.n == 0 {
		return s.rdb, nil
	}
	return s.keyNode(ctx)
}

// confirmIn queues the WAIT behind the writes queued on p; nil when
// replica acknowledgements are off.
func (s *Store) confirmIn(ctx context.Context, p redis.Cmdable) *redis.IntCmd {
	if s.acks.n == 0 {
		return nil
	}
	ms := s.acks.timeout.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	c := redis.NewIntCmd(ctx, "wait", s.acks.n, ms)
	switch p := p.(type) {
	case redis.Pipeliner:
		_ = p.Process(ctx, c)
	case *redis.Tx:
		_ = p.Process(ctx, c)
	default:
		c.SetErr(fmt.Errorf("replica acknowledgement: %T cannot carry WAIT", p))
	}
	return c
}

// confirmed returns nil when w (from confirmIn) saw enough replicas, or
// when acknowledgements are off.
func (s *Store) confirmed(w *redis.IntCmd) error {
	if w == nil {
		return nil
	}
	got, err := w.Result()
	if err != nil {
		return fmt.Errorf("%w: the master stored the write, but WAIT failed: %v", ErrNotReplicated, err)
	}
	if got < s.acks.n {
		return fmt.Errorf("%w: the master stored the write, but %d of %d replicas confirmed it within %v; it is lost if the master fails over now (ReplicaAcks)",
			ErrNotReplicated, got, s.acks.n, s.acks.timeout)
	}
	return nil
}

// runScript runs sc as Script.Run does (EVALSHA, EVAL on NOSCRIPT); with
// replica acknowledgements on, each call is pipelined with its WAIT. The
// error is the script's, else the confirmation's.
func (s *Store) runScript(ctx context.Context, sc *redis.Script, keys []string, args ...any) (*redis.Cmd, error) {
	if s.acks.n == 0 {
		c := sc.Run(ctx, s.rdb, keys, args...)
		return c, c.Err()
	}
	node, err := s.writeNode(ctx)
	if err != nil {
		return nil, err
	}
	call := func(eval func(p redis.Pipeliner) *redis.Cmd) (*redis.Cmd, error) {
		var c *redis.Cmd
		var w *redis.IntCmd
		_, _ = node.Pipelined(ctx, func(p redis.Pipeliner) error {
			c = eval(p)
			w = s.confirmIn(ctx, p)
			return nil
		})
		if err := c.Err(); err != nil {
			return c, err
		}
		return c, s.confirmed(w)
	}
	c, err := call(func(p redis.Pipeliner) *redis.Cmd { return sc.EvalSha(ctx, p, keys, args...) })
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		c, err = call(func(p redis.Pipeliner) *redis.Cmd { return sc.Eval(ctx, p, keys, args...) })
	}
	return c, err
}
