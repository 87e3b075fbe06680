package wire

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Jobs held ahead (decisions §31). With scripts, a busy worker's acks move
// a few jobs more than its finished slots need out of the queues into the
// worker's ahead hash, <ns>:resq:ahead:<id> (id: its first slot's worker
// id, so two Workers in one process never share a hold). A slot that finishes a
// job starts one of them at once, and the ack of the job it finished (or,
// for a slot that was idle, an entry of its own) claims it: the same
// MULTI/EXEC that counts the finished job makes the held one the slot's
// in-flight record and deletes it from the hash. So a job is always in
// Redis — in a queue, in the hash, or in a worker's record — and a slot
// never waits for Redis between two jobs while the hold has one.
//
// The hash's fields are "<batch>:<k>:<1|0><queue>" (a batch number of the
// Store, the k-th job the batch moved, whether the job is a JSON object
// stored as is in its record, the queue it came from), its values the
// job's bytes as they were in the queue (so the script stores the string
// LPOP gave it, without building another). Returning
// held jobs (ReturnHeld: on pause, on stop, for a dead process, when they
// were held too long) pushes them back to the heads of their queues in
// their order.

// Ahead is the hash of the jobs held ahead by the worker whose first slot
// has worker id owner.
func (k Keys) Ahead(owner string) string { return k.resq("ahead:" + owner) }

// Held is one job held ahead.
type Held struct {
	// Seq is its field in the ahead hash.
	Seq string
	// Source is the index of its queue in the request that moved it (the
	// queues' priority order), for the worker to take the highest first.
	Source int
	// Job is the job as a slot runs it (Slot and RunAt are set by Claim).
	Job Fetched
}

// Claim is a held job a slot started: the ack entry that carries it makes
// the job the slot's record.
type Claim struct {
	Seq    string
	record string // the slot's working-on record for the job
}

// Claim returns the job a slot runs for h, started now, and the claim its
// next ack entry carries. The claim carries the job's record, built as the
// fetch script builds one (the payload as is when it is a JSON object,
// else as a JSON string; an oversize job's first KiB).
func (s *Store) Claim(h Held, now time.Time) (Fetched, *Claim) {
	runAt, prefix := s.second.prefix(h.Job.Queue, now)
	f := h.Job
	f.RunAt = runAt
	if f.storedAsIs { // the usual case: one allocation
		var b strings.Builder
		b.Grow(len(prefix) + len(f.Raw) + 1)
		b.WriteString(prefix)
		b.Write(f.Raw)
		b.WriteByte('}')
		return f, &Claim{Seq: h.Seq, record: b.String()}
	}
	b := appendString([]byte(prefix), string(f.Raw))
	return f, &Claim{Seq: h.Seq, record: string(append(b, '}'))}
}

// AheadResult is what AckAhead did besides writing the acks.
type AheadResult struct {
	// Got are the jobs fetched for entries without a claim (Slot is the
	// entry's index).
	Got []Fetched
	// Held are the jobs moved into the hold.
	Held []Held
	// Missed counts the claimed jobs that were no longer held (a recoverer
	// returned them to their queues while this process ran them).
	Missed int
	// Fetched reports that the fetch ran: entries without a job found the
	// queues empty.
	Fetched bool
	// Paused reports that pause-all-workers was set: nothing was fetched
	// or held (claims are written).
	Paused bool
}

// aheadScript writes the records of one ack batch and fetches and holds.
//
// KEYS[1] = pause-all-workers, KEYS[2..1+m] = the sources (queues in
// priority order, then this process's pickup lists), KEYS[2+m] = the ahead
// hash, KEYS[3+m..2+m+n] = the worker:<id> key of each entry.
// ARGV[1] = m, ARGV[2] = the payload size limit, ARGV[3] = how many jobs to
// move into the hold, ARGV[4] = the batch number of their fields,
// ARGV[4+j] = the record prefix of source j, ARGV[4+m+j] = its queue name,
// then two per entry i, ARGV[3+2m+2i] = its record op and ARGV[4+2m+2i] =
// a record: op "d" deletes the entry's record, "f" fetches for the entry
// (pop from the sources, set the record; delete it if none), "c<field>"
// claims held job <field> (set the record given; the batch's claimed
// fields are deleted from the hash in one HDEL, and fields found gone
// counted: a recoverer returned them while this process ran them); an
// entry whose record a later entry of the same slot in the batch replaces
// writes none: "x<field>" only claims, "-" does nothing.
//
// Claims are written even when workers are paused (their jobs run); a
// paused namespace fetches and holds nothing. The held jobs are written in
// one HSET. Returns {1 or -1 (paused), then 5-tuples}: (1, source, entry,
// payload, asis) for a fetched job, (2, source, k, payload, asis) for a
// held one, (3, 0, 0, "", gone) when claimed fields were gone. A payload
// over the limit is returned as {size, first KiB, sha1} (see fetchScript).
var aheadScript = redis.NewScript(`
local m = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local hold = tonumber(ARGV[3])
local base = ARGV[4]
local ahead = KEYS[2 + m]
local n = #KEYS - 2 - m
local paused = false
local p = redis.call('GET', KEYS[1])
if p then
  paused = string.lower(string.match(p, '^%s*(.-)%s*$')) == 'true'
end
local q = 1
local function pop()
  while q <= m do
    local job = redis.call('LPOP', KEYS[1 + q])
    if job then return job end
    q = q + 1
  end
  return false
end
local function body(job)
  if #job > limit then
    local head = string.sub(job, 1, 1024)
    return cjson.encode(head), {#job, head, redis.sha1hex(job)}, 0
  elseif not (string.find(job, '^%s*{') and string.find(job, '}%s*$') and pcall(cjson.decode, job)) then
    return cjson.encode(job), job, 0
  end
  return job, job, 1
end
local out = {paused and -1 or 1}
local function emit(a, b, c, d, e)
  out[#out + 1] = a
  out[#out + 1] = b
  out[#out + 1] = c
  out[#out + 1] = d
  out[#out + 1] = e
end
local claimed = {}
for i = 1, n do
  local op = ARGV[3 + 2 * m + 2 * i]
  local wk = KEYS[2 + m + i]
  local kind = string.sub(op, 1, 1)
  if kind == 'c' then
    claimed[#claimed + 1] = string.sub(op, 2)
    redis.call('SET', wk, ARGV[4 + 2 * m + 2 * i])
  elseif kind == 'x' then
    claimed[#claimed + 1] = string.sub(op, 2)
  elseif kind == '-' then
  elseif kind == 'f' and not paused then
    local job = pop()
    if job then
      local b, ret, asis = body(job)
      redis.call('SET', wk, ARGV[4 + q] .. b .. '}')
      emit(1, q, i, ret, asis)
    else
      redis.call('DEL', wk)
    end
  else
    redis.call('DEL', wk)
  end
end
if #claimed > 0 then
  local gone = #claimed - redis.call('HDEL', ahead, unpack(claimed))
  if gone > 0 then emit(3, 0, 0, '', gone) end
end
if not paused and hold > 0 then
  local pairs = {}
  for k = 1, hold do
    local job = pop()
    if not job then break end
    local _, ret, asis = body(job)
    pairs[#pairs + 1] = base .. ':' .. k .. ':' .. asis .. ARGV[4 + m + q]
    pairs[#pairs + 1] = job
    emit(2, q, k, ret, asis)
  end
  if #pairs > 0 then redis.call('HSET', ahead, unpack(pairs)) end
end
return out
`)

// aheadCall is one call of aheadScript.
type aheadCall struct {
	keys  []string
	args  []any
	fc    fetchCall // the sources, for parsing
	base  string
	ops   int // index of the first op in args
	fetch bool
}

// aheadCall builds the script's keys and arguments. next nil: no fetch and
// no hold (the ops "f" become "d").
func (s *Store) aheadCall(acks []Ack, now time.Time, next *FetchRequest, owner string, hold int) aheadCall {
	var c aheadCall
	var sources int
	var names []string
	if next != nil && len(next.Queues) > 0 {
		c.fetch = true
		c.fc = s.fetchCall(*next, now)
		sources = c.fc.sources
		names = make([]string, sources)
		for i := range names {
			names[i] = next.Queues[i%len(next.Queues)]
		}
	} else {
		hold = 0
	}
	c.keys = make([]string, 0, 2+sources+len(acks))
	c.keys = append(c.keys, s.fixed.pauseAll)
	if c.fetch {
		c.keys = append(c.keys, c.fc.keys[1:1+sources]...)
	}
	c.keys = append(c.keys, s.Keys.Ahead(owner))
	for _, a := range acks {
		c.keys = append(c.keys, s.slotKeys(a.WorkerID).worker)
	}
	if hold > 0 {
		c.base = strconv.FormatInt(s.nextHoldBatch(), 10)
	}
	c.args = make([]any, 0, 4+2*sources+2*len(acks))
	c.args = append(c.args, sources, aheadLimit(next), hold, c.base)
	if c.fetch {
		c.args = append(c.args, c.fc.args[3:3+sources]...)
		for _, n := range names {
			c.args = append(c.args, n)
		}
	}
	c.ops = len(c.args)
	var last map[string]int // entry index of each worker id's last entry
	if len(acks) > 1 {
		last = make(map[string]int, len(acks))
		for i, a := range acks {
			last[a.WorkerID] = i
		}
	}
	for i, a := range acks {
		superseded := last != nil && last[a.WorkerID] != i
		switch {
		case superseded && a.Next != nil:
			c.args = append(c.args, "x"+a.Next.Seq, "")
		case superseded && !(c.fetch && !a.ClaimOnly):
			c.args = append(c.args, "-", "")
		case a.Next != nil:
			c.args = append(c.args, "c"+a.Next.Seq, a.Next.record)
		case c.fetch && !a.ClaimOnly:
			c.args = append(c.args, "f", "")
		default:
			c.args = append(c.args, "d", "")
		}
	}
	return c
}

// aheadLimit is the payload size limit of a batch.
func aheadLimit(next *FetchRequest) int {
	if next != nil && next.MaxBytes > 0 {
		return next.MaxBytes
	}
	return 1 << 30
}

// nextHoldBatch numbers the batches that hold jobs: from the Store's first
// use in Unix microseconds, so that a later process with the same pid (and
// so the same ahead hash) does not reuse a field of its predecessor.
func (s *Store) nextHoldBatch() int64 {
	s.holdSeq.CompareAndSwap(0, time.Now().UnixMicro())
	return s.holdSeq.Add(1)
}

// parse turns the script's reply into an AheadResult.
func (c aheadCall) parse(v any) (AheadResult, error) {
	var r AheadResult
	rows, ok := v.([]any)
	if !ok || len(rows) == 0 {
		return r, fmt.Errorf("ahead script returned %T", v)
	}
	status, _ := rows[0].(int64)
	r.Fetched = c.fetch && status == 1
	r.Paused = status == -1
	for i := 1; i+4 < len(rows); i += 5 {
		kind, _ := rows[i].(int64)
		src, _ := rows[i+1].(int64)
		idx, _ := rows[i+2].(int64)
		asis, _ := rows[i+4].(int64)
		if kind == 3 {
			r.Missed += int(asis)
			continue
		}
		if !c.fetch || src < 1 || int(src) > c.fc.sources {
			return r, fmt.Errorf("ahead script returned an out-of-range source %d", src)
		}
		qi := int(src-1) % len(c.fc.queues)
		f := Fetched{Queue: c.fc.queues[qi], RunAt: c.fc.runAt, storedAsIs: asis == 1}
		switch p := rows[i+3].(type) {
		case string:
			f.Raw = []byte(p)
		case []any:
			if len(p) == 3 {
				size, _ := p[0].(int64)
				head, _ := p[1].(string)
				sum, _ := p[2].(string)
				f.Raw, f.Oversize = []byte(head), &Oversize{Size: int(size), SHA1: sum}
			}
		}
		switch kind {
		case 1:
			f.Slot = int(idx) - 1
			r.Got = append(r.Got, f)
		case 2:
			f.RunAt = ""
			flag := "0"
			if asis == 1 {
				flag = "1"
			}
			r.Held = append(r.Held, Held{Seq: c.base + ":" + strconv.FormatInt(idx, 10) + ":" + flag + c.fc.queues[qi], Source: qi, Job: f})
		}
	}
	return r, nil
}

// AckAhead finishes jobs as AckAndFetch does, with the entries' claims of
// held jobs (Ack.Next, Ack.ClaimOnly), in one MULTI/EXEC. With next, the
// entries without a claim fetch their next jobs (next.WorkerIDs is not
// used: the entries' own ids are) and up to hold more jobs are moved into
// owner's hold. Every record write is the script's, in entry order, so two
// entries of one slot in one batch leave the later one's record.
func (s *Store) AckAhead(ctx context.Context, acks []Ack, now time.Time, next *FetchRequest, owner string, hold int, mark AckMark) (AheadResult, error) {
	if len(acks) == 0 {
		return AheadResult{}, nil
	}
	if !s.aheadLoaded.Load() {
		// Loaded before the first MULTI that runs it (and again after a
		// NOSCRIPT): a landed write whose reply is lost must not have
		// skipped the records for want of the script.
		if err := aheadScript.Load(ctx, s.rdb).Err(); err == nil {
			s.aheadLoaded.Store(true)
		} else if !s.scriptRefused(err) {
			return AheadResult{}, err
		}
	}
	c := s.aheadCall(acks, now, next, owner, hold)
	var script *redis.Cmd
	cmds, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		s.ackCommands(ctx, p, acks, now, true)
		if mark.Owner != "" {
			p.Set(ctx, s.marks.get(mark.Owner, s.Keys.AckMark), mark.Seq, markTTL)
		}
		script = p.EvalSha(ctx, aheadScript.Hash(), c.keys, c.args...)
		return nil
	})
	if err != nil {
		s.histExpiry.Store(0)
		for _, cmd := range cmds {
			if cmd != script && cmd.Err() != nil {
				return AheadResult{}, cmd.Err() // the acks failed, or their outcome is unknown
			}
		}
	}
	if serr := script.Err(); serr != nil {
		if redis.HasErrorPrefix(serr, "NOSCRIPT") {
			s.aheadLoaded.Store(false)
		}
		// The acks are written; the records are not (the script was not
		// loaded: Redis restarted). Write them now, without fetching.
		if err := s.settleRecords(ctx, acks, c); err != nil {
			return AheadResult{}, fmt.Errorf("writing the in-flight records of written acks: %w", err)
		}
		return AheadResult{}, nil
	}
	return c.parse(script.Val())
}

// settleRecords runs the record ops of a batch whose acks are written,
// with the fetch and hold left out: by EVAL (which loads nothing), or
// under WATCH without a script when Redis refuses them.
func (s *Store) settleRecords(ctx context.Context, acks []Ack, c aheadCall) error {
	keys, args := c.recordsOnly()
	err := aheadScript.Eval(ctx, s.rdb, keys, args...).Err()
	if err == nil || !s.scriptRefused(err) {
		return err
	}
	return s.settleRecordsPlain(ctx, acks, keys[1])
}

// recordsOnly is the call's keys and arguments without sources or hold.
func (c aheadCall) recordsOnly() ([]string, []any) {
	m := 0
	if c.fetch {
		m = c.fc.sources
	}
	keys := append([]string{c.keys[0]}, c.keys[1+m:]...)
	args := []any{0, c.args[1], 0, ""}
	for _, op := range c.args[c.ops:] {
		if op == "f" {
			op = "d"
		}
		args = append(args, op)
	}
	return keys, args
}

// settleRecordsPlain is the record ops without a script, in one MULTI.
func (s *Store) settleRecordsPlain(ctx context.Context, acks []Ack, ahead string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, a := range acks {
			wk := s.slotKeys(a.WorkerID).worker
			if a.Next == nil {
				p.Del(ctx, wk)
				continue
			}
			p.HDel(ctx, ahead, a.Next.Seq)
			p.Set(ctx, wk, a.Next.record, 0) // the job runs here either way
		}
		return nil
	})
	return err
}

// heldEntry is one field and value of an ahead hash.
type heldEntry struct {
	field, queue, job string
	asis              bool
	batch, k          int64
}

// compare orders entries as they were moved.
func (e heldEntry) compare(o heldEntry) int {
	if c := cmp.Compare(e.batch, o.batch); c != 0 {
		return c
	}
	return cmp.Compare(e.k, o.k)
}

// parseHeldEntry splits a field "<batch>:<k>:<1|0><queue>" and takes the
// job from its value.
func parseHeldEntry(field, v string) (heldEntry, bool) {
	e := heldEntry{field: field, job: v}
	b, rest, ok1 := strings.Cut(field, ":")
	k, rest, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 || len(rest) < 2 || (rest[0] != '0' && rest[0] != '1') {
		return e, false
	}
	var err1, err2 error
	e.batch, err1 = strconv.ParseInt(b, 10, 64)
	e.k, err2 = strconv.ParseInt(k, 10, 64)
	e.asis, e.queue = rest[0] == '1', rest[1:]
	return e, err1 == nil && err2 == nil
}

// ReturnHeld pushes jobs held ahead by owner back to the heads of their
// queues, in their order, and deletes them from the hold: the fields
// given, or all of them when fields is nil (owner then also leaves
// AheadOwners). Fields no longer held are skipped. It returns the number
// of jobs returned.
func (s *Store) ReturnHeld(ctx context.Context, owner string, fields []string) (int, error) {
	if fields != nil && len(fields) == 0 {
		return 0, nil
	}
	key := s.Keys.Ahead(owner)
	returned := 0
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		returned = 0
		var entries []heldEntry
		if fields == nil {
			all, err := tx.HGetAll(ctx, key).Result()
			if err != nil {
				return err
			}
			for f, v := range all {
				if e, ok := parseHeldEntry(f, v); ok {
					entries = append(entries, e)
				}
			}
		} else {
			vals, err := tx.HMGet(ctx, key, fields...).Result()
			if err != nil {
				return err
			}
			for i, v := range vals {
				sv, ok := v.(string)
				if !ok {
					continue
				}
				if e, ok := parseHeldEntry(fields[i], sv); ok {
					entries = append(entries, e)
				}
			}
		}
		if len(entries) == 0 {
			if fields == nil {
				// Nothing held (a value resq does not write is left for an
				// operator): the owner leaves the set.
				return tx.SRem(ctx, s.fixed.aheadOwners, owner).Err()
			}
			return nil
		}
		// Latest first, each to the head of its queue: the earliest ends
		// up first, where it was.
		slices.SortFunc(entries, func(a, b heldEntry) int { return -a.compare(b) })
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			seen := map[string]bool{}
			for _, e := range entries {
				p.LPush(ctx, s.Keys.Queue(e.queue), e.job)
				if !seen[e.queue] {
					seen[e.queue] = true
					p.SAdd(ctx, s.fixed.queues, e.queue)
				}
				p.HDel(ctx, key, e.field)
			}
			if fields == nil {
				p.SRem(ctx, s.fixed.aheadOwners, owner)
			}
			return nil
		})
		if err == nil {
			returned = len(entries)
		}
		return err
	}, key)
	return returned, err
}

// HeldAhead reads owner's ahead hash: what a worker adopts after a write
// whose reply it lost. Source is -1 (the caller ranks them).
func (s *Store) HeldAhead(ctx context.Context, owner string, maxBytes int) ([]Held, error) {
	all, err := s.rdb.HGetAll(ctx, s.Keys.Ahead(owner)).Result()
	if err != nil {
		return nil, err
	}
	var entries []heldEntry
	for f, v := range all {
		if e, ok := parseHeldEntry(f, v); ok {
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, heldEntry.compare)
	out := make([]Held, 0, len(entries))
	for _, e := range entries {
		f := Fetched{Queue: e.queue, Raw: []byte(e.job), storedAsIs: e.asis}
		if maxBytes > 0 && len(e.job) > maxBytes {
			f.Raw, f.Oversize = []byte(e.job[:1024]), &Oversize{Size: len(e.job), SHA1: sha1Hex(e.job)}
		}
		out = append(out, Held{Seq: e.field, Source: -1, Job: f})
	}
	return out, nil
}

// heldPayloads returns the jobs in every worker's ahead hash.
func (s *Store) heldPayloads(ctx context.Context) ([][]byte, error) {
	owners, err := s.HoldOwners(ctx)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, o := range owners {
		all, err := s.rdb.HGetAll(ctx, s.Keys.Ahead(o)).Result() // (the viewer role's read)
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for _, v := range all {
			out = append(out, []byte(v))
		}
	}
	return out, nil
}

func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// AheadOwners is the set of the workers (first slot ids) that hold or may
// hold jobs ahead: added before a worker holds anything, removed once its
// hold is returned, so that the dead-worker check finds a hold whose
// worker something else unregistered without scanning the keyspace.
func (k Keys) AheadOwners() string { return k.resq("aheads") }

// AddHoldOwner records owner in AheadOwners before its worker holds jobs.
func (s *Store) AddHoldOwner(ctx context.Context, owner string) error {
	return s.rdb.SAdd(ctx, s.Keys.AheadOwners(), owner).Err()
}

// HoldOwners returns the members of AheadOwners.
func (s *Store) HoldOwners(ctx context.Context) ([]string, error) {
	return s.rdb.SMembers(ctx, s.Keys.AheadOwners()).Result()
}
