package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// QueueNames returns the members of the queues set, sorted.
func (s *Store) QueueNames(ctx context.Context) ([]string, error) {
	qs, err := s.rdb.SMembers(ctx, s.Keys.Queues()).Result()
	sort.Strings(qs)
	return qs, err
}

// QueueSizes returns LLEN of each queue, pipelined.
func (s *Store) QueueSizes(ctx context.Context, queues []string) ([]int64, error) {
	cmds := make([]*redis.IntCmd, len(queues))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, q := range queues {
			cmds[i] = p.LLen(ctx, s.Keys.Queue(q))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(queues))
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// QueueSize is LLEN queue:<q>.
func (s *Store) QueueSize(ctx context.Context, q string) (int64, error) {
	return s.rdb.LLen(ctx, s.Keys.Queue(q)).Result()
}

// QueueRange returns count jobs of queue q from index start (0 is the next
// to run), as stored (Ruby's peek).
func (s *Store) QueueRange(ctx context.Context, q string, start, count int64) ([][]byte, error) {
	return s.listRange(ctx, s.Keys.Queue(q), start, count)
}

// StoredFailure is one element of the failed list: its exact bytes and the
// record they hold.
type StoredFailure struct {
	Index int64  // position in the list (0 is the oldest)
	Raw   []byte // the element as stored
	// Failure is the decoded record; its Payload is the job payload object
	// as popped. It is zero when Err is set.
	Failure Failure
	// Err is set when Raw is not a JSON record.
	Err error
}

// FailedRange returns count failure records from index start (0 is the
// oldest), each decoded.
func (s *Store) FailedRange(ctx context.Context, start, count int64) ([]StoredFailure, error) {
	raws, err := s.listRange(ctx, s.Keys.Failed(), start, count)
	if err != nil {
		return nil, err
	}
	out := make([]StoredFailure, len(raws))
	for i, raw := range raws {
		out[i] = StoredFailure{Index: start + int64(i), Raw: raw}
		out[i].Failure, out[i].Err = DecodeFailure(raw)
	}
	return out, nil
}

// listRange is LRANGE of count elements from start.
func (s *Store) listRange(ctx context.Context, key string, start, count int64) ([][]byte, error) {
	if count <= 0 {
		return nil, nil
	}
	vals, err := s.rdb.LRange(ctx, key, start, start+count-1).Result()
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(vals))
	for i, v := range vals {
		out[i] = []byte(v)
	}
	return out, nil
}

// ClearQueue deletes the jobs of a queue and keeps its name in queues.
func (s *Store) ClearQueue(ctx context.Context, q string) (int64, error) {
	var n *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.LLen(ctx, s.Keys.Queue(q))
		p.Del(ctx, s.Keys.Queue(q))
		return nil
	})
	return n.Val(), err
}

// RemoveQueue is Resque.remove_queue (docs/protocol.md §2.4): SREM queues, DEL queue:<q>.
func (s *Store) RemoveQueue(ctx context.Context, q string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, s.Keys.Queues(), q)
		p.Del(ctx, s.Keys.Queue(q))
		return nil
	})
	return err
}

// RemoveMatching removes every job of queue q for which match returns true,
// reusing each element's stored bytes in LREM (docs/protocol.md §2.6), so formatting and
// extra fields never prevent a match. It returns the number removed.
func (s *Store) RemoveMatching(ctx context.Context, q string, match func(raw []byte) bool) (int64, error) {
	vals, err := s.rdb.LRange(ctx, s.Keys.Queue(q), 0, -1).Result()
	if err != nil {
		return 0, err
	}
	seen := map[string]bool{}
	var cmds []*redis.IntCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, v := range vals {
			if seen[v] || !match([]byte(v)) {
				continue
			}
			seen[v] = true
			cmds = append(cmds, p.LRem(ctx, s.Keys.Queue(q), 0, v))
		}
		return nil
	})
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, err
}

// Info holds the numbers of Resque.info (docs/protocol.md §6.2).
type Info struct {
	Pending    int64
	Processed  int64
	Failed     int64 // LLEN failed, as Ruby reports it
	StatFailed int64 // stat:failed, the failure counter
	Queues     int64
	Workers    int64
	Working    int64
}

// Info computes Resque.info exactly as Ruby does.
func (s *Store) Info(ctx context.Context) (Info, error) {
	var in Info
	queues, err := s.rdb.SMembers(ctx, s.Keys.Queues()).Result()
	if err != nil {
		return in, err
	}
	workers, err := s.rdb.SMembers(ctx, s.Keys.Workers()).Result()
	if err != nil {
		return in, err
	}
	in.Queues, in.Workers = int64(len(queues)), int64(len(workers))
	sizes, err := s.QueueSizes(ctx, queues)
	if err != nil {
		return in, err
	}
	for _, n := range sizes {
		in.Pending += n
	}
	var processed, statFailed *redis.StringCmd
	var failed *redis.IntCmd
	var working *redis.SliceCmd
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		processed = p.Get(ctx, s.Keys.StatProcessed())
		statFailed = p.Get(ctx, s.Keys.StatFailed())
		failed = p.LLen(ctx, s.Keys.Failed())
		if len(workers) > 0 {
			keys := make([]string, len(workers))
			for i, w := range workers {
				keys[i] = s.Keys.Worker(w)
			}
			working = p.MGet(ctx, keys...)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return in, err
	}
	in.Processed, _ = processed.Int64()
	in.StatFailed, _ = statFailed.Int64()
	in.Failed = failed.Val()
	if working != nil {
		for _, v := range working.Val() {
			if str, ok := v.(string); ok && str != "" {
				in.Working++
			}
		}
	}
	return in, nil
}

// FailedCount is LLEN failed.
func (s *Store) FailedCount(ctx context.Context) (int64, error) {
	return s.rdb.LLen(ctx, s.Keys.Failed()).Result()
}

// ErrFailureChanged is returned when a failure record at an index is not the
// one the caller expected (another client removed or changed records).
var ErrFailureChanged = errors.New("the failure list changed while it was being updated; list it again and retry")

// ErrNoFailure is returned for an index past the end of the failed list.
var ErrNoFailure = errors.New("no failure record at that index")

// FailureAt returns the raw record at index i.
func (s *Store) FailureAt(ctx context.Context, i int64) ([]byte, error) {
	v, err := s.rdb.LIndex(ctx, s.Keys.Failed(), i).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNoFailure
	}
	return []byte(v), err
}

// RetryFailure requeues the failure at index i (docs/protocol.md §5.3 requeue): the
// record gets retried_at and stays in the list; the job is pushed to the
// record's queue. Unlike Ruby, the original payload bytes are pushed (extra
// fields such as id and signatures are kept), unless the payload was not a
// job object. The update is a WATCH/MULTI compare-and-set on the record.
func (s *Store) RetryFailure(ctx context.Context, i int64, now time.Time) (queue string, err error) {
	key := s.Keys.Failed()
	err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.LIndex(ctx, key, i).Result()
		if errors.Is(err, redis.Nil) {
			return ErrNoFailure
		}
		if err != nil {
			return err
		}
		f, err := DecodeFailure([]byte(v))
		if err != nil {
			return fmt.Errorf("failure %d is not a valid record: %w", i, err)
		}
		if f.Queue == "" {
			return fmt.Errorf("failure %d names no queue to retry into", i)
		}
		job, ok := RawOfInvalid(f.Payload)
		if !ok {
			job = bytes.TrimSpace(f.Payload)
			if len(job) == 0 || job[0] != '{' {
				return fmt.Errorf("failure %d has no job payload to retry", i)
			}
		}
		updated, err := SetField([]byte(v), "retried_at", json.RawMessage(QuoteString(FailedAt(now))))
		if err != nil {
			return err
		}
		queue = f.Queue
		var id string
		if jp, err := DecodePayload(job); err == nil {
			id = jp.ID
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.LSet(ctx, key, i, updated)
			p.SAdd(ctx, s.Keys.Queues(), f.Queue)
			p.RPush(ctx, s.Keys.Queue(f.Queue), job)
			if id != "" {
				p.Del(ctx, s.Keys.Seen(id)) // a deliberate retry is not a replay
			}
			return nil
		})
		return err
	}, key)
	if errors.Is(err, redis.TxFailedErr) {
		return "", ErrFailureChanged
	}
	return queue, err
}

// RemoveFailure deletes the failure at index i if it still holds expected
// (nil: whatever it holds). Ruby's LSET placeholder + LREM, with a placeholder
// no real record can equal.
func (s *Store) RemoveFailure(ctx context.Context, i int64, expected []byte) error {
	key := s.Keys.Failed()
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.LIndex(ctx, key, i).Result()
		if errors.Is(err, redis.Nil) {
			return ErrNoFailure
		}
		if err != nil {
			return err
		}
		if expected != nil && v != string(expected) {
			return ErrFailureChanged
		}
		const placeholder = "\x00resq:removed\x00"
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.LSet(ctx, key, i, placeholder)
			p.LRem(ctx, key, 1, placeholder)
			return nil
		})
		return err
	}, key)
	if errors.Is(err, redis.TxFailedErr) {
		return ErrFailureChanged
	}
	return err
}

// ClearFailures deletes the failed list and returns how many records it held.
func (s *Store) ClearFailures(ctx context.Context) (int64, error) {
	var n *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.LLen(ctx, s.Keys.Failed())
		p.Del(ctx, s.Keys.Failed())
		return nil
	})
	return n.Val(), err
}

// KeyNames returns every key under the namespace (SCAN, not KEYS), stripped
// of the namespace, sorted.
func (s *Store) KeyNames(ctx context.Context) ([]string, error) {
	var out []string
	iter, err := s.scan(ctx, s.Keys.AllPattern(), 1000)
	if err != nil {
		return nil, err
	}
	for iter.Next(ctx) {
		out = append(out, s.Keys.Strip(iter.Val()))
	}
	sort.Strings(out)
	return out, iter.Err()
}
