package wire_test

import (
	"context"
	"crypto/sha1"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/wire"
)

// The plain-command fetch keeps the script's semantics: queues in priority
// order, the in-flight record written as the job leaves the pickup list,
// non-objects stored as JSON strings, oversize payloads reduced to their
// first KiB and SHA-1, and records already on a slot handed back.
func TestFetchPlain(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	s.UsePlainCommands()
	ids := []string{"h:1:hi,lo:1", "h:1:hi,lo:2", "h:1:hi,lo:3", "h:1:hi,lo:4"}
	huge := `{"class":"X","args":["` + strings.Repeat("A", 4096) + `"]}`
	srv.Do(t, "RPUSH", "resque:queue:lo", `{"class":"Lo","args":[]}`, "not json")
	srv.Do(t, "RPUSH", "resque:queue:hi", `{"class":"Hi","args":[]}`, huge)
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"hi", "lo"}, PickupOwner: "h:1", WorkerIDs: ids[:3], MaxBytes: 1024, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 3 {
		t.Fatalf("Fetch = %+v, %v", got, err)
	}
	if got[0].Queue != "hi" || string(got[0].Raw) != `{"class":"Hi","args":[]}` || got[0].Slot != 0 {
		t.Errorf("first = %+v", got[0])
	}
	if o := got[1].Oversize; o == nil || o.Size != len(huge) || o.SHA1 != fmt.Sprintf("%x", sha1.Sum([]byte(huge))) || len(got[1].Raw) != 1024 {
		t.Errorf("second = %+v, want the oversize job", got[1])
	}
	if got[2].Queue != "lo" || string(got[2].Raw) != `{"class":"Lo","args":[]}` {
		t.Errorf("third = %+v", got[2])
	}
	for i := range 3 {
		rec := srv.Do(t, "GET", "resque:worker:"+ids[i])
		w, err := wire.DecodeWorkingOn([]byte(rec))
		if err != nil || w.Queue != got[i].Queue || (got[i].Oversize == nil && string(w.Payload) != string(got[i].Raw)) {
			t.Errorf("record %d = %s", i, rec)
		}
	}
	expect(t, srv, "0", "EXISTS", "resque:resq:pickup:h:1:hi", "resque:resq:pickup:h:1:lo")
	expect(t, srv, "not json", "LRANGE", "resque:queue:lo", "0", "-1")

	// The next fetch for slots 1 (busy: record set) and 4 hands back slot 1's
	// record and stores "not json" as a JSON string for slot 4.
	got, err = s.FetchWith(bg, wire.FetchRequest{Queues: []string{"hi", "lo"}, PickupOwner: "h:1", WorkerIDs: []string{ids[0], ids[3]}, MaxBytes: 1024, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 2 {
		t.Fatalf("second Fetch = %+v, %v", got, err)
	}
	if !got[0].Held || got[0].Slot != 0 || string(got[0].Raw) != `{"class":"Hi","args":[]}` {
		t.Errorf("held = %+v", got[0])
	}
	if got[1].Slot != 1 || string(got[1].Raw) != "not json" || got[1].Record() != nil {
		t.Errorf("non-object = %+v", got[1])
	}
	expect(t, srv, `{"queue":"lo","run_at":"2024-01-15T10:23:45Z","payload":"not json"}`, "GET", "resque:worker:"+ids[3])

	srv.Do(t, "SET", "resque:pause-all-workers", "true")
	if _, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"hi"}, PickupOwner: "h:1", WorkerIDs: []string{"h:1:x"}, MaxBytes: 1024, CheckHeld: true}, specInstant); err != wire.ErrPaused {
		t.Errorf("paused Fetch: %v", err)
	}
}

// roundTrips counts the client's round trips: a command, a pipeline or a
// MULTI/EXEC block each take one.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (r *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { r.n.Add(1); return next(ctx, cmd) }
}
func (r *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { r.n.Add(1); return next(ctx, cmds) }
}

// plainStore is a plain-command Store on srv whose round trips are
// counted.
func plainStore(t *testing.T, srv *redistest.Server) (*wire.Store, *roundTrips) {
	t.Helper()
	rdb := clientOf(t, srv)
	rt := &roundTrips{}
	rdb.AddHook(rt)
	s := wire.NewStore(rdb, "resque")
	s.UsePlainCommands()
	return s, rt
}

// plainRig runs plain acks for two slots of owner h:1 on queue q, holding
// jobs {"class":"J","args":[i]}, and checks after every step that each job
// is in exactly one place: the queue, the pickup list, a slot's record, or
// acked (its ack written).
type plainRig struct {
	t     *testing.T
	s     *wire.Store
	srv   *redistest.Server
	rt    *roundTrips
	ids   []string
	jobs  int
	acked map[string]int
	order []string // the jobs handed to slots, in order
	cur   []string // the slots' current jobs ("" idle)
	seq   int64
}

const rigPickup = "resque:resq:pickup:h:1:q"

func newPlainRig(t *testing.T, srv *redistest.Server, jobs int) *plainRig {
	t.Helper()
	s, rt := plainStore(t, srv)
	r := &plainRig{t: t, s: s, srv: srv, rt: rt, ids: []string{"h:1:q:1", "h:1:q:2"}, jobs: jobs, acked: map[string]int{}, cur: make([]string, 2)}
	for i := range jobs {
		srv.Do(t, "RPUSH", "resque:queue:q", r.job(i))
	}
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, PickupOwner: "h:1", WorkerIDs: r.ids, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 2 {
		t.Fatalf("first Fetch = %+v, %v", got, err)
	}
	r.take(got)
	r.check()
	return r
}

func (r *plainRig) job(i int) string { return fmt.Sprintf(`{"class":"J","args":[%d]}`, i) }

func (r *plainRig) take(got []wire.Fetched) {
	for _, f := range got {
		r.cur[f.Slot] = string(f.Raw)
		r.order = append(r.order, string(f.Raw))
	}
}

// ack acks the busy slots' jobs with a fetch for them (a fetch for both
// when both are idle) and returns the jobs handed out, whether the fetch
// found the queue empty, and the round trips it took.
func (r *plainRig) ack() (got []wire.Fetched, fetched bool, trips int64) {
	r.t.Helper()
	var acks []wire.Ack
	var ids []string
	var slots []int
	for i, id := range r.ids {
		if r.cur[i] == "" {
			continue
		}
		acks = append(acks, wire.Ack{WorkerID: id, Processed: true, Queue: "q", Class: "J"})
		ids, slots = append(ids, id), append(slots, i)
		r.acked[r.cur[i]]++
		r.cur[i] = ""
	}
	r.seq++
	before := r.rt.n.Load()
	var err error
	if len(acks) == 0 {
		got, err = r.s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, PickupOwner: "h:1", WorkerIDs: r.ids, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
		fetched = len(got) < 2
	} else {
		got, fetched, err = r.s.AckAndFetch(bg, acks, specInstant, &wire.FetchRequest{Queues: []string{"q"}, PickupOwner: "h:1", WorkerIDs: ids, MaxBytes: maxPayload}, wire.AckMark{Owner: "h:1:0", Seq: r.seq})
		for i := range got {
			got[i].Slot = slots[got[i].Slot]
		}
	}
	if err != nil {
		r.t.Fatalf("AckAndFetch: %v", err)
	}
	trips = r.rt.n.Load() - before
	r.take(got)
	r.check()
	return got, fetched, trips
}

// check asserts that every job is in exactly one place and that the slots'
// records hold their current jobs.
func (r *plainRig) check() {
	r.t.Helper()
	where := map[string][]string{}
	for _, key := range []string{"resque:queue:q", rigPickup} {
		for _, j := range r.lrange(key) {
			where[j] = append(where[j], key)
		}
	}
	for i, id := range r.ids {
		rec := r.srv.Do(r.t, "GET", "resque:worker:"+id)
		if r.cur[i] == "" {
			if rec != "(nil)" {
				r.t.Fatalf("idle slot %d has record %s", i, rec)
			}
			continue
		}
		w, err := wire.DecodeWorkingOn([]byte(rec))
		if err != nil || string(w.Payload) != r.cur[i] {
			r.t.Fatalf("slot %d runs %s; its record is %q", i, r.cur[i], rec)
		}
		where[r.cur[i]] = append(where[r.cur[i]], "record")
	}
	for j, n := range r.acked {
		for range n {
			where[j] = append(where[j], "acked")
		}
	}
	for i := range r.jobs {
		if ps := where[r.job(i)]; len(ps) != 1 {
			r.t.Fatalf("job %d is in %v; want exactly one place", i, ps)
		}
	}
	if p := r.srv.Do(r.t, "GET", "resque:stat:processed"); p != fmt.Sprint(sumCounts(r.acked)) && !(p == "(nil)" && len(r.acked) == 0) {
		r.t.Fatalf("stat:processed = %s; %d acks written", p, sumCounts(r.acked))
	}
}

func (r *plainRig) lrange(key string) []string {
	v := r.srv.Do(r.t, "LRANGE", key, "0", "-1")
	if v == "" {
		return nil
	}
	return strings.Split(v, "\n")
}

func sumCounts(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

// Without scripts the ack's MULTI claims the slots' next jobs from those an
// earlier ack moved into the pickup list and moves the next batch's: one
// round trip per batch once the hold is primed, a second MULTI when it held
// too few. Every job is in exactly one place at every step, jobs run in
// queue order, a queue running dry returns what is held, and a retry of a
// landed write (its reply lost) writes nothing.
func TestAckAndFetchPlainHoldsAhead(t *testing.T) {
	t.Parallel()
	r := newPlainRig(t, pool.Get(t), 10)

	// Nothing held yet: the refill moves 2 for now and 4 ahead, a second
	// MULTI claims the 2.
	got, _, trips := r.ack()
	if len(got) != 2 || trips != 2 {
		t.Fatalf("first ack: %d jobs in %d round trips; want 2 in 2", len(got), trips)
	}
	if held := r.lrange(rigPickup); len(held) != 4 {
		t.Fatalf("held ahead %d jobs; want 4", len(held))
	}
	// Primed: one round trip claims 2 and moves 2.
	got, _, trips = r.ack()
	if len(got) != 2 || trips != 1 {
		t.Fatalf("second ack: %d jobs in %d round trips; want 2 in 1", len(got), trips)
	}
	// The queue runs dry during the refill: what is held goes back to it.
	got, _, _ = r.ack()
	if len(got) != 2 || len(r.lrange(rigPickup)) != 0 || len(r.lrange("resque:queue:q")) != 2 {
		t.Fatalf("third ack: %d jobs, pickup %v, queue %v; want 2 jobs, the 2 held back in the queue", len(got), r.lrange(rigPickup), r.lrange("resque:queue:q"))
	}
	got, fetched, _ := r.ack()
	if len(got) != 2 || !fetched {
		t.Fatalf("fourth ack: %d jobs, fetched %v", len(got), fetched)
	}
	got, fetched, _ = r.ack()
	if len(got) != 0 || !fetched {
		t.Fatalf("last ack: %+v, fetched %v; want nothing, the queue found empty", got, fetched)
	}
	for i := range r.jobs {
		if r.order[i] != r.job(i) {
			t.Fatalf("jobs ran in order %v", r.order)
		}
	}
	expect(t, r.srv, "10", "GET", "resque:stat:processed")

	// A retry of the last write finds its mark: nothing is written again.
	acks := []wire.Ack{{WorkerID: r.ids[0], Processed: true, Queue: "q", Class: "J"}, {WorkerID: r.ids[1], Processed: true, Queue: "q", Class: "J"}}
	landed, err := r.s.AckRetry(bg, acks, wire.AckMark{Owner: "h:1:0", Seq: r.seq}, specInstant)
	if err != nil || !landed {
		t.Fatalf("AckRetry of a landed plain write = %v, %v; want landed", landed, err)
	}
	expect(t, r.srv, "10", "GET", "resque:stat:processed")
}

// pause-all-workers seen by a plain ack undoes its claims: the claimed jobs
// and those held ahead go back to the head of the queue, in order, and the
// slots are left idle.
func TestAckAndFetchPlainPaused(t *testing.T) {
	t.Parallel()
	r := newPlainRig(t, pool.Get(t), 12)
	r.ack() // jobs 2, 3 running; 4–7 held ahead
	r.srv.Do(t, "SET", "resque:pause-all-workers", "true")
	got, fetched, _ := r.ack()
	if len(got) != 0 || fetched {
		t.Fatalf("paused ack = %+v, fetched %v; want nothing", got, fetched)
	}
	if held := r.lrange(rigPickup); len(held) != 0 {
		t.Fatalf("a paused worker holds %v", held)
	}
	q := r.lrange("resque:queue:q")
	for i, j := range q {
		if j != r.job(4+i) {
			t.Fatalf("queue after the paused ack = %v; want jobs 4–11 in order", q)
		}
	}
	expect(t, r.srv, "4", "GET", "resque:stat:processed")
	// Resumed, the next fetch starts where the queue is.
	r.srv.Do(t, "DEL", "resque:pause-all-workers")
	got, err := r.s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, PickupOwner: "h:1", WorkerIDs: r.ids, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 2 || string(got[0].Raw) != r.job(4) {
		t.Fatalf("Fetch after resume = %+v, %v; want job 4 first", got, err)
	}
	r.take(got)
	r.check()
}

// A recoverer that took the process for dead returns its pickup lists (the
// jobs it held ahead) to the queue; the process's stale claims of them then
// find them gone and run nothing twice, and the refill takes them anew.
func TestAckAndFetchPlainHeldJobsRecovered(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	r := newPlainRig(t, srv, 10)
	r.ack() // 4–7 held ahead
	recoverer, _ := plainStore(t, srv)
	if n, err := recoverer.ReturnPickups(bg, "h:1"); err != nil || n != 4 {
		t.Fatalf("ReturnPickups = %d, %v; want the 4 held jobs", n, err)
	}
	r.check()
	for range 3 * r.jobs {
		if r.ack(); len(r.acked) == r.jobs {
			break
		}
	}
	if len(r.acked) != r.jobs {
		t.Fatalf("acked %d of %d jobs", len(r.acked), r.jobs)
	}
	for j, n := range r.acked {
		if n != 1 {
			t.Fatalf("job %s ran %d times", j, n)
		}
	}
}
