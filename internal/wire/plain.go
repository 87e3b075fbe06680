package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/envelope"
)

// Plain-command mode. Some operators deny Lua scripting (an ACL without
// @scripting, or EVAL/EVALSHA/SCRIPT renamed away, as a CVE workaround).
// The Store then runs the core path — fetch, requeue, dead-worker recovery,
// capped push, secret-field registration — with plain commands, WATCH and
// MULTI/EXEC instead of scripts. It costs round trips (a fetch takes three
// or more instead of one, and acks fetch nothing), and a payload over the
// size limit is transferred before it is refused; the guarantees hold: a
// job is in a Redis list or in a slot's record at every moment.
//
// The fetch moves jobs from the queues into the process's pickup lists
// (LMOVE, atomic, the lists a dead process's successor returns to their
// queues), then, in one MULTI, removes each claimed job from its pickup list
// and writes the slot's record. Only the process's own fetcher claims from
// its pickup lists, so a claim cannot race another.

// ScriptsRefused reports whether err is Redis refusing Lua scripting: an ACL
// without @scripting (NOPERM) or the scripting commands renamed away
// (unknown command).
func ScriptsRefused(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	if strings.HasPrefix(msg, "noperm") {
		return true
	}
	return strings.Contains(msg, "unknown command") && (strings.Contains(msg, "eval") || strings.Contains(msg, "script"))
}

// ProbeScripts loads the fetch script and switches the Store to plain
// commands when Redis refuses scripting. It reports whether scripts work.
func (s *Store) ProbeScripts(ctx context.Context) (bool, error) {
	err := fetchScript.Load(ctx, s.rdb).Err()
	switch {
	case err == nil:
		return true, nil
	case ScriptsRefused(err):
		s.plain.Store(true)
		return false, nil
	default:
		return false, err
	}
}

// PlainCommands reports whether the Store runs without scripts.
func (s *Store) PlainCommands() bool { return s.plain.Load() }

// UsePlainCommands makes the Store run without scripts from now on.
func (s *Store) UsePlainCommands() { s.plain.Store(true) }

// scriptRefused switches to plain commands when err says scripts are refused.
func (s *Store) scriptRefused(err error) bool {
	if ScriptsRefused(err) {
		s.plain.Store(true)
		return true
	}
	return false
}

// pausedValue is pause-all-workers' test: "true", any case, blanks around.
func pausedValue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// fetchPlain is Fetch without scripts. owner must be set: the jobs pass
// through its pickup lists.
func (s *Store) fetchPlain(ctx context.Context, r FetchRequest, now time.Time) ([]Fetched, error) {
	if r.PickupOwner == "" {
		return nil, errors.New("plain-command fetch needs a pickup owner")
	}
	n := len(r.WorkerIDs)
	pipe := s.rdb.Pipeline()
	pause := pipe.Get(ctx, s.Keys.PauseAll())
	held := make([]*redis.StringCmd, n)
	if r.CheckHeld {
		for i, id := range r.WorkerIDs {
			held[i] = pipe.Get(ctx, s.Keys.Worker(id))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	if pausedValue(pause.Val()) {
		return nil, ErrPaused
	}
	var out []Fetched
	var free []int
	for i, c := range held {
		if c == nil {
			free = append(free, i)
		} else if rec, err := c.Bytes(); err == nil {
			out = append(out, heldJob(i, rec))
		} else {
			free = append(free, i)
		}
	}
	if len(free) == 0 {
		return out, nil
	}
	// Move up to len(free) jobs into the pickup lists, queue by queue.
	need := len(free)
	for _, q := range r.Queues {
		if need == 0 {
			break
		}
		pipe := s.rdb.Pipeline()
		moves := make([]*redis.StringCmd, need)
		for i := range moves {
			moves[i] = pipe.LMove(ctx, s.Keys.Queue(q), s.Keys.Pickup(r.PickupOwner, q), "LEFT", "RIGHT")
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return out, err // what moved stays in the pickup lists for the next fetch
		}
		for _, m := range moves {
			if m.Err() == nil {
				need--
			}
		}
	}
	// Claim the oldest waiting jobs, higher-priority queues first.
	pipe = s.rdb.Pipeline()
	ranges := make([]*redis.StringSliceCmd, len(r.Queues))
	for i, q := range r.Queues {
		ranges[i] = pipe.LRange(ctx, s.Keys.Pickup(r.PickupOwner, q), 0, int64(len(free)-1))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return out, err
	}
	type claim struct {
		slot  int
		queue string
		job   string
	}
	var claims []claim
	for i, c := range ranges {
		for _, job := range c.Val() {
			if len(claims) == len(free) {
				break
			}
			claims = append(claims, claim{slot: free[len(claims)], queue: r.Queues[i], job: job})
		}
	}
	if len(claims) == 0 {
		return out, nil
	}
	runAt := RunAt(now)
	fetched := make([]Fetched, len(claims))
	rems := make([]*redis.IntCmd, len(claims))
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range claims {
			f := Fetched{Slot: c.slot, Queue: c.queue, RunAt: runAt, Raw: []byte(c.job)}
			var body []byte
			switch {
			case len(c.job) > r.MaxBytes:
				head := c.job[:min(len(c.job), 1024)]
				f.Raw, f.Oversize = []byte(head), &Oversize{Size: len(c.job), SHA1: envelope.SHA1Hex([]byte(c.job))}
				body = appendString(nil, head)
			case looksLikeObject(f.Raw):
				body, f.storedAsIs = f.Raw, true
			default:
				body = appendString(nil, c.job)
			}
			fetched[i] = f
			rems[i] = p.LRem(ctx, s.Keys.Pickup(r.PickupOwner, c.queue), 1, c.job)
			rec := append([]byte(RecordPrefix(c.queue, runAt)), body...)
			p.Set(ctx, s.Keys.Worker(r.WorkerIDs[c.slot]), append(rec, '}'), 0)
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	var lost []string
	for i, c := range rems {
		if c.Val() == 1 {
			out = append(out, fetched[i])
		} else {
			// Gone from the pickup list (a recoverer that took this process
			// for dead returned it to its queue): not ours to run.
			lost = append(lost, s.Keys.Worker(r.WorkerIDs[claims[i].slot]))
		}
	}
	if len(lost) > 0 {
		if err := s.rdb.Del(ctx, lost...).Err(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// looksLikeObject is the fetch script's test for a payload stored in the
// record as is: a JSON object (blanks around allowed).
func looksLikeObject(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 1 && t[0] == '{' && t[len(t)-1] == '}' && json.Valid(b)
}

// requeuePlain is Requeue without scripts (WATCH on the record).
func (s *Store) requeuePlain(ctx context.Context, workerID, queue string, payload []byte) (bool, error) {
	key := s.Keys.Worker(workerID)
	done := false
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		if err := tx.Get(ctx, key).Err(); errors.Is(err, redis.Nil) {
			return nil
		} else if err != nil {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SAdd(ctx, s.Keys.Queues(), queue)
			p.LPush(ctx, s.Keys.Queue(queue), payload)
			p.Del(ctx, key)
			return nil
		})
		done = err == nil
		return err
	}, key)
	return done, err
}

// recoverPlain is RecoverWorker without scripts (WATCH on the record).
func (s *Store) recoverPlain(ctx context.Context, id string, expected []byte, target string, push []byte, queue string, requeue bool) (bool, error) {
	key := s.Keys.Worker(id)
	done := false
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		rec, err := tx.Get(ctx, key).Bytes()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		has := err == nil
		if len(expected) > 0 && (!has || !bytes.Equal(rec, expected)) || len(expected) == 0 && has {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if len(expected) > 0 {
				if requeue {
					p.SAdd(ctx, s.Keys.Queues(), queue)
					p.LPush(ctx, target, push)
				} else {
					p.RPush(ctx, target, push)
				}
			}
			p.SRem(ctx, s.Keys.Workers(), id)
			p.Del(ctx, key, s.Keys.WorkerStarted(id), s.Keys.StatProcessedBy(id), s.Keys.StatFailedBy(id))
			p.HDel(ctx, s.Keys.Heartbeats(), id)
			return nil
		})
		done = err == nil
		return err
	}, key)
	return done, err
}

// pushCappedPlain is PushCapped without scripts (WATCH on the queue).
func (s *Store) pushCappedPlain(ctx context.Context, queue string, payload []byte, limit int64) (int64, bool, error) {
	key := s.Keys.Queue(queue)
	var n int64
	pushed := false
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		var err error
		n, err = tx.LLen(ctx, key).Result()
		if err != nil || n >= limit {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SAdd(ctx, s.Keys.Queues(), queue)
			p.RPush(ctx, key, payload)
			return nil
		})
		pushed = err == nil
		return err
	}, key)
	return n, pushed, err
}

// addSecretsPlain is AddSecretFields without scripts (WATCH on the hash).
func (s *Store) addSecretsPlain(ctx context.Context, class string, fields []string) error {
	key := s.Keys.SecretFields()
	return s.watchRetry(ctx, func(tx *redis.Tx) error {
		cur, err := tx.HGet(ctx, key, class).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		merged := mergeLines(cur, fields)
		if merged == cur {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, class, merged)
			return nil
		})
		return err
	}, key)
}

// mergeLines adds fields missing from the newline-separated list cur.
func mergeLines(cur string, fields []string) string {
	have := map[string]bool{}
	for _, f := range strings.Split(cur, "\n") {
		if f != "" {
			have[f] = true
		}
	}
	for _, f := range fields {
		if !have[f] {
			have[f] = true
			if cur == "" {
				cur = f
			} else {
				cur += "\n" + f
			}
		}
	}
	return cur
}

// watchRetry runs fn in WATCH on keys, again when a watched key changed
// before EXEC (up to 20 times).
func (s *Store) watchRetry(ctx context.Context, fn func(*redis.Tx) error, keys ...string) error {
	var err error
	for range 20 {
		err = s.rdb.Watch(ctx, fn, keys...)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return err
}
