package wire

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/envelope"
)

// Plain-command mode. Some operators deny Lua scripting (an ACL without
// @scripting, or EVAL/EVALSHA/SCRIPT renamed away, as a CVE workaround).
// The Store then runs the core path — fetch, requeue, dead-worker recovery,
// capped push, secret-field registration — with plain commands, WATCH and
// MULTI/EXEC instead of scripts. It costs round trips (a fetch takes three
// or more instead of one; an ack's MULTI claims jobs its predecessors held
// ahead, see ackAndFetchPlain), and a payload over the size limit is
// transferred before it is refused; the guarantees hold: a job is in a
// Redis list or in a slot's record at every moment.
//
// The fetch moves jobs from the queues into the process's pickup lists
// (LMOVE, atomic, the lists a dead process's successor returns to their
// queues), then, in one MULTI, removes each claimed job from its pickup list
// and writes the slot's record. Only the process itself claims from its
// pickup lists (its fetcher and its acks, which may race each other), and
// the LREM decides every claim: one that finds its job gone deletes the
// record again and runs nothing.

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
		if s.hold.holds(r.PickupOwner) {
			// Jobs held ahead for the plain acks go back to their queues: a
			// paused worker holds nothing but its running jobs.
			if _, err := s.ReturnPickups(ctx, r.PickupOwner); err != nil {
				return nil, err
			}
		}
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
	// Claim the oldest waiting jobs, higher-priority queues first. The
	// whole lists are read: what is left after the claims is held ahead
	// (hold.adopt), so no job waits in them for this fetcher.
	gen := s.hold.generation(r.PickupOwner)
	pipe = s.rdb.Pipeline()
	ranges := make([]*redis.StringSliceCmd, len(r.Queues))
	for i, q := range r.Queues {
		ranges[i] = pipe.LRange(ctx, s.Keys.Pickup(r.PickupOwner, q), 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return out, err
	}
	var claims []claim
	for i, c := range ranges {
		for _, job := range c.Val() {
			if len(claims) == len(free) {
				break
			}
			claims = append(claims, claim{slot: free[len(claims)], qi: i, queue: r.Queues[i], job: job})
		}
	}
	if len(claims) == 0 {
		return out, nil
	}
	runAt := RunAt(now)
	qks := s.queueKeys(r.PickupOwner, r.Queues, runAt)
	fetched := make([]Fetched, len(claims))
	rems := make([]*redis.IntCmd, len(claims))
	cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range claims {
			fetched[i], rems[i] = s.claimCommands(ctx, p, qks[c.qi], s.Keys.Worker(r.WorkerIDs[c.slot]), c, r.MaxBytes, runAt)
		}
		return nil
	})
	if err = txErr(cmds, err); err != nil {
		return out, err
	}
	var lost []string
	taken := make(map[string]int, len(r.Queues))
	for i, c := range rems {
		taken[claims[i].queue]++
		if c.Val() == 1 {
			out = append(out, fetched[i])
			s.hold.forget(r.PickupOwner, claims[i].queue, claims[i].job)
		} else {
			// Gone from the pickup list (a recoverer that took this process
			// for dead returned it to its queue): not ours to run.
			lost = append(lost, s.Keys.Worker(r.WorkerIDs[claims[i].slot]))
		}
	}
	// What the pickup lists hold beyond the claims is held ahead: the next
	// plain acks claim it (unless one ran meanwhile and the view is stale).
	rest := make(map[string][]string, len(r.Queues))
	for i, c := range ranges {
		rest[r.Queues[i]] = c.Val()[min(taken[r.Queues[i]], len(c.Val())):]
	}
	s.hold.adopt(r.PickupOwner, gen, rest)
	if len(lost) > 0 {
		if err := s.rdb.Del(ctx, lost...).Err(); err != nil {
			return out, err
		}
	}
	return out, nil
}

// claim is one job of a pickup list going to one slot.
type claim struct {
	slot  int
	qi    int // index of queue in the request's Queues
	queue string
	job   string
}

// queueKeys are one queue's keys in a plain fetch or ack: the queue, the
// owner's pickup list for it, and its records' prefix.
type queueKeys struct{ queue, pickup, prefix string }

func (s *Store) queueKeys(owner string, queues []string, runAt string) []queueKeys {
	out := make([]queueKeys, len(queues))
	for i, q := range queues {
		out[i] = queueKeys{queue: s.Keys.Queue(q), pickup: s.Keys.Pickup(owner, q), prefix: RecordPrefix(q, runAt)}
	}
	return out
}

// claimCommands queues (inside a MULTI) the claim of c.job for the slot
// whose record is key: LREM it from the pickup list of its queue and SET
// the record. The LREM's reply decides: 0 means the job was not there
// (another claim or a recoverer took it) and the record must be deleted
// again, unrun. It returns the job as the slot will see it.
func (s *Store) claimCommands(ctx context.Context, p redis.Pipeliner, qk queueKeys, key string, c claim, maxBytes int, runAt string) (Fetched, *redis.IntCmd) {
	f := Fetched{Slot: c.slot, Queue: c.queue, RunAt: runAt, Raw: []byte(c.job)}
	var body []byte
	switch {
	case len(c.job) > maxBytes:
		head := c.job[:min(len(c.job), 1024)]
		f.Raw, f.Oversize = []byte(head), &Oversize{Size: len(c.job), SHA1: envelope.SHA1Hex([]byte(c.job))}
		body = appendString(nil, head)
	case looksLikeObject(f.Raw):
		body, f.storedAsIs = f.Raw, true
	default:
		body = appendString(nil, c.job)
	}
	rem := p.LRem(ctx, qk.pickup, 1, c.job)
	rec := make([]byte, 0, len(qk.prefix)+len(body)+1)
	rec = append(append(append(rec, qk.prefix...), body...), '}')
	p.Set(ctx, key, rec, 0)
	return f, rem
}

// txErr is the error of a MULTI/EXEC or pipeline whose commands may reply
// nil (an empty GET or LMOVE): the first real error of its commands, else
// the transport's.
func txErr(cmds []redis.Cmder, err error) error {
	if err == nil {
		return nil
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !errors.Is(e, redis.Nil) {
			return e
		}
	}
	if errors.Is(err, redis.Nil) {
		return nil
	}
	return err
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
		if pushed {
			err = s.confirmed(s.confirmIn(ctx, tx))
		}
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

// The plain-command ack fetches too (decisions §28). Without a script the
// ack's MULTI cannot pop a job and write it into a record, since a MULTI
// cannot use one command's reply in the next; but it can claim jobs whose
// payloads the worker already knows. So each ack's MULTI (one round trip)
//
//   - claims, for the slots it acks, jobs an earlier ack moved into this
//     process's pickup lists ("held ahead"): LREM from the pickup list and
//     SET the slot's record, the same claim as fetchPlain's;
//   - refills: LMOVEs from the queues into the pickup lists (atomic, and
//     the lists a dead process's successor returns), whose replies are
//     the next batch's payloads;
//   - reads pause-all-workers, so that a pause seen there undoes the claims
//     (their jobs go back to the heads of their queues) and returns what is
//     held ahead.
//
// When fewer jobs were held than the batch has slots, a second MULTI claims
// the jobs the refill just moved for the slots left over (at start-up, after
// a burst); in steady state a batch costs one round trip, as with scripts.
// A process holds ahead at most two batches (so at most twice its slots,
// about its slots with two acker loops) plus one probe per higher-priority
// queue that was empty; when a refill finds the
// queues dry, what is held goes back to the queues (so it cannot sit there
// while another batch's slots idle), and a stopping or paused worker holds
// nothing ahead (the acker sends no fetch, and ReturnPickups empties the
// lists).
//
// The hold is only the worker's belief about its pickup lists: a claim's
// LREM decides. A job another claimant took, or that a recoverer returned
// to its queue, has LREM reply 0, and its record is deleted unrun.

// pickupHold is what a Store believes its plain acks hold ahead, per pickup
// owner.
type pickupHold struct {
	mu     sync.Mutex
	owners map[string]*heldPickups
}

type heldPickups struct {
	jobs map[string][]string // queue → payloads believed in its pickup list, oldest first
	dry  map[string]bool     // the queue was empty at its last refill
	// pending counts refill moves sent whose replies are not back; inflight
	// counts plain acks in flight, gen those started (fetchPlain adopts what
	// it saw only when no ack ran meanwhile).
	pending, inflight int
	gen               uint64
}

// refillMove is part of an ack's refill: n LMOVEs from queue.
type refillMove struct {
	qi    int // index in the request's Queues
	queue string
	n     int
}

func (h *pickupHold) get(owner string) *heldPickups {
	if h.owners == nil {
		h.owners = map[string]*heldPickups{}
	}
	p := h.owners[owner]
	if p == nil {
		p = &heldPickups{jobs: map[string][]string{}, dry: map[string]bool{}}
		h.owners[owner] = p
	}
	return p
}

// takeLocked pops up to n held jobs for queues, higher priority first,
// oldest first; claim.slot numbers them from 0.
func (p *heldPickups) takeLocked(queues []string, n int) []claim {
	var out []claim
	for i, q := range queues {
		for len(out) < n && len(p.jobs[q]) > 0 {
			out = append(out, claim{slot: len(out), qi: i, queue: q, job: p.jobs[q][0]})
			p.jobs[q] = p.jobs[q][1:]
		}
	}
	return out
}

func (p *heldPickups) countLocked(queues []string) int {
	n := 0
	for _, q := range queues {
		n += len(p.jobs[q])
	}
	return n
}

// begin starts a plain ack of n slots: it takes up to n held jobs to claim
// and plans the refill: enough for the slots left over now, plus two
// batches ahead (the worker's two acker loops draw on one hold: with one
// batch ahead half the acks needed a second MULTI at concurrency 10),
// minus what is held and on its way. Higher-priority queues that
// were empty at their last refill get one probing move each; the first
// other queue gets the rest.
func (h *pickupHold) begin(owner string, queues []string, n int) (claims []claim, plan []refillMove, moves int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.get(owner)
	p.inflight++
	p.gen++
	claims = p.takeLocked(queues, n)
	want := n - len(claims) + max(0, 2*n-p.countLocked(queues)-p.pending)
	if want == 0 {
		return claims, nil, 0
	}
	for i, q := range queues {
		if p.dry[q] && i < len(queues)-1 {
			plan = append(plan, refillMove{qi: i, queue: q, n: 1})
			moves++
			continue
		}
		plan = append(plan, refillMove{qi: i, queue: q, n: want})
		moves += want
		break
	}
	p.pending += moves
	return claims, plan, moves
}

// settle records a refill's outcome: moved jobs are held, a queue whose
// moves came back empty is dry. moved nil means the outcome is unknown
// (what did move is found by fetchPlain, which reads the whole lists).
func (h *pickupHold) settle(owner string, moves int, moved map[string][]string, dry map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.get(owner)
	p.pending -= moves
	for q, jobs := range moved {
		p.jobs[q] = append(p.jobs[q], jobs...)
	}
	for q, d := range dry {
		p.dry[q] = d
	}
}

// take pops up to n held jobs (see takeLocked).
func (h *pickupHold) take(owner string, queues []string, n int) []claim {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.get(owner).takeLocked(queues, n)
}

// end finishes a plain ack begun with begin. It reports whether nothing is
// held for queues and no other ack is on its way (so slots without a job
// found the queues empty), and, when surplus, takes every held job of
// queues to return to them.
func (h *pickupHold) end(owner string, queues []string, surplus bool) (idle bool, back []claim) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.get(owner)
	p.inflight--
	if surplus {
		back = p.takeLocked(queues, p.countLocked(queues))
	}
	return p.countLocked(queues) == 0 && p.inflight == 0 && p.pending == 0, back
}

// generation is the count of plain acks begun, for adopt.
func (h *pickupHold) generation(owner string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.get(owner).gen
}

// adopt replaces the hold of the queues in lists with what fetchPlain saw
// left in the pickup lists after its claims, when no plain ack began since
// gen and none is on its way (else the hold stays as it is).
func (h *pickupHold) adopt(owner string, gen uint64, lists map[string][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.get(owner)
	if p.gen != gen || p.inflight > 0 || p.pending > 0 {
		return
	}
	for q, jobs := range lists {
		p.jobs[q] = append([]string(nil), jobs...)
	}
}

// forget drops one held copy of job (fetchPlain claimed it).
func (h *pickupHold) forget(owner, queue, job string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.get(owner)
	for i, j := range p.jobs[queue] {
		if j == job {
			p.jobs[queue] = append(p.jobs[queue][:i:i], p.jobs[queue][i+1:]...)
			return
		}
	}
}

// holds reports whether anything is held for owner.
func (h *pickupHold) holds(owner string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.owners[owner]
	if p == nil {
		return false
	}
	for _, jobs := range p.jobs {
		if len(jobs) > 0 {
			return true
		}
	}
	return false
}

// drop forgets owner's hold (its pickup lists were returned).
func (h *pickupHold) drop(owner string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.owners[owner]; p != nil && p.inflight == 0 && p.pending == 0 {
		delete(h.owners, owner)
	} else if p != nil {
		clear(p.jobs)
		clear(p.dry)
	}
}

// ackPlain writes an ack batch in one MULTI, without fetching.
func (s *Store) ackPlain(ctx context.Context, acks []Ack, now time.Time, mark AckMark) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.ackCommands(ctx, p, acks, now, false)
		if mark.Owner != "" {
			p.Set(ctx, s.Keys.AckMark(mark.Owner), mark.Seq, markTTL)
		}
		return nil
	})
	if err != nil {
		s.histExpiry.Store(0) // the EXPIRE may not have landed: send it again
	}
	return err
}

// ackAndFetchPlain is AckAndFetch without scripts (see above the
// pickupHold type). next must ask for exactly the acked slots, in order,
// through a pickup owner; else the acks are written without a fetch. The
// second MULTI (claims for slots the held jobs did not cover) is sent only
// with a mark: its failure returns an error, and the caller's AckRetry must
// then find the acks written rather than write them again.
func (s *Store) ackAndFetchPlain(ctx context.Context, acks []Ack, now time.Time, next *FetchRequest, mark AckMark) ([]Fetched, bool, error) {
	if len(acks) == 0 {
		return nil, false, nil
	}
	if next == nil || len(next.Queues) == 0 || next.PickupOwner == "" || len(next.WorkerIDs) != len(acks) {
		return nil, false, s.ackPlain(ctx, acks, now, mark)
	}
	for i, a := range acks {
		if next.WorkerIDs[i] != a.WorkerID {
			return nil, false, s.ackPlain(ctx, acks, now, mark)
		}
	}
	owner, n := next.PickupOwner, len(acks)
	runAt := RunAt(now)
	qks := s.queueKeys(owner, next.Queues, runAt)
	claims, plan, moves := s.hold.begin(owner, next.Queues, n)
	ended := false
	defer func() {
		if !ended {
			s.hold.end(owner, next.Queues, false)
		}
	}()
	got := make([]Fetched, len(claims))
	rems := make([]*redis.IntCmd, len(claims))
	lmoves := make([]*redis.StringCmd, 0, moves)
	var pause *redis.StringCmd
	set := make([]bool, n) // the MULTI wrote a record of a claim on the slot
	cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		pause = p.Get(ctx, s.Keys.PauseAll())
		s.ackCommands(ctx, p, acks, now, true) // the records: claimed below, or deleted
		for i, c := range claims {
			set[c.slot] = true
			got[i], rems[i] = s.claimCommands(ctx, p, qks[c.qi], s.Keys.Worker(next.WorkerIDs[c.slot]), c, next.MaxBytes, runAt)
		}
		for i, a := range acks {
			if !set[i] {
				p.Del(ctx, s.Keys.Worker(a.WorkerID))
			}
		}
		if mark.Owner != "" {
			p.Set(ctx, s.Keys.AckMark(mark.Owner), mark.Seq, markTTL)
		}
		for _, m := range plan {
			for range m.n {
				lmoves = append(lmoves, p.LMove(ctx, qks[m.qi].queue, qks[m.qi].pickup, "LEFT", "RIGHT"))
			}
		}
		return nil
	})
	if err = txErr(cmds, err); err != nil {
		// The outcome is unknown: the claimed jobs are in the records or
		// still in the pickup lists, the moved ones in the pickup lists;
		// the slots' next fetch (CheckHeld) finds them either way.
		s.histExpiry.Store(0)
		s.hold.settle(owner, moves, nil, nil)
		return nil, false, err
	}
	moved := make(map[string][]string, len(plan))
	dry := make(map[string]bool, len(plan))
	k := 0
	for _, m := range plan {
		dry[m.queue] = false
		for range m.n {
			if v, err := lmoves[k].Result(); err == nil {
				moved[m.queue] = append(moved[m.queue], v)
			} else {
				dry[m.queue] = true
			}
			k++
		}
	}
	s.hold.settle(owner, moves, moved, dry)
	if pausedValue(pause.Val()) {
		ended = true
		s.hold.end(owner, next.Queues, false)
		return nil, false, s.unclaimPaused(ctx, owner, next, claims, rems)
	}

	var out []Fetched
	have := make([]bool, n)
	for i, c := range claims {
		if rems[i].Val() == 1 {
			out = append(out, got[i])
			have[c.slot] = true
		}
	}
	if len(out) < n && mark.Owner != "" {
		var short []int
		for i := range n {
			if !have[i] {
				short = append(short, i)
			}
		}
		more := s.hold.take(owner, next.Queues, len(short))
		if len(more) > 0 {
			got2 := make([]Fetched, len(more))
			rems2 := make([]*redis.IntCmd, len(more))
			cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for i := range more {
					more[i].slot = short[i]
					set[short[i]] = true
					got2[i], rems2[i] = s.claimCommands(ctx, p, qks[more[i].qi], s.Keys.Worker(next.WorkerIDs[short[i]]), more[i], next.MaxBytes, runAt)
				}
				return nil
			})
			if err = txErr(cmds, err); err != nil {
				return nil, false, fmt.Errorf("claiming the next jobs after written acks: %w", err)
			}
			for i, c := range more {
				if rems2[i].Val() == 1 {
					out = append(out, got2[i])
					have[c.slot] = true
				}
			}
		}
	}
	// A refill whose supplying queue ran dry returns what is held of the
	// queues, so that no job waits in a pickup list while other slots idle
	// (probes of higher queues known to be empty do not count).
	ranDry := len(plan) > 0 && dry[plan[len(plan)-1].queue]
	ended = true
	idle, back := s.hold.end(owner, next.Queues, ranDry)
	var lost []string
	for i := range n {
		if set[i] && !have[i] {
			lost = append(lost, s.Keys.Worker(next.WorkerIDs[i]))
		}
	}
	if len(lost) > 0 || len(back) > 0 {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			if len(lost) > 0 {
				// Claims whose jobs were gone (another claim or a
				// recoverer took them): not ours to run.
				p.Del(ctx, lost...)
			}
			for i := len(back) - 1; i >= 0; i-- {
				// The newest first, each to its queue's head: order kept.
				p.LMove(ctx, qks[back[i].qi].pickup, qks[back[i].qi].queue, "RIGHT", "LEFT")
			}
			return nil
		})
		if err = txErr(cmds, err); err != nil {
			return out, false, err
		}
	}
	return out, len(out) == n || idle && len(back) == 0 && allDry(dry, next.Queues), nil
}

// allDry reports whether every one of queues was found empty by a refill.
func allDry(dry map[string]bool, queues []string) bool {
	for _, q := range queues {
		if !dry[q] {
			return false
		}
	}
	return true
}

// unclaimPaused undoes an ack's claims that met pause-all-workers: what
// is held ahead goes back to the queues, then each claimed job from its
// slot's record to the head of its queue (the newest first, so the order
// is kept); a claim whose job was gone only loses its record.
func (s *Store) unclaimPaused(ctx context.Context, owner string, next *FetchRequest, claims []claim, rems []*redis.IntCmd) error {
	if _, err := s.ReturnPickups(ctx, owner); err != nil {
		return err
	}
	var lost []string
	for i := len(claims) - 1; i >= 0; i-- {
		id := next.WorkerIDs[claims[i].slot]
		if rems[i].Val() != 1 {
			lost = append(lost, s.Keys.Worker(id))
			continue
		}
		if _, err := s.requeuePlain(ctx, id, claims[i].queue, []byte(claims[i].job)); err != nil {
			return err
		}
	}
	if len(lost) > 0 {
		return s.rdb.Del(ctx, lost...).Err()
	}
	return nil
}
