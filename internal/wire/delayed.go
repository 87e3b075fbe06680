package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Delayed jobs, stored exactly as resque-scheduler stores them (spec §9):
//
//	delayed_queue_schedule   sorted set, member = score = <ts> (Unix seconds)
//	delayed:<ts>             list of delayed items, in insertion order
//	timestamps:<item>        set of "delayed:<ts>" strings holding that item
//
// A delayed item is {"class":…,"args":…,"queue":…} (Ruby's key order). resq
// writes exactly that for an unsigned, unencrypted job, so Ruby's
// remove_delayed(klass, *args) finds it byte for byte; a signed or encrypted
// job adds its envelope fields after "queue" (id, enqueued_at, enc, kid,
// sig), and the move pushes it with "queue" cut out, which is byte for byte
// the payload Client.Enqueue would have pushed to that queue, so its
// signature still verifies (it covers the target queue).

// DelayedSchedule is the sorted set of timestamps that hold delayed items.
func (k Keys) DelayedSchedule() string { return k.ns + "delayed_queue_schedule" }

// Delayed is the list of the items due at Unix second ts.
func (k Keys) Delayed(ts int64) string { return k.ns + DelayedMember(ts) }

// DelayedMember is the value stored in timestamps:<item> sets for ts:
// "delayed:<ts>", without the namespace (spec §1).
func DelayedMember(ts int64) string { return "delayed:" + strconv.FormatInt(ts, 10) }

// Timestamps is the reverse index of one item; the key embeds its exact bytes.
func (k Keys) Timestamps(item []byte) string { return k.ns + "timestamps:" + string(item) }

// SchedulerMasterLock is resque-scheduler's master lock key. Ruby builds the
// string "<namespace>:[<prefix>:]resque_scheduler_master_lock" and sends it
// through its namespaced client, so the namespace appears twice:
// resque:resque:resque_scheduler_master_lock by default (spec §9.9). A
// prefix ending in ':' gets a second colon, as in Ruby.
func (k Keys) SchedulerMasterLock(prefix string) string {
	if prefix != "" {
		prefix += ":"
	}
	return k.ns + k.ns + prefix + "resque_scheduler_master_lock"
}

// DelayedWake is resq's pub/sub channel on which the push script announces a
// timestamp that became the earliest, so a sleeping scheduler wakes for it.
func (k Keys) DelayedWake() string { return k.resq("delayed:wake") }

// EncodeDelayed returns the delayed item of a payload for queue: the bytes of
// Encode with "queue" inserted after "args". Without id, enqueued_at and
// envelope fields this is Ruby's item, byte for byte.
func (n NewPayload) EncodeDelayed(queue string) []byte {
	full := n.Encode()
	// Encode starts with {"class":<class>,"args":<args>.
	head := len(`{"class":`) + len(appendString(nil, n.Class)) + len(`,"args":`)
	if len(n.Args) == 0 {
		head += 2
	} else {
		head += len(n.Args)
	}
	out := make([]byte, 0, len(full)+len(queue)+12)
	out = append(out, full[:head]...)
	out = append(out, `,"queue":`...)
	out = appendString(out, queue)
	return append(out, full[head:]...)
}

// RubyDelayedItem is {"class":…,"args":…,"queue":…} as Ruby writes it.
func RubyDelayedItem(class string, args json.RawMessage, queue string) []byte {
	return NewPayload{Class: class, Args: args}.EncodeDelayed(queue)
}

// DelayedJob is a delayed item as the scheduler reads it.
type DelayedJob struct {
	Raw   []byte
	Class string
	// Queue is the item's "queue"; empty when it is null or missing (node
	// and Ruby write null for a class without a queue).
	Queue string
	// Payload is what the move pushes to the queue: for an item carrying
	// resq's fields (id, sig, enc) the item without "queue"; otherwise
	// Ruby's {"class":…,"args":…} with args as §9.7 reads them.
	Payload []byte
	// Resq is set when the item carries resq's fields.
	Resq bool
	// Err is set when the item is not a usable delayed job.
	Err error
}

// DecodeDelayed reads a delayed item written by Ruby ({"class","args",
// "queue"}), node-resque ({"class","queue","args"}) or resq.
func DecodeDelayed(raw []byte) DelayedJob {
	d := DelayedJob{Raw: raw}
	top, err := ScanPayload(raw, DefaultDecodeDepth)
	if err != nil {
		d.Err = err
		return d
	}
	fs := topFields(top)
	cls, ok := fs.get("class")
	if !ok || len(cls) == 0 || cls[0] != '"' || unquote(cls) == "" {
		d.Err = &PayloadError{Reason: `no usable "class" field`, Err: ErrNoClass}
		return d
	}
	d.Class = unquote(cls)
	if q, ok := fs.get("queue"); ok && len(q) > 0 && q[0] == '"' {
		d.Queue = unquote(q)
	}
	_, hasID := fs.get("id")
	_, hasSig := fs.get("sig")
	_, hasEnc := fs.get("enc")
	d.Resq = hasID || hasSig || hasEnc
	if d.Resq {
		b := []byte{'{'}
		for _, f := range top {
			if unquote(f.key) == "queue" {
				continue
			}
			if len(b) > 1 {
				b = append(b, ',')
			}
			b = append(b, f.key...)
			b = append(b, ':')
			b = append(b, f.value...)
		}
		d.Payload = append(b, '}')
		return d
	}
	// §9.7: an array is the argument list, null/missing is [], a hash or a
	// scalar becomes the single argument.
	args := json.RawMessage("[]")
	if a, ok := fs.get("args"); ok {
		a = bytes.TrimSpace(a)
		switch {
		case len(a) == 0 || string(a) == "null":
		case a[0] == '[':
			args = a
		default:
			args = append(append([]byte{'['}, a...), ']')
		}
	}
	d.Payload = RubyJob(d.Class, args)
	return d
}

// DelayedPush is one item for PushDelayed.
type DelayedPush struct {
	TS   int64
	Item []byte
}

// delayedPushBatch bounds one push script call.
const delayedPushBatch = 500

// PushDelayed stores delayed items as resque-scheduler's delayed_push does
// (RPUSH delayed:<ts>, SADD timestamps:<item>, ZADD delayed_queue_schedule),
// all items of a call of up to 500 in one atomic step, and announces on
// DelayedWake a timestamp that became the earliest. It returns one error per
// item.
func (s *Store) PushDelayed(ctx context.Context, items []DelayedPush) []error {
	errs := make([]error, len(items))
	for lo := 0; lo < len(items); lo += delayedPushBatch {
		hi := min(lo+delayedPushBatch, len(items))
		err := s.pushDelayedChunk(ctx, items[lo:hi])
		for i := lo; i < hi; i++ {
			errs[i] = err
		}
	}
	return errs
}

func (s *Store) pushDelayedChunk(ctx context.Context, items []DelayedPush) error {
	if s.plain.Load() {
		return s.pushDelayedPlain(ctx, items)
	}
	keys := make([]string, 0, 1+2*len(items))
	args := make([]any, 0, 1+2*len(items))
	keys = append(keys, s.Keys.DelayedSchedule())
	args = append(args, s.Keys.DelayedWake())
	for _, it := range items {
		keys = append(keys, s.Keys.Delayed(it.TS), s.Keys.Timestamps(it.Item))
		args = append(args, it.Item, it.TS)
	}
	_, err := s.runScript(ctx, delayedPushScript, keys, args...)
	if s.scriptRefused(err) {
		return s.pushDelayedPlain(ctx, items)
	}
	return err
}

// delayedPushScript: KEYS[1] = delayed_queue_schedule, then per item
// delayed:<ts>, timestamps:<item>. ARGV[1] = the wake channel, then per item
// the item and its ts.
var delayedPushScript = redis.NewScript(`
local low = nil
for i = 1, (#KEYS - 1) / 2 do
  local item, ts = ARGV[2 * i], ARGV[2 * i + 1]
  redis.call('RPUSH', KEYS[2 * i], item)
  redis.call('SADD', KEYS[2 * i + 1], 'delayed:' .. ts)
  redis.call('ZADD', KEYS[1], ts, ts)
  if low == nil or tonumber(ts) < tonumber(low) then low = ts end
end
if low ~= nil then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0)
  if first[1] == low then redis.call('PUBLISH', ARGV[1], low) end
end
return 1
`)

// pushDelayedPlain is the push without scripts: one MULTI, and a PUBLISH of
// the earliest timestamp of the call (the scheduler re-reads the schedule
// on every wake, so a needless wake costs one read).
func (s *Store) pushDelayedPlain(ctx context.Context, items []DelayedPush) error {
	push := func(p redis.Pipeliner) error {
		low := items[0].TS
		for _, it := range items {
			p.RPush(ctx, s.Keys.Delayed(it.TS), it.Item)
			p.SAdd(ctx, s.Keys.Timestamps(it.Item), DelayedMember(it.TS))
			p.ZAdd(ctx, s.Keys.DelayedSchedule(), redis.Z{Score: float64(it.TS), Member: strconv.FormatInt(it.TS, 10)})
			low = min(low, it.TS)
		}
		p.Publish(ctx, s.Keys.DelayedWake(), strconv.FormatInt(low, 10))
		return nil
	}
	if s.acks.n == 0 {
		_, err := s.rdb.TxPipelined(ctx, push)
		return err
	}
	// The WAIT must follow the EXEC on its connection: a WATCH
	// transaction holds one (watching the schedule, which a concurrent
	// push may change; watchRetry then runs it again).
	return s.watchRetry(ctx, func(tx *redis.Tx) error {
		if _, err := tx.TxPipelined(ctx, push); err != nil {
			return err
		}
		return s.confirmed(s.confirmIn(ctx, tx))
	}, s.Keys.DelayedSchedule())
}

// DelayedTimestamp is one timestamp of the schedule and its item count.
type DelayedTimestamp struct {
	TS    int64
	Count int64
}

// NextDelayed returns the earliest timestamp of the schedule (ZRANGE 0 0
// WITHSCORES); ok is false when the schedule is empty. A member that is not
// the decimal integer every producer writes ("1705314600.5", say) would
// never be removed by the move's ZREM and would block the schedule: it is
// replaced by the integer of its score (the list it names is the same).
func (s *Store) NextDelayed(ctx context.Context) (ts int64, ok bool, err error) {
	zs, err := s.rdb.ZRangeWithScores(ctx, s.Keys.DelayedSchedule(), 0, 0).Result()
	if err != nil || len(zs) == 0 {
		return 0, false, err
	}
	ts = memberTS(zs[0])
	if m, _ := zs[0].Member.(string); m != strconv.FormatInt(ts, 10) {
		_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.ZRem(ctx, s.Keys.DelayedSchedule(), m)
			p.ZAdd(ctx, s.Keys.DelayedSchedule(), redis.Z{Score: float64(ts), Member: strconv.FormatInt(ts, 10)})
			return nil
		})
		if err != nil {
			return 0, false, err
		}
	}
	return ts, true, nil
}

// memberTS reads a schedule member as Ruby does (the member's integer
// value), falling back to its score.
func memberTS(z redis.Z) int64 {
	if m, ok := z.Member.(string); ok {
		if n, err := strconv.ParseInt(m, 10, 64); err == nil {
			return n
		}
		if f, err := strconv.ParseFloat(m, 64); err == nil {
			return int64(f) // Ruby's to_i truncates
		}
	}
	return int64(z.Score)
}

// DelayedCounts returns the number of timestamps (Ruby's
// delayed_queue_schedule_size) and of delayed items (count_all_scheduled_jobs).
func (s *Store) DelayedCounts(ctx context.Context) (timestamps, jobs int64, err error) {
	all, err := s.DelayedTimestamps(ctx, -1<<62, 1<<62, 0, -1)
	if err != nil {
		return 0, 0, err
	}
	for _, t := range all {
		jobs += t.Count
	}
	return int64(len(all)), jobs, nil
}

// DelayedTimestamps lists the timestamps from..to (inclusive) in order,
// skipping offset of them and returning at most count (all when count < 0),
// with their item counts.
func (s *Store) DelayedTimestamps(ctx context.Context, from, to, offset, count int64) ([]DelayedTimestamp, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.Keys.DelayedSchedule(), &redis.ZRangeBy{
		Min: strconv.FormatInt(from, 10), Max: strconv.FormatInt(to, 10), Offset: offset, Count: count,
	}).Result()
	if err != nil || len(zs) == 0 {
		return nil, err
	}
	out := make([]DelayedTimestamp, len(zs))
	for lo := 0; lo < len(zs); lo += 1000 {
		hi := min(lo+1000, len(zs))
		cmds := make([]*redis.IntCmd, hi-lo)
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := lo; i < hi; i++ {
				out[i].TS = memberTS(zs[i])
				cmds[i-lo] = p.LLen(ctx, s.Keys.Delayed(out[i].TS))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for i, c := range cmds {
			out[lo+i].Count = c.Val()
		}
	}
	return out, nil
}

// DelayedEntry is one delayed item and its timestamp.
type DelayedEntry struct {
	TS  int64
	Raw []byte
}

// DelayedRange returns the items due from..to (inclusive), in due order,
// skipping offset items and returning at most limit (all when limit < 0).
// When match is not nil only the items it accepts count (Ruby's
// find_delayed_selection).
func (s *Store) DelayedRange(ctx context.Context, from, to int64, offset, limit int, match func(raw []byte) bool) ([]DelayedEntry, error) {
	tss, err := s.DelayedTimestamps(ctx, from, to, 0, -1)
	if err != nil {
		return nil, err
	}
	var out []DelayedEntry
	skipped, reading := 0, false
	for lo := 0; lo < len(tss); lo += 100 {
		hi := min(lo+100, len(tss))
		// Without a filter, whole timestamps before the offset are skipped
		// by their counts.
		cmds := make([]*redis.StringSliceCmd, hi-lo)
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := lo; i < hi; i++ {
				if match == nil && !reading && skipped+int(tss[i].Count) <= offset {
					skipped += int(tss[i].Count)
					continue
				}
				reading = true
				cmds[i-lo] = p.LRange(ctx, s.Keys.Delayed(tss[i].TS), 0, -1)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for i, c := range cmds {
			if c == nil {
				continue
			}
			for _, raw := range c.Val() {
				if match != nil && !match([]byte(raw)) {
					continue
				}
				if skipped < offset {
					skipped++
					continue
				}
				if limit >= 0 && len(out) >= limit {
					return out, nil
				}
				out = append(out, DelayedEntry{TS: tss[lo+i].TS, Raw: []byte(raw)})
			}
		}
	}
	return out, nil
}

// DelayedScheduledAt returns the timestamps holding item (SMEMBERS
// timestamps:<item>, Ruby's scheduled_at), sorted.
func (s *Store) DelayedScheduledAt(ctx context.Context, item []byte) ([]int64, error) {
	ms, err := s.rdb.SMembers(ctx, s.Keys.Timestamps(item)).Result()
	if err != nil {
		return nil, err
	}
	out := make([]int64, 0, len(ms))
	for _, m := range ms {
		if n, err := strconv.ParseInt(strings.TrimPrefix(m, "delayed:"), 10, 64); err == nil {
			out = append(out, n)
		}
	}
	sortInt64(out)
	return out, nil
}

func sortInt64(a []int64) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}

// RemoveDelayed removes every copy of item from every timestamp holding it,
// as Ruby's remove_delayed does (SMEMBERS timestamps:<item>, then LREM and
// SREM per timestamp, pipelined); the schedule entry stays until the
// scheduler finds the timestamp empty. It returns the number removed.
func (s *Store) RemoveDelayed(ctx context.Context, item []byte) (int64, error) {
	ms, err := s.rdb.SMembers(ctx, s.Keys.Timestamps(item)).Result()
	if err != nil || len(ms) == 0 {
		return 0, err
	}
	cmds := make([]*redis.IntCmd, len(ms))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range ms {
			cmds[i] = p.LRem(ctx, s.Keys.Key(m), 0, item)
			p.SRem(ctx, s.Keys.Timestamps(item), m)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var n int64
	for _, c := range cmds {
		n += c.Val()
	}
	return n, nil
}

// RemoveDelayedAt removes item from timestamp ts (Ruby's
// remove_delayed_job_from_timestamp: SREM, LREM), then cleans up the
// timestamp if it became empty. It returns the number removed.
func (s *Store) RemoveDelayedAt(ctx context.Context, ts int64, item []byte) (int64, error) {
	var rem *redis.IntCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SRem(ctx, s.Keys.Timestamps(item), DelayedMember(ts))
		rem = p.LRem(ctx, s.Keys.Delayed(ts), 0, item)
		return nil
	})
	if err != nil {
		return 0, err
	}
	return rem.Val(), s.CleanDelayedTimestamp(ctx, ts)
}

// CleanDelayedTimestamp deletes delayed:<ts> and its schedule entry when
// the list is empty (spec §9.5: WATCH, LLEN, MULTI DEL ZREM).
func (s *Store) CleanDelayedTimestamp(ctx context.Context, ts int64) error {
	key := s.Keys.Delayed(ts)
	return s.watchRetry(ctx, func(tx *redis.Tx) error {
		n, err := tx.LLen(ctx, key).Result()
		if err != nil || n > 0 {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, key)
			p.ZRem(ctx, s.Keys.DelayedSchedule(), strconv.FormatInt(ts, 10))
			return nil
		})
		return err
	}, key)
}

// ErrNotMaster is returned by MoveDue and FireScheduleTick when the master
// lock does not hold the caller's value (another scheduler is master, or the
// lock expired): nothing was written.
var ErrNotMaster = errors.New("the scheduler master lock is not held by this scheduler")

// Lock names a lock key and the value its holder stores.
type Lock struct {
	Key, Value string
}

// MoveResult is the outcome of one MoveDue call.
type MoveResult struct {
	Moved  int // items pushed to their queues
	Failed int // items that became failure records (no queue, not a job)
	// Empty is set when every timestamp the step took holds no more items
	// and was removed from the schedule.
	Empty bool
	// Timestamps is the number of timestamps the step took; Emptied, how
	// many of them it removed.
	Timestamps, Emptied int
	// First is the earliest timestamp the step took.
	First int64
}

// MoveOptions configure MoveDue.
type MoveOptions struct {
	// Batch is the number of items moved per atomic step.
	Batch int
	// ClassQueues gives the queue of items without one, by class (Ruby's
	// class-level @queue, which resq cannot look up).
	ClassQueues map[string]string
	// Worker names the scheduler in failure records.
	Worker string
	// Now stamps failure records.
	Now time.Time
}

// moveItem is one item of a move step.
type moveItem struct {
	raw, push   []byte
	queue       string // "" when the push goes to the failed list
	target, idx string // target list key, timestamps:<item> key
}

// planMove decides where each item read from delayed:<ts> goes.
func (s *Store) planMove(raws []string, o MoveOptions) []moveItem {
	items := make([]moveItem, len(raws))
	for i, r := range raws {
		raw := []byte(r)
		d := DecodeDelayed(raw)
		it := moveItem{raw: raw, idx: s.Keys.Timestamps(raw)}
		q := d.Queue
		if q == "" && d.Err == nil {
			q = o.ClassQueues[d.Class]
		}
		switch {
		case d.Err != nil:
			it.push = s.delayedFailure(raw, "Resq::InvalidPayload", "the delayed item is not a usable job ("+d.Err.Error()+"); it was not enqueued", o)
			it.target = s.Keys.Failed()
		case q == "":
			it.push = s.delayedFailure(d.Payload, "Resque::NoQueueError", fmt.Sprintf("the delayed job of class %s has no queue; resq's scheduler cannot look up a Ruby class's queue, so it was not enqueued (give the scheduler a queue for the class, e.g. resq scheduler --class-queue %s=QUEUE, then retry this failure)", d.Class, d.Class), o)
			it.target = s.Keys.Failed()
		default:
			it.push, it.queue, it.target = d.Payload, q, s.Keys.Queue(q)
		}
		items[i] = it
	}
	return items
}

func (s *Store) delayedFailure(payload []byte, exception, msg string, o MoveOptions) []byte {
	p := json.RawMessage(payload)
	if !looksLikeObject(payload) {
		p = InvalidPayloadObject(payload)
	}
	return Failure{FailedAt: FailedAt(o.Now), Payload: p, Exception: exception, Error: msg,
		Backtrace: []string{}, Worker: o.Worker, Queue: ""}.Encode()
}

// MoveDue moves up to o.Batch items of the due timestamp ts to their queues
// in one atomic step fenced by lock: nothing moves unless the lock holds
// lock.Value (ErrNotMaster), and nothing moves twice, because the step
// checks that the head of delayed:<ts> is still exactly the items read.
// Per item it removes the reverse index entry (SREM timestamps:<item>),
// pushes the payload (SADD queues + RPUSH queue:<q>, or a failure record
// for an item without a queue or not a job), then trims the items off the
// list and, when it is empty, deletes it with its schedule entry. Killing
// the caller at any instant leaves either the step done or nothing done.
func (s *Store) MoveDue(ctx context.Context, lock Lock, ts int64, o MoveOptions) (MoveResult, error) {
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	return s.move(ctx, lock, o, func() ([]moveList, error) {
		raws, err := s.rdb.LRange(ctx, s.Keys.Delayed(ts), 0, int64(o.Batch-1)).Result()
		if err != nil {
			return nil, err
		}
		return []moveList{{ts: ts, items: s.planMove(raws, o)}}, nil
	})
}

// MoveDueUpTo moves due items of every timestamp up to and including upTo,
// oldest first, up to o.Batch items (or 1000 timestamps) in one atomic
// step, as MoveDue does for one timestamp: a backlog spread over many
// seconds (a scheduler outage) moves as fast as one second's backlog.
// Timestamps is the number of timestamps the step visited; zero means
// nothing was due. A DueMover does the same steps in fewer round trips.
func (s *Store) MoveDueUpTo(ctx context.Context, lock Lock, upTo int64, o MoveOptions) (MoveResult, error) {
	m := s.NewDueMover(lock, o)
	m.noAhead = true
	return m.Step(ctx, upTo, o.Now)
}

// DueMover moves due delayed items step by step, each step as
// MoveDueUpTo's. With scripts, a step's move and the read of the next
// step's items travel in one round trip (a pipeline: the read runs after
// the move, in Redis): a backlog drains at one round trip per step. The
// read-ahead is only a guess — the move re-checks every list head it
// takes, under the lock, so items that changed meanwhile are read again,
// never moved twice. A DueMover is for one goroutine.
type DueMover struct {
	s     *Store
	lock  Lock
	o     MoveOptions
	ahead []moveList // items read after the last step, not moved yet
	have  bool       // ahead holds a read (possibly of nothing due)
	upTo  int64      // the bound ahead was read with
	// noAhead makes each step read and move only (MoveDueUpTo).
	noAhead bool
}

// NewDueMover returns a mover fenced by lock.
func (s *Store) NewDueMover(lock Lock, o MoveOptions) *DueMover {
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	return &DueMover{s: s, lock: lock, o: o}
}

// Step moves one batch of the items due up to upTo (now stamps failure
// records). Timestamps is zero when nothing was due.
func (m *DueMover) Step(ctx context.Context, upTo int64, now time.Time) (MoveResult, error) {
	m.o.Now = now
	s := m.s
	if s.plain.Load() {
		m.have = false
		return s.move(ctx, m.lock, m.o, func() ([]moveList, error) { return s.readDuePlain(ctx, upTo, m.o) })
	}
	var lists []moveList
	// A read-ahead that found nothing due is read again (items may have
	// become due since), and so is one made with a later bound than this
	// step's (a clock correction backwards). One made with an earlier bound
	// holds only due items; newly due ones follow in the next steps.
	if m.have && len(m.ahead) > 0 && m.upTo <= upTo {
		lists = m.ahead
	} else {
		var err error
		if lists, err = s.readDue(ctx, upTo, m.o); err != nil {
			return m.plainStep(ctx, upTo, err)
		}
	}
	m.have, m.ahead = false, nil
	for range 20 {
		if len(lists) == 0 {
			return MoveResult{}, nil
		}
		var res MoveResult
		var ok bool
		var next []moveList
		var err error
		if m.noAhead {
			res, ok, err = s.moveScripted(ctx, m.lock, lists)
			if err == nil && !ok {
				next, err = s.readDue(ctx, upTo, m.o)
			}
		} else {
			res, ok, next, err = s.moveScriptedAhead(ctx, m.lock, lists, upTo, m.o)
		}
		if err != nil {
			if errors.Is(err, ErrNotMaster) {
				return MoveResult{}, err
			}
			return m.plainStep(ctx, upTo, err)
		}
		if ok {
			m.ahead, m.have, m.upTo = next, true, upTo
			return res, nil
		}
		// A list changed between the read and the step (a producer, a
		// removal or another mover): next is a fresh read.
		lists = next
	}
	return MoveResult{}, ErrMoveContended
}

// plainStep runs the step with plain commands when err says scripts are
// refused, else returns err.
func (m *DueMover) plainStep(ctx context.Context, upTo int64, err error) (MoveResult, error) {
	if !m.s.scriptRefused(err) {
		return MoveResult{}, err
	}
	return m.s.move(ctx, m.lock, m.o, func() ([]moveList, error) { return m.s.readDuePlain(ctx, upTo, m.o) })
}

// dueReadTimestamps bounds the timestamps of one step.
const dueReadTimestamps = 1000

// dueReadScript reads the items of one move step: the oldest due
// timestamps (ZRANGEBYSCORE -inf upTo LIMIT 0 T) and the heads of as many
// whole ones as fit in the batch of B items (at least one). It builds each
// list key from the prefix and the member, so it only reads keys of the
// namespace KEYS[1] is in (one cluster slot under a hash tag, §cluster.go).
// KEYS[1] = delayed_queue_schedule. ARGV[1] = upTo, ARGV[2] = B, ARGV[3] =
// T, ARGV[4] = "<ns>delayed:". Returns per timestamp its member, its score,
// its item count c and c items; c = -1 for a member that is not a decimal
// integer (the caller normalizes it and reads again).
var dueReadScript = redis.NewScript(`
local zs = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local budget = tonumber(ARGV[2])
local out = {}
for i = 1, #zs, 2 do
  local m = zs[i]
  if not string.match(m, '^-?%d+$') then
    out[#out + 1] = m; out[#out + 1] = zs[i + 1]; out[#out + 1] = -1
  else
    -- one item more than the budget tells whether the list fits whole
    local items = {}
    if budget > 0 or i == 1 then
      items = redis.call('LRANGE', ARGV[4] .. m, 0, budget)
    else
      if redis.call('EXISTS', ARGV[4] .. m) == 1 then break end
    end
    local take = #items
    if take > budget then
      if i > 1 then break end
      take = budget
    end
    out[#out + 1] = m; out[#out + 1] = zs[i + 1]; out[#out + 1] = take
    for j = 1, take do out[#out + 1] = items[j] end
    budget = budget - take
  end
end
return out
`)

func dueReadArgs(s *Store, upTo int64, o MoveOptions) ([]string, []any) {
	return []string{s.Keys.DelayedSchedule()},
		[]any{upTo, o.Batch, min(o.Batch, dueReadTimestamps), s.Keys.ns + "delayed:"}
}

// readDue reads one step's items with dueReadScript.
func (s *Store) readDue(ctx context.Context, upTo int64, o MoveOptions) ([]moveList, error) {
	keys, args := dueReadArgs(s, upTo, o)
	v, err := dueReadScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, err
	}
	return s.parseDue(ctx, v, upTo, o)
}

// parseDue decodes dueReadScript's reply into move lists. A member that is
// not a decimal integer is normalized and the step read again without
// scripts (rare: only a hand-written schedule has one).
func (s *Store) parseDue(ctx context.Context, v []any, upTo int64, o MoveOptions) ([]moveList, error) {
	var lists []moveList
	for i := 0; i+2 < len(v); {
		m, _ := v[i].(string)
		sc, _ := v[i+1].(string)
		c, _ := v[i+2].(int64)
		i += 3
		if c < 0 {
			score, _ := strconv.ParseFloat(sc, 64)
			if err := s.normalizeMembers(ctx, []redis.Z{{Score: score, Member: m}}); err != nil {
				return nil, err
			}
			return s.readDuePlain(ctx, upTo, o)
		}
		ts, err := strconv.ParseInt(m, 10, 64)
		if err != nil || int(c) > len(v)-i {
			return nil, fmt.Errorf("the due read script returned a malformed reply at %q", m)
		}
		raws := make([]string, c)
		for j := range raws {
			raws[j], _ = v[i+j].(string)
		}
		i += int(c)
		lists = append(lists, moveList{ts: ts, items: s.planMove(raws, o)})
	}
	return lists, nil
}

// readDuePlain reads one step's items with plain commands: the due
// timestamps, their lengths, then the heads that fit.
func (s *Store) readDuePlain(ctx context.Context, upTo int64, o MoveOptions) ([]moveList, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.Keys.DelayedSchedule(), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(upTo, 10), Count: int64(min(o.Batch, dueReadTimestamps)),
	}).Result()
	if err != nil || len(zs) == 0 {
		return nil, err
	}
	if err := s.normalizeMembers(ctx, zs); err != nil {
		return nil, err
	}
	lens := make([]*redis.IntCmd, len(zs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			lens[i] = p.LLen(ctx, s.Keys.Delayed(memberTS(z)))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Whole timestamps within the item budget, and at least one.
	lists := make([]moveList, 0, len(zs))
	budget := o.Batch
	ranges := make([]*redis.StringSliceCmd, 0, len(zs))
	if _, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, z := range zs {
			n := int(lens[i].Val())
			if i > 0 && n > budget {
				break
			}
			take := min(n, max(budget, 0))
			if i == 0 {
				take = min(n, o.Batch)
			}
			budget -= take
			lists = append(lists, moveList{ts: memberTS(z)})
			ranges = append(ranges, p.LRange(ctx, s.Keys.Delayed(memberTS(z)), 0, int64(take)-1))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	for i, r := range ranges {
		raws := r.Val()
		if lens[i].Val() == 0 {
			raws = nil // LRANGE 0 -1 of an empty list
		}
		lists[i].items = s.planMove(raws, o)
	}
	return lists, nil
}

// normalizeMembers replaces schedule members that are not decimal
// integers by the integer of their value (see NextDelayed).
func (s *Store) normalizeMembers(ctx context.Context, zs []redis.Z) error {
	for _, z := range zs {
		ts := memberTS(z)
		if m, _ := z.Member.(string); m != strconv.FormatInt(ts, 10) {
			if _, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.ZRem(ctx, s.Keys.DelayedSchedule(), m)
				p.ZAdd(ctx, s.Keys.DelayedSchedule(), redis.Z{Score: float64(ts), Member: strconv.FormatInt(ts, 10)})
				return nil
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// moveList is the part of one delayed:<ts> list a move step takes: the
// items at its head.
type moveList struct {
	ts    int64
	items []moveItem
}

// move runs move steps: read (the lists' heads and what to do with each
// item), then the atomic step, again while a list changed in between.
func (s *Store) move(ctx context.Context, lock Lock, o MoveOptions, read func() ([]moveList, error)) (MoveResult, error) {
	if o.Batch <= 0 {
		o.Batch = 1000
	}
	for range 20 {
		lists, err := read()
		if err != nil || len(lists) == 0 {
			return MoveResult{}, err
		}
		var ok bool
		var res MoveResult
		if s.plain.Load() {
			res, ok, err = s.movePlain(ctx, lock, lists)
		} else {
			res, ok, err = s.moveScripted(ctx, lock, lists)
			if s.scriptRefused(err) {
				res, ok, err = s.movePlain(ctx, lock, lists)
			}
		}
		if err != nil || ok {
			return res, err
		}
		// A list changed between the read and the step (a producer, a
		// removal or another mover): read again.
	}
	return MoveResult{}, ErrMoveContended
}

// ErrMoveContended is returned by a move whose lists changed between every
// read and step of 20 attempts (other movers or producers on the same
// lists); nothing moved, and trying again later is safe.
var ErrMoveContended = errors.New("moving due delayed jobs: the lists kept changing during 20 attempts; will retry")

func countMove(lists []moveList) MoveResult {
	r := MoveResult{Timestamps: len(lists)}
	if len(lists) > 0 {
		r.First = lists[0].ts
	}
	for _, l := range lists {
		for _, it := range l.items {
			if it.queue == "" {
				r.Failed++
			} else {
				r.Moved++
			}
		}
	}
	return r
}

// moveScript: KEYS[1] = the lock, KEYS[2] = delayed_queue_schedule, KEYS[3]
// = queues, KEYS[3+j] = delayed:<ts_j> for each of the L lists, then per
// item (grouped by list, in order) its target list and its
// timestamps:<item> key. ARGV[1] = the lock value, ARGV[2] = L, then per
// list its <ts> and item count, then per item the item, the payload to push
// and the queue name ("" for the failed list).
// Returns {-1} when the lock is not ours, {-2} when a list head is not the
// items read, else {items moved, lists emptied}. Per list it reads the head
// and one item more (so it knows whether the list empties: DEL, or LTRIM);
// per item it SREMs the reverse index; runs of items for one target go in
// one RPUSH, the queues in one SADD, the emptied lists in one DEL and their
// timestamps in one ZREM (at most 500 values per call, well within Lua's
// stack).
var moveScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
local L = tonumber(ARGV[2])
local a = 3 + 2 * L
local k = 4 + L
local pos = a
local whole = {}
for j = 1, L do
  local c = tonumber(ARGV[2 + 2 * j])
  local head = redis.call('LRANGE', KEYS[3 + j], 0, c)
  if #head < c then return {-2} end
  for i = 1, c do
    if head[i] ~= ARGV[pos + 3 * (i - 1)] then return {-2} end
  end
  whole[j] = (#head == c)
  pos = pos + 3 * c
end
local function many(cmd, key, vals)
  for lo = 1, #vals, 500 do
    redis.call(cmd, key, unpack(vals, lo, math.min(lo + 499, #vals)))
  end
end
local item = 0
local target, vals = nil, {}
local queues, seen, emptied, dels = {}, {}, {}, {}
for j = 1, L do
  local ts = ARGV[1 + 2 * j]
  local c = tonumber(ARGV[2 + 2 * j])
  local member = 'delayed:' .. ts
  for i = 1, c do
    local ai = a + 3 * item
    local ki = k + 2 * item
    redis.call('SREM', KEYS[ki + 1], member)
    local q = ARGV[ai + 2]
    if q ~= '' and not seen[q] then
      seen[q] = true
      queues[#queues + 1] = q
    end
    if KEYS[ki] ~= target then
      if #vals > 0 then many('RPUSH', target, vals) end
      target, vals = KEYS[ki], {}
    end
    vals[#vals + 1] = ARGV[ai + 1]
    item = item + 1
  end
  if whole[j] then
    if c > 0 then dels[#dels + 1] = KEYS[3 + j] end
    emptied[#emptied + 1] = ts
  elseif c > 0 then
    redis.call('LTRIM', KEYS[3 + j], c, -1)
  end
end
if #vals > 0 then many('RPUSH', target, vals) end
if #queues > 0 then many('SADD', KEYS[3], queues) end
if #emptied > 0 then many('ZREM', KEYS[2], emptied) end
for lo = 1, #dels, 500 do
  redis.call('DEL', unpack(dels, lo, math.min(lo + 499, #dels)))
end
return {item, #emptied}
`)

// moveArgs builds moveScript's keys and arguments.
func (s *Store) moveArgs(lock Lock, lists []moveList) ([]string, []any) {
	n := 0
	for _, l := range lists {
		n += len(l.items)
	}
	keys := make([]string, 0, 3+len(lists)+2*n)
	keys = append(keys, lock.Key, s.Keys.DelayedSchedule(), s.Keys.Queues())
	args := make([]any, 0, 2+2*len(lists)+3*n)
	args = append(args, lock.Value, len(lists))
	for _, l := range lists {
		keys = append(keys, s.Keys.Delayed(l.ts))
		args = append(args, strconv.FormatInt(l.ts, 10), len(l.items))
	}
	for _, l := range lists {
		for _, it := range l.items {
			keys = append(keys, it.target, it.idx)
			args = append(args, it.raw, it.push, it.queue)
		}
	}
	return keys, args
}

// moveReply reads moveScript's reply; ok is false when a list changed.
func moveReply(v []int64, err error, lists []moveList) (MoveResult, bool, error) {
	if err != nil {
		return MoveResult{}, false, err
	}
	switch {
	case len(v) == 1 && v[0] == -1:
		return MoveResult{}, false, ErrNotMaster
	case len(v) == 1 && v[0] == -2:
		return MoveResult{}, false, nil
	case len(v) != 2:
		return MoveResult{}, false, fmt.Errorf("move script returned %v", v)
	}
	r := countMove(lists)
	r.Emptied = int(v[1])
	r.Empty = r.Emptied == len(lists)
	return r, true, nil
}

func (s *Store) moveScripted(ctx context.Context, lock Lock, lists []moveList) (MoveResult, bool, error) {
	keys, args := s.moveArgs(lock, lists)
	v, err := moveScript.Run(ctx, s.rdb, keys, args...).Int64Slice()
	return moveReply(v, err, lists)
}

// moveScriptedAhead runs moveScript and, in the same pipeline (so after
// it, in Redis), dueReadScript for the next step. next is that read, nil
// when it failed (the caller reads again). A script Redis does not know
// yet (first use, SCRIPT FLUSH) is loaded by running it alone.
func (s *Store) moveScriptedAhead(ctx context.Context, lock Lock, lists []moveList, upTo int64, o MoveOptions) (res MoveResult, ok bool, next []moveList, err error) {
	keys, args := s.moveArgs(lock, lists)
	rk, ra := dueReadArgs(s, upTo, o)
	var mv, rd *redis.Cmd
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		mv = moveScript.EvalSha(ctx, p, keys, args...)
		rd = dueReadScript.EvalSha(ctx, p, rk, ra...)
		return nil
	})
	if redis.HasErrorPrefix(mv.Err(), "NOSCRIPT") {
		if res, ok, err = s.moveScripted(ctx, lock, lists); err != nil {
			return res, ok, nil, err
		}
		next, err = s.readDue(ctx, upTo, o)
		if ok {
			err = nil // the move is done; the next step reads again
		}
		return res, ok, next, err
	}
	mvv, mverr := mv.Int64Slice()
	res, ok, err = moveReply(mvv, mverr, lists)
	if err != nil {
		return res, ok, nil, err
	}
	var v []any
	var rerr error
	if redis.HasErrorPrefix(rd.Err(), "NOSCRIPT") {
		next, rerr = s.readDue(ctx, upTo, o)
	} else if v, rerr = rd.Slice(); rerr == nil {
		next, rerr = s.parseDue(ctx, v, upTo, o)
	}
	if rerr != nil {
		if ok {
			return res, ok, nil, nil // the next step reads again
		}
		return res, ok, nil, rerr
	}
	return res, ok, next, nil
}

// movePlain is the move without scripts: WATCH the lock and the lists,
// check the lock's value and the lists' heads, then one MULTI with the same
// commands as the script. A change of any of them (including the lock's
// expiry) aborts the EXEC.
func (s *Store) movePlain(ctx context.Context, lock Lock, lists []moveList) (MoveResult, bool, error) {
	watch := make([]string, 0, 1+len(lists))
	watch = append(watch, lock.Key)
	for _, l := range lists {
		watch = append(watch, s.Keys.Delayed(l.ts))
	}
	var res MoveResult
	done := false
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		// The lock's value and the heads in one round trip.
		var get *redis.StringCmd
		heads := make([]*redis.StringSliceCmd, len(lists))
		if _, err := tx.Pipelined(ctx, func(p redis.Pipeliner) error {
			get = p.Get(ctx, lock.Key)
			for j, l := range lists {
				heads[j] = p.LRange(ctx, s.Keys.Delayed(l.ts), 0, int64(len(l.items)))
			}
			return nil
		}); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		v, err := get.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if v != lock.Value {
			return ErrNotMaster
		}
		empty := make([]bool, len(lists))
		for j, l := range lists {
			head := heads[j].Val()
			if len(head) < len(l.items) {
				return nil
			}
			for i, it := range l.items {
				if head[i] != string(it.raw) {
					return nil
				}
			}
			empty[j] = len(head) == len(l.items)
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			// As the script: runs of one target in one RPUSH, the queues
			// in one SADD, the emptied lists in one DEL and one ZREM.
			var dels []string
			var emptied, queues []any
			seen := map[string]bool{}
			target, vals := "", []any(nil)
			for j, l := range lists {
				key := s.Keys.Delayed(l.ts)
				for _, it := range l.items {
					p.SRem(ctx, it.idx, DelayedMember(l.ts))
					if it.queue != "" && !seen[it.queue] {
						seen[it.queue] = true
						queues = append(queues, it.queue)
					}
					if it.target != target || len(vals) >= 500 {
						if len(vals) > 0 {
							p.RPush(ctx, target, vals...)
						}
						target, vals = it.target, nil
					}
					vals = append(vals, it.push)
				}
				if empty[j] {
					dels = append(dels, key)
					emptied = append(emptied, strconv.FormatInt(l.ts, 10))
				} else if len(l.items) > 0 {
					p.LTrim(ctx, key, int64(len(l.items)), -1)
				}
			}
			if len(vals) > 0 {
				p.RPush(ctx, target, vals...)
			}
			if len(queues) > 0 {
				p.SAdd(ctx, s.Keys.Queues(), queues...)
			}
			if len(dels) > 0 {
				p.Del(ctx, dels...)
			}
			if len(emptied) > 0 {
				p.ZRem(ctx, s.Keys.DelayedSchedule(), emptied...)
			}
			return nil
		})
		if err == nil {
			res, done = countMove(lists), true
			for _, e := range empty {
				if e {
					res.Emptied++
				}
			}
			res.Empty = res.Emptied == len(lists)
		}
		return err
	}, watch...)
	if errors.Is(err, redis.TxFailedErr) {
		return MoveResult{}, false, nil
	}
	return res, done, err
}

// EnqueueDelayedNow moves one copy of item out of timestamp ts to its queue
// now (Ruby's "Queue now" for one job), atomically: the item is pushed only
// if this call removed it. It reports whether it moved one. An item without
// a queue (or not a job) becomes a failure record, as in MoveDue.
func (s *Store) EnqueueDelayedNow(ctx context.Context, ts int64, item []byte, o MoveOptions) (bool, error) {
	it := s.planMove([]string{string(item)}, o)[0]
	if s.plain.Load() {
		return s.enqueueNowPlain(ctx, ts, it)
	}
	n, err := enqueueNowScript.Run(ctx, s.rdb,
		[]string{s.Keys.Delayed(ts), s.Keys.DelayedSchedule(), s.Keys.Queues(), it.target, it.idx},
		it.raw, it.push, it.queue, DelayedMember(ts), strconv.FormatInt(ts, 10)).Int64()
	if s.scriptRefused(err) {
		return s.enqueueNowPlain(ctx, ts, it)
	}
	return n == 1, err
}

// enqueueNowScript: KEYS delayed:<ts>, delayed_queue_schedule, queues,
// target, timestamps:<item>; ARGV item, payload, queue, "delayed:<ts>", <ts>.
var enqueueNowScript = redis.NewScript(`
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
redis.call('SREM', KEYS[5], ARGV[4])
if ARGV[3] ~= '' then redis.call('SADD', KEYS[3], ARGV[3]) end
redis.call('RPUSH', KEYS[4], ARGV[2])
if redis.call('LLEN', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[5])
end
return 1
`)

func (s *Store) enqueueNowPlain(ctx context.Context, ts int64, it moveItem) (bool, error) {
	key := s.Keys.Delayed(ts)
	moved := false
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		list, err := tx.LRange(ctx, key, 0, -1).Result()
		if err != nil {
			return err
		}
		found := false
		for _, r := range list {
			if r == string(it.raw) {
				found = true
				break
			}
		}
		if !found {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.LRem(ctx, key, 1, it.raw)
			p.SRem(ctx, it.idx, DelayedMember(ts))
			if it.queue != "" {
				p.SAdd(ctx, s.Keys.Queues(), it.queue)
			}
			p.RPush(ctx, it.target, it.push)
			if len(list) == 1 {
				p.Del(ctx, key)
				p.ZRem(ctx, s.Keys.DelayedSchedule(), strconv.FormatInt(ts, 10))
			}
			return nil
		})
		moved = err == nil
		return err
	}, key)
	return moved, err
}

// AcquireLock takes lock (SET NX with a TTL, as resque-scheduler's SETNX +
// EXPIRE) or, when it already holds lock.Value, refreshes its TTL (GET,
// compare, EXPIRE, in one atomic step). It reports whether the caller holds
// the lock now.
func (s *Store) AcquireLock(ctx context.Context, lock Lock, ttl time.Duration) (bool, error) {
	if s.plain.Load() {
		return s.acquireLockPlain(ctx, lock, ttl)
	}
	n, err := acquireLockScript.Run(ctx, s.rdb, []string{lock.Key}, lock.Value, ttl.Milliseconds()).Int64()
	if s.scriptRefused(err) {
		return s.acquireLockPlain(ctx, lock, ttl)
	}
	return n == 1, err
}

var acquireLockScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if v then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

func (s *Store) acquireLockPlain(ctx context.Context, lock Lock, ttl time.Duration) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, lock.Key, lock.Value, ttl).Result()
	if err != nil || ok {
		return ok, err
	}
	held := false
	err = s.watchRetry(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, lock.Key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if v != lock.Value {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.PExpire(ctx, lock.Key, ttl)
			return nil
		})
		held = err == nil
		return err
	}, lock.Key)
	return held, err
}

// ReleaseLock deletes lock if it holds lock.Value. It reports whether it did.
func (s *Store) ReleaseLock(ctx context.Context, lock Lock) (bool, error) {
	if s.plain.Load() {
		return s.releaseLockPlain(ctx, lock)
	}
	n, err := releaseLockScript.Run(ctx, s.rdb, []string{lock.Key}, lock.Value).Int64()
	if s.scriptRefused(err) {
		return s.releaseLockPlain(ctx, lock)
	}
	return n == 1, err
}

var releaseLockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

func (s *Store) releaseLockPlain(ctx context.Context, lock Lock) (bool, error) {
	released := false
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, lock.Key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if v != lock.Value {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, lock.Key)
			return nil
		})
		released = err == nil
		return err
	}, lock.Key)
	return released, err
}

// LockHolder returns the value stored in a lock key ("" when free).
func (s *Store) LockHolder(ctx context.Context, key string) (string, error) {
	v, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// SubscribeDelayedWake subscribes to DelayedWake. The caller closes it.
func (s *Store) SubscribeDelayedWake(ctx context.Context) *redis.PubSub {
	return s.rdb.Subscribe(ctx, s.Keys.DelayedWake())
}
