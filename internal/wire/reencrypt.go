package wire

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/envelope"
)

// envelopeFields are the payload fields ReplaceEnvelope rewrites, in the
// order Encode writes them.
var envelopeFields = []string{"args", "enc", "kid", "sig"}

// ReplaceEnvelope returns payload with its "args" value replaced by args and
// its "enc", "kid" and "sig" fields set from env: rewritten where they are,
// appended in Encode's order when missing, removed when env has no
// ciphertext ("enc") or no signature ("kid", "sig"). Every other field keeps
// its place and its exact bytes (class, id and enqueued_at are signed), so a
// payload re-sealed under new keys differs only in its envelope. A payload
// that repeats one of those four fields is refused.
func ReplaceEnvelope(payload []byte, args json.RawMessage, env envelope.Envelope) ([]byte, error) {
	args = bytes.TrimSpace(args)
	if len(args) == 0 || args[0] != '[' || !json.Valid(args) {
		return nil, errors.New("replace envelope: args must be a JSON array")
	}
	values := map[string]json.RawMessage{"args": args}
	if e := env.Enc; e != nil {
		values["enc"] = appendEncrypted(nil, e)
	}
	if sig := env.Sig; sig != nil {
		values["kid"] = json.RawMessage(QuoteString(sig.KID))
		values["sig"] = json.RawMessage(`"` + base64.StdEncoding.EncodeToString(sig.Value) + `"`)
	}

	dec := json.NewDecoder(bytes.NewReader(payload))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("replace envelope: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("replace envelope: the payload is not a JSON object")
	}
	out := make([]byte, 0, len(payload)+len(args)+128)
	out = append(out, '{')
	seen := map[string]bool{}
	n := 0
	field := func(name string, v json.RawMessage) {
		if n > 0 {
			out = append(out, ',')
		}
		out = appendString(out, name)
		out = append(out, ':')
		out = append(out, v...)
		n++
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("replace envelope: %w", err)
		}
		key, _ := kt.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("replace envelope: %w", err)
		}
		if !isEnvelopeField(key) {
			field(key, v)
			continue
		}
		if seen[key] {
			return nil, fmt.Errorf("replace envelope: the payload has two %q fields", key)
		}
		seen[key] = true
		if nv, ok := values[key]; ok {
			field(key, nv)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("replace envelope: %w", err)
	}
	for _, name := range envelopeFields {
		if nv, ok := values[name]; ok && !seen[name] {
			field(name, nv)
		}
	}
	return append(out, '}'), nil
}

func isEnvelopeField(name string) bool {
	for _, f := range envelopeFields {
		if f == name {
			return true
		}
	}
	return false
}

// ReplaceQueued replaces one queued job of queue whose bytes are exactly old
// with updated, atomically: the element at index hint if it still holds old,
// else the first element anywhere in the queue that does. It returns the
// index replaced, or ok false (and changes nothing) when no element holds
// old any more: a worker took the job, or it was removed. Workers pop
// concurrently; an element is never replaced unless its bytes are the ones
// the caller read. Callers walking a list correct their next hint by how
// far the element had moved.
func (s *Store) ReplaceQueued(ctx context.Context, queue string, hint int64, old, updated []byte) (at int64, ok bool, err error) {
	return s.replaceInList(ctx, s.Keys.Queue(queue), hint, old, updated)
}

// ReplaceFailure replaces the failure record whose bytes are exactly old
// with updated, as ReplaceQueued does for queued jobs.
func (s *Store) ReplaceFailure(ctx context.Context, hint int64, old, updated []byte) (at int64, ok bool, err error) {
	return s.replaceInList(ctx, s.Keys.Failed(), hint, old, updated)
}

func (s *Store) replaceInList(ctx context.Context, key string, hint int64, old, updated []byte) (int64, bool, error) {
	if s.plain.Load() {
		return s.replaceInListPlain(ctx, key, hint, old, updated)
	}
	n, err := replaceInListScript.Run(ctx, s.rdb, []string{key}, hint, old, updated).Int64()
	if s.scriptRefused(err) {
		return s.replaceInListPlain(ctx, key, hint, old, updated)
	}
	return n, err == nil && n >= 0, err
}

// replaceInListPlain is replaceInList without scripts: the same
// compare-and-set under WATCH on the list (retried while workers pop).
func (s *Store) replaceInListPlain(ctx context.Context, key string, hint int64, old, updated []byte) (int64, bool, error) {
	at := int64(-1)
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		at = -1
		i := hint
		if i >= 0 {
			v, err := tx.LIndex(ctx, key, i).Bytes()
			if err != nil && !errors.Is(err, redis.Nil) {
				return err
			}
			if err != nil || !bytes.Equal(v, old) {
				i = -1
			}
		}
		if i < 0 {
			pos, err := tx.LPos(ctx, key, string(old), redis.LPosArgs{}).Result()
			if errors.Is(err, redis.Nil) {
				return nil
			}
			if err != nil {
				return err
			}
			i = pos
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.LSet(ctx, key, i, updated)
			return nil
		})
		if err == nil {
			at = i
		}
		return err
	}, key)
	return at, err == nil && at >= 0, err
}

// replaceInListScript is a compare-and-set on one list element by value:
// LSET the element at the hinted index if it still equals ARGV[2], else
// the first element equal to it (LPOS, Redis 6.0.6 or later), else nothing.
// KEYS[1] = the list. ARGV = hint index, old bytes, new bytes. Returns the
// index set, or -1.
var replaceInListScript = redis.NewScript(`
local i = tonumber(ARGV[1])
if i < 0 or redis.call('LINDEX', KEYS[1], i) ~= ARGV[2] then
  i = redis.call('LPOS', KEYS[1], ARGV[2])
  if not i then return -1 end
end
redis.call('LSET', KEYS[1], i, ARGV[3])
return i
`)

// PickedUpPayloads returns the jobs parked in every process's pickup lists
// (moved out of their queue by a blocking pickup, about to be recorded by a
// worker slot, see BlockingPickup) and ahead hashes (held ahead, ahead.go).
func (s *Store) PickedUpPayloads(ctx context.Context) ([][]byte, error) {
	prefix := s.Keys.PickupPrefix()
	iter, err := s.scan(ctx, escapeGlob(prefix)+"*", 100)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for iter.Next(ctx) {
		vals, err := s.rdb.LRange(ctx, iter.Val(), 0, -1).Result()
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			out = append(out, []byte(v))
		}
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	held, err := s.heldPayloads(ctx)
	return append(out, held...), err
}
