package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Store runs resq's Redis operations for one namespace. It is safe for
// concurrent use.
type Store struct {
	rdb  redis.UniversalClient
	Keys Keys
	// histExpiry is the minute whose history hash this Store last gave its
	// TTL: acks set it once per minute, not on every write.
	histExpiry atomic.Int64
	// plain is set when Redis refuses Lua scripts (plain.go).
	plain atomic.Bool
	// slots caches each worker id's per-slot key names (slotKeys): every
	// fetch and ack names them, for the same few ids, all day.
	slots      sync.Map
	slotCount  atomic.Int64
	fixed      fixedKeys
	queueNames nameCache // queue name → queue:<q>
	pickups    pickupCache
	marks      nameCache // owner → its ack mark key
	second     secondCache
	history    minuteKey
	// hold is what the plain acks hold ahead in pickup lists (plain.go).
	hold pickupHold
	// acks makes enqueue writes wait for replicas (replicas.go).
	acks replicaAcks
	// holdSeq numbers the ack batches that hold jobs ahead (ahead.go).
	holdSeq atomic.Int64
	// aheadLoaded is set once aheadScript is loaded (ahead.go).
	aheadLoaded atomic.Bool
}

// slotKeyset is the key names of one worker id.
type slotKeyset struct{ worker, processed, failed string }

// slotKeys returns id's key names, built once per id.
func (s *Store) slotKeys(id string) *slotKeyset {
	if v, ok := s.slots.Load(id); ok {
		return v.(*slotKeyset)
	}
	ks := &slotKeyset{worker: s.Keys.Worker(id), processed: s.Keys.StatProcessedBy(id), failed: s.Keys.StatFailedBy(id)}
	if s.slotCount.Add(1) > maxCachedSlots {
		return ks // a process that keeps making new ids does not grow the cache
	}
	v, _ := s.slots.LoadOrStore(id, ks)
	return v.(*slotKeyset)
}

// maxCachedSlots bounds the slotKeys cache.
const maxCachedSlots = 4096

// NewStore wraps a go-redis client.
func NewStore(rdb redis.UniversalClient, namespace string) *Store {
	k := NewKeys(namespace)
	return &Store{rdb: rdb, Keys: k, fixed: newFixedKeys(k)}
}

// Namespace returns the Store's namespace (without the trailing colon).
func (s *Store) Namespace() string { return s.Keys.Namespace() }

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// ServerTime returns Redis's TIME.
func (s *Store) ServerTime(ctx context.Context) (time.Time, error) {
	return s.rdb.Time(ctx).Result()
}

// Push enqueues one payload as Ruby does: SADD queues, then RPUSH
// queue:<q>, pipelined in one round trip (Ruby does not use MULTI either; if
// the RPUSH fails after the SADD, only an empty queue name is left). Every
// reply is checked.
func (s *Store) Push(ctx context.Context, queue string, payload []byte) error {
	node, err := s.writeNode(ctx)
	if err != nil {
		return err
	}
	// Pipeline and Exec rather than Pipelined: no closure (and no
	// captured variables) to allocate on every enqueue.
	p := node.Pipeline()
	p.SAdd(ctx, s.fixed.queues, queue)
	push := p.RPush(ctx, s.queueKey(queue), payload)
	w := s.confirmIn(ctx, p)
	_, err = p.Exec(ctx)
	if w == nil || push.Err() != nil {
		return err
	}
	return s.confirmed(w)
}

// QueuedPayload is one job for PushMany.
type QueuedPayload struct {
	Queue   string
	Payload []byte
}

// maxPushValues bounds the values of one RPUSH in PushMany.
const maxPushValues = 1000

// PushMany enqueues many payloads in one pipeline: one SADD per distinct
// queue, then one RPUSH per queue carrying that queue's payloads in their
// order (one RPUSH per maxPushValues of them). It returns one error per
// item: nil when the RPUSH that carried it succeeded. An RPUSH is one
// command, so its jobs are all stored or none is.
func (s *Store) PushMany(ctx context.Context, items []QueuedPayload) []error {
	errs := make([]error, len(items))
	type run struct {
		queue string
		at    []int // indexes into items
	}
	var runs []run
	byQueue := map[string]int{} // queue → index of its last run
	for i, it := range items {
		r, ok := byQueue[it.Queue]
		if !ok || len(runs[r].at) == maxPushValues {
			r = len(runs)
			runs = append(runs, run{queue: it.Queue})
			byQueue[it.Queue] = r
		}
		runs[r].at = append(runs[r].at, i)
	}
	node, err := s.writeNode(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	cmds := make([]*redis.IntCmd, len(runs))
	var w *redis.IntCmd
	_, err = node.Pipelined(ctx, func(p redis.Pipeliner) error {
		added := map[string]bool{}
		for _, r := range runs {
			if !added[r.queue] {
				added[r.queue] = true
				p.SAdd(ctx, s.fixed.queues, r.queue)
			}
		}
		for k, r := range runs {
			vals := make([]any, len(r.at))
			for j, i := range r.at {
				vals[j] = items[i].Payload
			}
			cmds[k] = p.RPush(ctx, s.queueKey(r.queue), vals...)
		}
		w = s.confirmIn(ctx, p)
		return nil
	})
	unconfirmed := s.confirmed(w)
	for k, c := range cmds {
		var e error
		switch {
		case c.Err() != nil:
			e = c.Err()
		case w != nil:
			e = unconfirmed
		case err != nil && c.Val() == 0:
			e = err
		}
		for _, i := range runs[k].at {
			errs[i] = e
		}
	}
	return errs
}

// PushCapped enqueues like Push but refuses when the queue already holds
// limit or more jobs. It returns the queue length seen and whether it pushed.
func (s *Store) PushCapped(ctx context.Context, queue string, payload []byte, limit int64) (int64, bool, error) {
	if s.plain.Load() {
		return s.pushCappedPlain(ctx, queue, payload, limit)
	}
	c, err := s.runScript(ctx, pushCappedScript, []string{s.Keys.Queues(), s.Keys.Queue(queue)}, queue, payload, limit)
	if s.scriptRefused(err) {
		return s.pushCappedPlain(ctx, queue, payload, limit)
	}
	res, rerr := c.Int64Slice()
	if rerr != nil || len(res) != 2 {
		if err == nil {
			err = fmt.Errorf("capped push: unexpected reply %v (%v)", c.Val(), rerr)
		}
		return 0, false, err
	}
	if res[1] != 1 {
		return res[0], false, nil // refused: nothing was written to confirm
	}
	return res[0], true, err // err: the push was not confirmed
}

var pushCappedScript = redis.NewScript(`
local n = redis.call('LLEN', KEYS[2])
if n >= tonumber(ARGV[3]) then return {n, 0} end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('RPUSH', KEYS[2], ARGV[2])
return {n, 1}
`)

// Fetched is one job handed to a slot by FetchWith or AckAndFetch.
type Fetched struct {
	Slot  int // index into the request's WorkerIDs
	Queue string
	Raw   []byte
	RunAt string
	// Oversize is set when the payload was over the size limit; Raw then
	// holds its first KiB only.
	Oversize *Oversize
	// Held is set when the job was not popped by this fetch but found in
	// the slot's record, left by a fetch whose reply was lost.
	Held bool
	// storedAsIs is set when the record embeds Raw itself (a JSON object);
	// otherwise the record holds it as a JSON string.
	storedAsIs bool
}

// Oversize describes a payload refused for its size.
type Oversize struct {
	Size int
	SHA1 string
}

// OversizePayloadObject is the failure-record payload of a refused
// oversized job: {"class":"","args":[],"raw":"<first KiB>","truncated":true,"bytes":N,"sha1":"…"}.
func OversizePayloadObject(head []byte, o Oversize) json.RawMessage {
	b := []byte(InvalidPayloadObject(head))
	b = b[:len(b)-1]
	b = append(b, `,"truncated":true,"bytes":`...)
	b = strconv.AppendInt(b, int64(o.Size), 10)
	b = append(b, `,"sha1":`...)
	b = appendString(b, o.SHA1)
	return append(b, '}')
}

// Record returns the working-on record the fetch script stored for f; nil
// when the payload was not a JSON object (the script then stored it as a JSON
// string).
func (f Fetched) Record() []byte {
	if !f.storedAsIs {
		return nil
	}
	return EncodeWorkingOn(WorkingOn{Queue: f.Queue, RunAt: f.RunAt, Payload: f.Raw})
}

// heldJob is the job of a record the fetch script found already set on an
// idle slot: the payload as it was taken from the queue (the record embeds
// it, or holds it as a JSON string when it was not a JSON object). A record
// that is not a working-on record at all becomes the job's payload as is,
// so the worker fails it with a reason and the slot is freed.
func heldJob(slot int, rec []byte) Fetched {
	w, err := DecodeWorkingOn(rec)
	if err != nil || len(w.Payload) == 0 {
		return Fetched{Slot: slot, Raw: rec, Held: true}
	}
	f := Fetched{Slot: slot, Queue: w.Queue, RunAt: w.RunAt, Raw: w.Payload, storedAsIs: true, Held: true}
	if w.Payload[0] == '"' {
		var s string
		if err := json.Unmarshal(w.Payload, &s); err == nil {
			f.Raw, f.storedAsIs = []byte(s), false
		}
	}
	return f
}

// ErrPaused is returned by FetchWith when pause-all-workers is set.
var ErrPaused = errors.New("all workers are paused (pause-all-workers is set)")

// FetchWith pops up to len(req.WorkerIDs) jobs from req.Queues (in priority
// order) and records each one at worker:<id> of the slot that takes it,
// atomically. When req.PickupOwner is set, that process's pickup lists (jobs
// a blocking pickup moved out of the queues, see BlockingPickup) are drained
// after the queues themselves.
//
// A payload larger than req.MaxBytes is not transferred: its Fetched has
// Oversize set and Raw holds only its first KiB. With req.CheckHeld, a
// record already on one of the slots is handed back instead of popping for
// it. Without scripts (plain.go) the jobs pass through the pickup lists, and
// an oversize payload is transferred before it is cut.
func (s *Store) FetchWith(ctx context.Context, req FetchRequest, now time.Time) ([]Fetched, error) {
	if len(req.Queues) == 0 || len(req.WorkerIDs) == 0 {
		return nil, nil
	}
	if s.plain.Load() {
		return s.fetchPlain(ctx, req, now)
	}
	fc := s.fetchCall(req, now)
	v, err := fetchScript.Run(ctx, s.rdb, fc.keys, fc.args...).Result()
	if s.scriptRefused(err) {
		return s.fetchPlain(ctx, req, now)
	}
	if err != nil {
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		return nil, err
	}
	return fc.parse(v)
}

// FetchRequest asks FetchWith (or AckAndFetch) for up to len(WorkerIDs)
// jobs.
type FetchRequest struct {
	Queues      []string
	PickupOwner string
	WorkerIDs   []string
	MaxBytes    int
	// CheckHeld hands back records already on the slots instead of
	// popping for them (see fetchScript).
	CheckHeld bool
	replace   bool // the slots' records are of jobs acked in the same MULTI
}

// fetchCall is one call of the fetch script: its keys and arguments, and
// what parsing its reply needs.
type fetchCall struct {
	keys    []string
	args    []any
	queues  []string
	sources int
	slots   int
	runAt   string
}

func (s *Store) fetchCall(r FetchRequest, now time.Time) fetchCall {
	sources := len(r.Queues)
	if r.PickupOwner != "" {
		sources *= 2
	}
	keys := make([]string, 0, 1+sources+len(r.WorkerIDs))
	keys = append(keys, s.fixed.pauseAll)
	for _, q := range r.Queues {
		keys = append(keys, s.queueKey(q))
	}
	if r.PickupOwner != "" {
		for _, q := range r.Queues {
			keys = append(keys, s.pickups.get(s.Keys, r.PickupOwner, q))
		}
	}
	for _, id := range r.WorkerIDs {
		keys = append(keys, s.slotKeys(id).worker)
	}
	runAt := s.second.runAtOf(now)
	args := make([]any, 0, 3+sources)
	mode := ""
	switch {
	case r.replace:
		mode = "r"
	case r.CheckHeld:
		mode = "h"
	}
	args = append(args, sources, r.MaxBytes, mode)
	for i := 0; i < sources; i++ {
		_, prefix := s.second.prefix(r.Queues[i%len(r.Queues)], now)
		args = append(args, prefix)
	}
	return fetchCall{keys: keys, args: args, queues: r.Queues, sources: sources, slots: len(r.WorkerIDs), runAt: runAt}
}

// parse turns the fetch script's reply into jobs.
func (fc fetchCall) parse(v any) ([]Fetched, error) {
	switch r := v.(type) {
	case int64:
		if r == -1 {
			return nil, ErrPaused
		}
		return nil, nil
	case []any:
		out := make([]Fetched, 0, len(r)/4)
		for i := 0; i+3 < len(r); i += 4 {
			qi, _ := r[i].(int64)
			si, _ := r[i+1].(int64)
			if asis, _ := r[i+3].(int64); asis == 2 && si >= 1 && int(si) <= fc.slots {
				rec, _ := r[i+2].(string)
				out = append(out, heldJob(int(si)-1, []byte(rec)))
				continue
			}
			if qi < 1 || int(qi) > fc.sources || si < 1 || int(si) > fc.slots {
				return out, fmt.Errorf("fetch script returned an out-of-range index (%d, %d)", qi, si)
			}
			qi = (qi-1)%int64(len(fc.queues)) + 1
			asis, _ := r[i+3].(int64)
			f := Fetched{Slot: int(si) - 1, Queue: fc.queues[qi-1], RunAt: fc.runAt, storedAsIs: asis == 1}
			switch v := r[i+2].(type) {
			case string:
				f.Raw = []byte(v)
			case []any:
				if len(v) == 3 {
					size, _ := v[0].(int64)
					head, _ := v[1].(string)
					sum, _ := v[2].(string)
					f.Raw, f.Oversize = []byte(head), &Oversize{Size: int(size), SHA1: sum}
				}
			}
			out = append(out, f)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("fetch script returned %T", v)
	}
}

// Ack is the end of one job on one slot.
type Ack struct {
	WorkerID string
	// Failure, when set, is appended to the failed list before the counters.
	Failure []byte
	// CountFailed increments stat:failed and stat:failed:<id> (Ruby counts
	// failures reported by the job run, not dirty exits).
	CountFailed bool
	// Processed increments stat:processed and stat:processed:<id>; false only
	// when a before-perform hook skipped the job the node-resque way.
	Processed bool
	// Queue and Class label resq's per-queue/class counters. Class must be
	// "<unknown>" for unregistered classes, so hostile class names cannot
	// grow the counters without bound.
	Queue, Class string
	// SeenID, when set, marks a job id as run for SeenTTL (replay
	// protection).
	SeenID  string
	SeenTTL time.Duration
	// Retry, when set, writes the job's next attempt (see Retry) in the
	// ack's MULTI; Failure is then normally nil.
	Retry *Retry
	// DelKeys are deleted in the ack's MULTI (a retry counter when the job
	// succeeded or gave up).
	DelKeys []string
	// Next, when set, is the held job the slot started after this one
	// (Store.AckAhead): the write makes it the slot's record.
	Next *Claim
	// ClaimOnly marks an entry that ends no job: an idle slot started
	// Next. It counts nothing.
	ClaimOnly bool
}

// HistoryTTL is how long the per-minute processed/failed history is kept.
const HistoryTTL = 48 * time.Hour

// JobCountField is the field of the resq:jobs hash that counts jobs of one
// queue and class with one outcome ("processed" or "failed").
func JobCountField(outcome, queue, class string) string {
	return outcome + "\x1f" + queue + "\x1f" + class
}

// ackCommands queues an ack batch's commands (inside a MULTI): per ack the
// failure record, the per-worker counters and, unless the fetch script
// replaces it, DEL worker:<id>; then the batch's global and resq counters.
func (s *Store) ackCommands(ctx context.Context, p redis.Pipeliner, acks []Ack, now time.Time, replace bool) {
	var processed, failed int64
	// The per-worker counters, one INCRBY per worker id and counter: a
	// slot that runs held jobs has several acks in one batch.
	type slotCount struct {
		ks                *slotKeyset
		processed, failed int64
	}
	var perSlot []slotCount
	for _, a := range acks {
		if a.ClaimOnly {
			continue
		}
		ks := s.slotKeys(a.WorkerID)
		if a.Failure != nil {
			p.RPush(ctx, s.fixed.failed, a.Failure)
		}
		if a.Retry != nil {
			s.retryCommands(ctx, p, a.Retry)
		}
		if len(a.DelKeys) > 0 {
			p.Del(ctx, a.DelKeys...)
		}
		if !replace {
			p.Del(ctx, ks.worker) // else the fetch script replaces or deletes it
		}
		if a.SeenID != "" {
			p.Set(ctx, s.Keys.Seen(a.SeenID), 1, a.SeenTTL)
		}
		if !a.CountFailed && !a.Processed {
			continue
		}
		i := 0
		for i < len(perSlot) && perSlot[i].ks != ks {
			i++
		}
		if i == len(perSlot) {
			if perSlot == nil {
				perSlot = make([]slotCount, 0, len(acks))
			}
			perSlot = append(perSlot, slotCount{ks: ks})
		}
		if a.CountFailed {
			failed++
			perSlot[i].failed++
		}
		if a.Processed {
			processed++
			perSlot[i].processed++
		}
	}
	for _, c := range perSlot {
		if c.failed > 0 {
			p.IncrBy(ctx, c.ks.failed, c.failed)
		}
		if c.processed > 0 {
			p.IncrBy(ctx, c.ks.processed, c.processed)
		}
	}
	if failed > 0 {
		p.IncrBy(ctx, s.fixed.statFailed, failed)
	}
	if processed > 0 {
		p.IncrBy(ctx, s.fixed.statProcessed, processed)
	}
	// resq's own counters, aggregated over the batch (most batches hold
	// one queue and class: the field is built once per distinct pair).
	type countKey struct {
		failed       bool
		queue, class string
	}
	var counts map[countKey]int64
	for _, a := range acks {
		if !a.Processed && !a.CountFailed {
			continue
		}
		if counts == nil {
			counts = make(map[countKey]int64, 2)
		}
		if a.Processed {
			counts[countKey{false, a.Queue, a.Class}]++
		}
		if a.CountFailed {
			counts[countKey{true, a.Queue, a.Class}]++
		}
	}
	for k, n := range counts {
		outcome := "processed"
		if k.failed {
			outcome = "failed"
		}
		p.HIncrBy(ctx, s.fixed.jobCounts, JobCountField(outcome, k.queue, k.class), n)
	}
	hist := s.history.get(s.Keys, now.Unix()/60)
	if processed > 0 {
		p.HIncrBy(ctx, hist, "processed", processed)
	}
	if failed > 0 {
		p.HIncrBy(ctx, hist, "failed", failed)
	}
	if minute := now.Unix() / 60; s.histExpiry.Swap(minute) != minute {
		p.Expire(ctx, hist, HistoryTTL)
	}
}

// AckMark identifies one ack write of one process: AckAndFetch and
// AckRetry set <ns>:resq:acked:<Owner> to Seq in the write's MULTI.
type AckMark struct {
	Owner string // host:pid; "" writes no mark
	Seq   int64  // distinct for every batch of the process
}

// markTTL is how long an ack mark outlives its write: far longer than any
// retry loop.
const markTTL = time.Hour

// AckRetry writes an ack batch again after a write (with mark) whose reply
// did not arrive, unless that write landed: under WATCH on the mark it reads
// whether the mark holds mark.Seq (MULTI/EXEC is all or nothing, so then the
// whole write landed, its fetched jobs are in their slots' records, and
// nothing is written now) and otherwise runs the ack's MULTI, with the mark,
// which a landing in between aborts. landed reports the first case.
func (s *Store) AckRetry(ctx context.Context, acks []Ack, mark AckMark, now time.Time) (landed bool, err error) {
	return s.ackRetry(ctx, acks, mark, now, "")
}

// AckRetryAhead is AckRetry for a batch written by AckAhead: the retry
// writes the entries' claims and records (without fetching or holding) in
// the acks' MULTI, by EVAL, which needs no loaded script.
func (s *Store) AckRetryAhead(ctx context.Context, acks []Ack, mark AckMark, owner string, now time.Time) (landed bool, err error) {
	return s.ackRetry(ctx, acks, mark, now, owner)
}

func (s *Store) ackRetry(ctx context.Context, acks []Ack, mark AckMark, now time.Time, aheadOwner string) (landed bool, err error) {
	if len(acks) == 0 {
		return false, nil
	}
	if mark.Owner == "" {
		if aheadOwner != "" {
			_, err := s.AckAhead(ctx, acks, now, nil, aheadOwner, 0, AckMark{})
			return false, err
		}
		_, _, err := s.AckAndFetch(ctx, acks, now, nil, AckMark{})
		return false, err
	}
	var records aheadCall
	if aheadOwner != "" {
		records = s.aheadCall(acks, now, nil, aheadOwner, 0)
	}
	key := s.Keys.AckMark(mark.Owner)
	seq := strconv.FormatInt(mark.Seq, 10)
	err = s.watchRetry(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if landed = v == seq; landed {
			return nil
		}
		var script *redis.Cmd
		cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			s.ackCommands(ctx, p, acks, now, aheadOwner != "")
			p.Set(ctx, key, seq, markTTL)
			if aheadOwner != "" {
				script = aheadScript.Eval(ctx, p, records.keys, records.args...)
			}
			return nil
		})
		if err != nil && script != nil && script.Err() != nil && s.scriptRefused(script.Err()) {
			for _, c := range cmds {
				if c != script && c.Err() != nil {
					return err
				}
			}
			// Scripts were refused since the batch was first sent: the acks
			// are written, the records are written without one.
			return s.settleRecordsPlain(ctx, acks, s.Keys.Ahead(aheadOwner))
		}
		return err
	}, key)
	if err != nil {
		s.histExpiry.Store(0)
	}
	return landed, err
}

// AckAndFetch finishes jobs: for each ack, RPUSH failed (if any), INCRBY the
// failed counters, DEL worker:<id>, INCRBY the processed counters (spec
// §4.4), all in one MULTI/EXEC so a crash never leaves half an ack. When
// next is not nil, the same MULTI/EXEC (and so the same round trip) ends
// with FetchWith for next: the slots that just finished get their next jobs
// without a round trip of their own. The acks are written
// even when the fetch part fails (an unloaded script, say); that failure
// returns no jobs and no error, and the caller fetches the usual way. A
// paused namespace returns no jobs. fetched reports that the fetch ran (so
// slots without a job found the queues empty).
func (s *Store) AckAndFetch(ctx context.Context, acks []Ack, now time.Time, next *FetchRequest, mark AckMark) (got []Fetched, fetched bool, err error) {
	if s.plain.Load() {
		return s.ackAndFetchPlain(ctx, acks, now, next, mark)
	}
	if len(acks) == 0 {
		return nil, false, nil
	}
	var fc fetchCall
	var fetch *redis.Cmd
	replace := next != nil && len(next.Queues) > 0 && len(next.WorkerIDs) == len(acks) && !s.plain.Load()
	if replace {
		for i, a := range acks {
			if next.WorkerIDs[i] != a.WorkerID {
				replace = false
			}
		}
	}
	if !replace {
		next = nil
	}
	cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.ackCommands(ctx, p, acks, now, replace)
		if mark.Owner != "" {
			p.Set(ctx, s.marks.get(mark.Owner, s.Keys.AckMark), mark.Seq, markTTL)
		}
		if replace {
			r := *next
			r.replace = true
			fc = s.fetchCall(r, now)
			fetch = p.EvalSha(ctx, fetchScript.Hash(), fc.keys, fc.args...)
		}
		return nil
	})
	if err != nil {
		s.histExpiry.Store(0) // the EXPIRE may not have landed: send it again
		if fetch == nil {
			return nil, false, err
		}
		for _, c := range cmds {
			if c != fetch && c.Err() != nil {
				return nil, false, c.Err() // the acks failed, or their outcome is unknown
			}
		}
	}
	if fetch == nil {
		return nil, false, nil
	}
	ferr := fetch.Err()
	switch {
	case ferr == nil:
		got, perr := fc.parse(fetch.Val())
		if errors.Is(perr, ErrPaused) {
			return nil, false, nil
		}
		return got, perr == nil, perr
	case errors.Is(ferr, redis.Nil):
		return nil, true, nil
	default:
		// The script did not run (not loaded, or scripting refused): the acks
		// are written, the records of their jobs are not yet deleted.
		if redis.HasErrorPrefix(ferr, "NOSCRIPT") {
			_ = fetchScript.Load(ctx, s.rdb).Err()
		}
		s.scriptRefused(ferr)
		keys := make([]string, len(acks))
		for i, a := range acks {
			keys[i] = s.Keys.Worker(a.WorkerID)
		}
		if err := s.rdb.Del(ctx, keys...).Err(); err != nil {
			return nil, false, fmt.Errorf("deleting the in-flight records of written acks: %w", err)
		}
		return nil, false, nil
	}
}

// History returns processed and failed counts per minute for the n minutes
// up to and including the one holding now (oldest first).
func (s *Store) History(ctx context.Context, now time.Time, n int) (processed, failed []int64, err error) {
	cur := now.Unix() / 60
	cmds := make([]*redis.SliceCmd, n)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := 0; i < n; i++ {
			cmds[i] = p.HMGet(ctx, s.Keys.History(cur-int64(n-1-i)), "processed", "failed")
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	processed, failed = make([]int64, n), make([]int64, n)
	for i, c := range cmds {
		v := c.Val()
		if len(v) == 2 {
			processed[i], failed[i] = toInt(v[0]), toInt(v[1])
		}
	}
	return processed, failed, nil
}

// JobCount is one row of resq's per-queue/class counters.
type JobCount struct {
	Outcome, Queue, Class string
	N                     int64
}

// JobCounts reads resq's per-queue/class counters.
func (s *Store) JobCounts(ctx context.Context) ([]JobCount, error) {
	m, err := s.rdb.HGetAll(ctx, s.Keys.JobCounts()).Result()
	if err != nil {
		return nil, err
	}
	out := make([]JobCount, 0, len(m))
	for f, v := range m {
		parts := strings.SplitN(f, "\x1f", 3)
		if len(parts) != 3 {
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		out = append(out, JobCount{Outcome: parts[0], Queue: parts[1], Class: parts[2], N: n})
	}
	return out, nil
}

// Requeue puts an interrupted job back at the head of its queue and clears the
// slot's record, if the slot's record still exists (a recoverer may have
// requeued it already).
func (s *Store) Requeue(ctx context.Context, workerID, queue string, payload []byte) (bool, error) {
	if s.plain.Load() {
		return s.requeuePlain(ctx, workerID, queue, payload)
	}
	n, err := requeueScript.Run(ctx, s.rdb,
		[]string{s.Keys.Worker(workerID), s.Keys.Queue(queue), s.Keys.Queues()},
		payload, queue).Int64()
	if s.scriptRefused(err) {
		return s.requeuePlain(ctx, workerID, queue, payload)
	}
	return n == 1, err
}

// Register adds worker ids (docs/protocol.md §4.2): HDEL heartbeat, SADD workers, SET
// worker:<id>:started, and writes the first heartbeat.
func (s *Store) Register(ctx context.Context, ids []string, started time.Time) error {
	now, err := s.ServerTime(ctx)
	if err != nil {
		return err
	}
	st := Started(started)
	hb := Heartbeat(now)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		members := make([]any, len(ids))
		fields := make([]any, 0, 2*len(ids))
		for i, id := range ids {
			members[i] = id
			fields = append(fields, id, hb)
			p.Set(ctx, s.Keys.WorkerStarted(id), st, 0)
		}
		p.SAdd(ctx, s.Keys.Workers(), members...)
		p.HSet(ctx, s.Keys.Heartbeats(), fields...)
		return nil
	})
	return err
}

// Beat refreshes the heartbeats of ids with Redis's TIME (docs/protocol.md §4.5).
func (s *Store) Beat(ctx context.Context, ids []string) error {
	now, err := s.ServerTime(ctx)
	if err != nil {
		return err
	}
	hb := Heartbeat(now)
	fields := make([]any, 0, 2*len(ids))
	for _, id := range ids {
		fields = append(fields, id, hb)
	}
	return s.rdb.HSet(ctx, s.Keys.Heartbeats(), fields...).Err()
}

// Unregister removes worker ids exactly as Ruby's unregistration pipeline
// does (docs/protocol.md §4.2). Global counters are untouched.
func (s *Store) Unregister(ctx context.Context, ids []string) error {
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.SRem(ctx, s.Keys.Workers(), id)
			p.Del(ctx, s.Keys.Worker(id), s.Keys.WorkerStarted(id))
			p.HDel(ctx, s.Keys.Heartbeats(), id)
			p.Del(ctx, s.Keys.StatProcessedBy(id), s.Keys.StatFailedBy(id))
		}
		return nil
	})
	return err
}

// RecoverMode says what happens to a dead worker's in-flight job.
type RecoverMode int

const (
	// RecoverRequeue pushes the job back to the head of its queue (resq's default).
	RecoverRequeue RecoverMode = iota
	// RecoverFail writes a failure record, as Ruby's pruning does.
	RecoverFail
)

// RecoverWorker unregisters a dead worker. If expected (the record the caller
// read at worker:<id>) is non-nil, the job is requeued or failed in the same
// atomic step, and nothing happens if the record changed meanwhile.
// failure is the failure record to append in RecoverFail mode.
func (s *Store) RecoverWorker(ctx context.Context, id string, expected []byte, rec WorkingOn, mode RecoverMode, failure []byte) (bool, error) {
	target, push, modeArg := s.Keys.Queue(rec.Queue), []byte(rec.Payload), "requeue"
	if mode == RecoverFail {
		target, push, modeArg = s.Keys.Failed(), failure, "fail"
	}
	if expected == nil {
		expected, push = []byte{}, []byte{}
	}
	if s.plain.Load() {
		return s.recoverPlain(ctx, id, expected, target, push, rec.Queue, mode == RecoverRequeue)
	}
	n, err := recoverScript.Run(ctx, s.rdb, []string{
		s.Keys.Worker(id), target, s.Keys.Workers(), s.Keys.WorkerStarted(id),
		s.Keys.Heartbeats(), s.Keys.StatProcessedBy(id), s.Keys.StatFailedBy(id), s.Keys.Queues(),
	}, expected, push, id, rec.Queue, modeArg).Int64()
	if s.scriptRefused(err) {
		return s.recoverPlain(ctx, id, expected, target, push, rec.Queue, mode == RecoverRequeue)
	}
	return n == 1, err
}

// WorkerState is what Redis holds about one worker id.
type WorkerState struct {
	ID string
	// Registered is set when the id is in the workers set; WorkerStates
	// also returns ids that only have a heartbeat.
	Registered bool
	Record     []byte // worker:<id>, nil when idle
	Started    string
	Heartbeat  string
	Processed  int64
	Failed     int64
}

// WorkerStates reads every registered worker, plus ids that only have a
// heartbeat (Ruby prunes those too).
func (s *Store) WorkerStates(ctx context.Context) ([]WorkerState, error) {
	ids, err := s.rdb.SMembers(ctx, s.Keys.Workers()).Result()
	if err != nil {
		return nil, err
	}
	hbs, err := s.rdb.HGetAll(ctx, s.Keys.Heartbeats()).Result()
	if err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	for id := range hbs {
		if !seen[id] {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.SliceCmd, 0, (len(ids)+99)/100)
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := 0; i < len(ids); i += 100 {
			end := min(i+100, len(ids))
			keys := make([]string, 0, 4*(end-i))
			for _, id := range ids[i:end] {
				keys = append(keys, s.Keys.Worker(id), s.Keys.WorkerStarted(id), s.Keys.StatProcessedBy(id), s.Keys.StatFailedBy(id))
			}
			cmds = append(cmds, p.MGet(ctx, keys...))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]WorkerState, 0, len(ids))
	for ci, c := range cmds {
		vals := c.Val()
		for j := 0; j+3 < len(vals); j += 4 {
			id := ids[ci*100+j/4]
			w := WorkerState{ID: id, Registered: seen[id], Heartbeat: hbs[id]}
			if v, ok := vals[j].(string); ok {
				w.Record = []byte(v)
			}
			w.Started, _ = vals[j+1].(string)
			w.Processed = toInt(vals[j+2])
			w.Failed = toInt(vals[j+3])
			out = append(out, w)
		}
	}
	return out, nil
}

// IsRegistered reports whether id is in the workers set.
func (s *Store) IsRegistered(ctx context.Context, id string) (bool, error) {
	return s.rdb.SIsMember(ctx, s.Keys.Workers(), id).Result()
}

func toInt(v any) int64 {
	s, ok := v.(string)
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// Seen reports whether a job id was marked as run (replay protection).
func (s *Store) Seen(ctx context.Context, id string) (bool, error) {
	n, err := s.rdb.Exists(ctx, s.Keys.Seen(id)).Result()
	return n == 1, err
}

// AddSecretFields records field names of class's arguments that are secret
// (merged with those already recorded), so every process can redact them.
func (s *Store) AddSecretFields(ctx context.Context, class string, fields []string) error {
	if s.plain.Load() {
		return s.addSecretsPlain(ctx, class, fields)
	}
	err := addSecretsScript.Run(ctx, s.rdb, []string{s.Keys.SecretFields()}, append([]any{class}, toAny(fields)...)...).Err()
	if s.scriptRefused(err) {
		return s.addSecretsPlain(ctx, class, fields)
	}
	return err
}

// addSecretsScript merges field names into the class's newline-separated
// list.
var addSecretsScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
local set = {}
for f in string.gmatch(cur, '[^\n]+') do set[f] = true end
for i = 2, #ARGV do
  if not set[ARGV[i]] then
    if cur == '' then cur = ARGV[i] else cur = cur .. '\n' .. ARGV[i] end
    set[ARGV[i]] = true
  end
end
redis.call('HSET', KEYS[1], ARGV[1], cur)
return 1
`)

// SecretFields returns the recorded secret field names per class.
func (s *Store) SecretFields(ctx context.Context) (map[string][]string, error) {
	m, err := s.rdb.HGetAll(ctx, s.Keys.SecretFields()).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]string, len(m))
	for class, v := range m {
		out[class] = strings.Split(v, "\n")
	}
	return out, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// BlockingPickup waits up to timeout for a job in queue and moves it,
// atomically, to the tail of owner's pickup list for that queue (BLMOVE), from
// where the next Fetch takes it into a slot's record. It reports whether a
// job was moved. The job is in Redis all the time: if owner dies, its pickup
// lists are returned to their queues by ReturnPickups.
func (s *Store) BlockingPickup(ctx context.Context, owner, queue string, timeout time.Duration) (bool, error) {
	err := s.rdb.BLMove(ctx, s.Keys.Queue(queue), s.Keys.Pickup(owner, queue), "LEFT", "RIGHT", timeout).Err()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return err == nil, err
}

// ReturnPickups moves every job in owner's pickup lists back to the head of
// its queue, in order. It returns the number of jobs moved.
func (s *Store) ReturnPickups(ctx context.Context, owner string) (int, error) {
	s.hold.drop(owner)
	prefix := s.Keys.Pickup(owner, "")
	iter, err := s.scan(ctx, escapeGlob(prefix)+"*", 100)
	if err != nil {
		return 0, err
	}
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	moved := 0
	for _, k := range keys {
		q := strings.TrimPrefix(k, prefix)
		for {
			err := s.rdb.LMove(ctx, k, s.Keys.Queue(q), "RIGHT", "LEFT").Err()
			if errors.Is(err, redis.Nil) {
				break
			}
			if err != nil {
				return moved, err
			}
			moved++
		}
		if err := s.rdb.SAdd(ctx, s.Keys.Queues(), q).Err(); err != nil {
			return moved, err
		}
	}
	return moved, nil
}

func escapeGlob(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
