package wire_test

import (
	"crypto/sha1"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

const aheadOwner = "h:1"

// AckAhead moves jobs into the ahead hash beside its fetch, in queue order,
// each with its queue and whether its record embeds it; the next batch's
// claims make them the slots' records (run_at = when the slot started
// them) and delete them from the hash, in one HDEL.
func TestAckAheadHoldsAndClaims(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	ids := []string{"h:1:q:1", "h:1:q:2"}
	srv.Do(t, "RPUSH", "resque:queue:hi", `{"class":"A","args":[1]}`)
	srv.Do(t, "RPUSH", "resque:queue:q", archivePayload, `not json`, `{"class":"B","args":[2]}`, `{"class":"C","args":[3]}`)
	first, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"hi", "q"}, WorkerIDs: ids, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(first) != 2 {
		t.Fatalf("FetchWith = %+v, %v", first, err)
	}
	acks := []wire.Ack{{WorkerID: ids[0], Processed: true, Queue: "hi", Class: "A"}, {WorkerID: ids[1], Processed: true, Queue: "q", Class: "Archive"}}
	next := &wire.FetchRequest{Queues: []string{"hi", "q"}, MaxBytes: maxPayload}
	res, err := s.AckAhead(bg, acks, specInstant, next, aheadOwner, 5, wire.AckMark{Owner: aheadOwner + ":0", Seq: 1})
	if err != nil || !res.Fetched || res.Missed != 0 {
		t.Fatalf("AckAhead = %+v, %v", res, err)
	}
	// Entry 0 fetched `not json` (stored as a JSON string), entry 1 B; C
	// was held (the hold asked for 5: the queues had one more).
	if len(res.Got) != 2 || res.Got[0].Slot != 0 || string(res.Got[0].Raw) != `not json` || res.Got[1].Slot != 1 || string(res.Got[1].Raw) != `{"class":"B","args":[2]}` {
		t.Fatalf("Got = %+v", res.Got)
	}
	if len(res.Held) != 1 || string(res.Held[0].Job.Raw) != `{"class":"C","args":[3]}` || res.Held[0].Job.Queue != "q" || res.Held[0].Source != 1 {
		t.Fatalf("Held = %+v", res.Held)
	}
	expect(t, srv, `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":"not json"}`, "GET", "resque:worker:"+ids[0])
	expect(t, srv, "1", "HLEN", "resque:resq:ahead:"+aheadOwner)
	expect(t, srv, `{"class":"C","args":[3]}`, "HGET", "resque:resq:ahead:"+aheadOwner, res.Held[0].Seq)
	if !strings.HasSuffix(res.Held[0].Seq, ":1q") {
		t.Errorf("field %q: want <batch>:<k>:1q", res.Held[0].Seq)
	}
	expect(t, srv, "0", "LLEN", "resque:queue:q")

	// Slot 1 starts the held job a second later; its next ack claims it.
	f, claim := s.Claim(res.Held[0], specInstant.Add(time.Second))
	if f.RunAt != "2024-01-15T10:23:46Z" || string(f.Raw) != `{"class":"C","args":[3]}` {
		t.Fatalf("Claim = %+v", f)
	}
	acks = []wire.Ack{{WorkerID: ids[1], Processed: true, Queue: "q", Class: "B", Next: claim}}
	res, err = s.AckAhead(bg, acks, specInstant.Add(time.Second), next, aheadOwner, 5, wire.AckMark{Owner: aheadOwner + ":0", Seq: 2})
	if err != nil || len(res.Got) != 0 || len(res.Held) != 0 || res.Missed != 0 {
		t.Fatalf("AckAhead (claim) = %+v, %v", res, err)
	}
	expect(t, srv, `{"queue":"q","run_at":"2024-01-15T10:23:46Z","payload":{"class":"C","args":[3]}}`, "GET", "resque:worker:"+ids[1])
	expect(t, srv, "0", "EXISTS", "resque:resq:ahead:"+aheadOwner)
	expect(t, srv, "3", "GET", "resque:stat:processed") // the two acks, then B's
}

// An idle slot's claim entry (ClaimOnly) sets its record and counts
// nothing; a claim whose job a recoverer returned meanwhile still records
// the job (it runs here) and is counted as gone.
func TestAckAheadClaimOnlyAndGone(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q", `{"class":"A","args":[1]}`, `{"class":"B","args":[2]}`)
	res, err := s.AckAhead(bg, []wire.Ack{{WorkerID: "h:1:q:9", Processed: true, Queue: "q", Class: "X"}}, specInstant,
		&wire.FetchRequest{Queues: []string{"q"}, MaxBytes: maxPayload}, aheadOwner, 2, wire.AckMark{})
	if err != nil || len(res.Held) != 1 || len(res.Got) != 1 {
		t.Fatalf("AckAhead = %+v, %v", res, err)
	}
	held := res.Held[0]
	f, claim := s.Claim(held, specInstant)
	if n, err := s.ReturnHeld(bg, aheadOwner, []string{held.Seq}); err != nil || n != 1 {
		t.Fatalf("ReturnHeld = %d, %v", n, err)
	}
	expect(t, srv, `{"class":"B","args":[2]}`, "LINDEX", "resque:queue:q", "0")
	res, err = s.AckAhead(bg, []wire.Ack{{WorkerID: "h:1:q:8", Next: claim, ClaimOnly: true}}, specInstant, nil, aheadOwner, 0, wire.AckMark{})
	if err != nil || res.Missed != 1 {
		t.Fatalf("AckAhead (claim of a returned job) = %+v, %v; want 1 gone", res, err)
	}
	expect(t, srv, `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":`+string(f.Raw)+`}`, "GET", "resque:worker:h:1:q:8")
	expect(t, srv, "1", "GET", "resque:stat:processed") // the claim counted nothing
	expect(t, srv, "0", "EXISTS", "resque:stat:processed:h:1:q:8")
}

// With pause-all-workers set, claims are still written (their jobs run)
// but nothing is fetched or held, and the other entries' records go.
func TestAckAheadPaused(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q", `{"class":"A","args":[1]}`, `{"class":"B","args":[2]}`, `{"class":"C","args":[3]}`)
	next := &wire.FetchRequest{Queues: []string{"q"}, MaxBytes: maxPayload}
	res, err := s.AckAhead(bg, []wire.Ack{{WorkerID: "h:1:q:1", Processed: true, Queue: "q", Class: "X"}}, specInstant, next, aheadOwner, 1, wire.AckMark{})
	if err != nil || len(res.Held) != 1 {
		t.Fatalf("AckAhead = %+v, %v", res, err)
	}
	_, claim := s.Claim(res.Held[0], specInstant)
	srv.Do(t, "SET", "resque:pause-all-workers", "true")
	res, err = s.AckAhead(bg, []wire.Ack{
		{WorkerID: "h:1:q:1", Processed: true, Queue: "q", Class: "A", Next: claim},
		{WorkerID: "h:1:q:2", Processed: true, Queue: "q", Class: "X"},
	}, specInstant, next, aheadOwner, 5, wire.AckMark{})
	if err != nil || res.Fetched || len(res.Got)+len(res.Held) != 0 {
		t.Fatalf("paused AckAhead = %+v, %v", res, err)
	}
	expect(t, srv, `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":{"class":"B","args":[2]}}`, "GET", "resque:worker:h:1:q:1")
	expect(t, srv, "0", "EXISTS", "resque:worker:h:1:q:2", "resque:resq:ahead:"+aheadOwner)
	expect(t, srv, "1", "LLEN", "resque:queue:q")
}

// ReturnHeld puts held jobs back at the heads of their queues in the order
// they were moved (across batches), and HeldAhead reads them back in that
// order, oversize ones cut to their first KiB.
func TestReturnHeldKeepsOrder(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	big := `{"class":"Big","args":["` + strings.Repeat("x", 3000) + `"]}`
	for i := range 12 {
		srv.Do(t, "RPUSH", "resque:queue:q", fmt.Sprintf(`{"class":"J","args":[%d]}`, i))
	}
	srv.Do(t, "RPUSH", "resque:queue:q", big)
	srv.Do(t, "RPUSH", "resque:queue:r", `{"class":"R","args":[0]}`)
	next := &wire.FetchRequest{Queues: []string{"q", "r"}, MaxBytes: 2048}
	var held []wire.Held
	for range 2 { // 10 + 4: the second batch takes J 10, J 11, Big and R 0
		res, err := s.AckAhead(bg, []wire.Ack{{WorkerID: "h:1:q:1", Processed: true, Queue: "q", Class: "J"}}, specInstant, nil, aheadOwner, 0, wire.AckMark{})
		if err != nil || len(res.Got) != 0 {
			t.Fatal(res, err)
		}
		res, err = s.AckAhead(bg, []wire.Ack{{WorkerID: "h:1:q:1", ClaimOnly: true}}, specInstant, next, aheadOwner, 10, wire.AckMark{})
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, res.Held...)
	}
	if len(held) != 14 || held[12].Job.Oversize == nil || held[12].Job.Oversize.Size != len(big) || len(held[12].Job.Raw) != 1024 || held[13].Source != 1 {
		t.Fatalf("held %d jobs: %+v", len(held), held[12:])
	}
	back, err := s.HeldAhead(bg, aheadOwner, 2048)
	if err != nil || len(back) != 14 {
		t.Fatalf("HeldAhead = %d, %v", len(back), err)
	}
	for i := range back {
		if back[i].Seq != held[i].Seq || string(back[i].Job.Raw) != string(held[i].Job.Raw) || back[i].Job.Queue != held[i].Job.Queue {
			t.Fatalf("HeldAhead[%d] = %+v, want %+v", i, back[i], held[i])
		}
	}
	if o := back[12].Job.Oversize; o == nil || o.SHA1 != fmt.Sprintf("%x", sha1.Sum([]byte(big))) {
		t.Fatalf("oversize held job read back as %+v", back[12].Job)
	}
	// Return two of the first batch, then everything.
	if n, err := s.ReturnHeld(bg, aheadOwner, []string{held[3].Seq, held[1].Seq, "no:such"}); err != nil || n != 2 {
		t.Fatalf("ReturnHeld(2) = %d, %v", n, err)
	}
	expect(t, srv, `{"class":"J","args":[1]}`, "LINDEX", "resque:queue:q", "0")
	expect(t, srv, `{"class":"J","args":[3]}`, "LINDEX", "resque:queue:q", "1")
	srv.Do(t, "DEL", "resque:queue:q")
	if n, err := s.ReturnHeld(bg, aheadOwner, nil); err != nil || n != 12 {
		t.Fatalf("ReturnHeld(all) = %d, %v", n, err)
	}
	want := []string{}
	for _, i := range []int{0, 2, 4, 5, 6, 7, 8, 9, 10, 11} {
		want = append(want, fmt.Sprintf(`{"class":"J","args":[%d]}`, i))
	}
	want = append(want, big)
	expect(t, srv, strings.Join(want, "\n"), "LRANGE", "resque:queue:q", "0", "-1")
	expect(t, srv, `{"class":"R","args":[0]}`, "LRANGE", "resque:queue:r", "0", "-1")
	expect(t, srv, "0", "EXISTS", "resque:resq:ahead:"+aheadOwner)
	expect(t, srv, "1", "SISMEMBER", "resque:queues", "r")
}

// After SCRIPT FLUSH (a restarted Redis) the first AckAhead still writes
// its records, and the next loads the script again; a retry of a batch
// with claims (AckRetryAhead) writes the acks and the records once.
func TestAckAheadAfterScriptFlushAndRetry(t *testing.T) {
	t.Parallel()
	s, srv := newPrivateStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q", `{"class":"A","args":[1]}`, `{"class":"B","args":[2]}`, `{"class":"C","args":[3]}`)
	next := &wire.FetchRequest{Queues: []string{"q"}, MaxBytes: maxPayload}
	res, err := s.AckAhead(bg, []wire.Ack{{WorkerID: "h:1:q:1", Processed: true, Queue: "q", Class: "X"}}, specInstant, next, aheadOwner, 1, wire.AckMark{})
	if err != nil || len(res.Got) != 1 || len(res.Held) != 1 {
		t.Fatalf("AckAhead = %+v, %v", res, err)
	}
	srv.Do(t, "SCRIPT", "FLUSH")
	_, claim := s.Claim(res.Held[0], specInstant)
	acks := []wire.Ack{{WorkerID: "h:1:q:1", Processed: true, Queue: "q", Class: "A", Next: claim}}
	if _, err := s.AckAhead(bg, acks, specInstant, next, aheadOwner, 1, wire.AckMark{}); err != nil {
		t.Fatal(err)
	}
	expect(t, srv, `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":{"class":"B","args":[2]}}`, "GET", "resque:worker:h:1:q:1")
	expect(t, srv, "0", "EXISTS", "resque:resq:ahead:"+aheadOwner)
	expect(t, srv, "2", "GET", "resque:stat:processed")
	// The next batch loads the script again and holds C.
	res, err = s.AckAhead(bg, []wire.Ack{{WorkerID: "h:1:q:2", Processed: true, Queue: "q", Class: "X"}}, specInstant, next, aheadOwner, 1, wire.AckMark{})
	if err != nil || len(res.Got) != 1 || string(res.Got[0].Raw) != `{"class":"C","args":[3]}` {
		t.Fatalf("AckAhead after the flush = %+v, %v", res, err)
	}
	// A retry of an unlanded batch with a claim: acks and record once.
	srv.Do(t, "RPUSH", "resque:queue:q", `{"class":"D","args":[4]}`)
	res, err = s.AckAhead(bg, []wire.Ack{{WorkerID: "h:1:q:2", ClaimOnly: true}}, specInstant, next, aheadOwner, 1, wire.AckMark{})
	if err != nil || len(res.Held) != 1 {
		t.Fatalf("AckAhead = %+v, %v", res, err)
	}
	_, claim = s.Claim(res.Held[0], specInstant)
	mark := wire.AckMark{Owner: aheadOwner + ":0", Seq: 7}
	acks = []wire.Ack{{WorkerID: "h:1:q:2", Processed: true, Queue: "q", Class: "C", Next: claim}}
	for i, wantLanded := range []bool{false, true} {
		landed, err := s.AckRetryAhead(bg, acks, mark, aheadOwner, specInstant)
		if err != nil || landed != wantLanded {
			t.Fatalf("AckRetryAhead #%d = %v, %v; want landed %v", i, landed, err, wantLanded)
		}
	}
	expect(t, srv, "4", "GET", "resque:stat:processed")
	expect(t, srv, `{"queue":"q","run_at":"2024-01-15T10:23:45Z","payload":{"class":"D","args":[4]}}`, "GET", "resque:worker:h:1:q:2")
	expect(t, srv, "0", "EXISTS", "resque:resq:ahead:"+aheadOwner)
}

// Two entries of one slot in one batch (it ran a held job and the next
// before the batch left): the later record stands, both claimed fields
// go, and the slot's counter moves by two in one INCRBY.
func TestAckAheadSameSlotTwice(t *testing.T) {
	t.Parallel()
	s, srv := newPrivateStore(t) // (its own server: command counts)
	srv.Do(t, "RPUSH", "resque:queue:q", `{"class":"A","args":[1]}`, `{"class":"B","args":[2]}`, `{"class":"C","args":[3]}`)
	next := &wire.FetchRequest{Queues: []string{"q"}, MaxBytes: maxPayload}
	res, err := s.AckAhead(bg, []wire.Ack{{WorkerID: "h:1:q:1", ClaimOnly: true}}, specInstant, next, aheadOwner, 3, wire.AckMark{})
	if err != nil || len(res.Held) != 3 {
		t.Fatalf("AckAhead = %+v, %v", res, err)
	}
	_, cb := s.Claim(res.Held[1], specInstant)
	_, cc := s.Claim(res.Held[2], specInstant.Add(time.Second))
	before := srv.CommandCalls(t, "incrby")
	res, err = s.AckAhead(bg, []wire.Ack{
		{WorkerID: "h:1:q:1", Processed: true, Queue: "q", Class: "A", Next: cb},
		{WorkerID: "h:1:q:1", Processed: true, Queue: "q", Class: "B", Next: cc},
	}, specInstant, nil, aheadOwner, 0, wire.AckMark{})
	if err != nil || res.Missed != 0 {
		t.Fatalf("AckAhead = %+v, %v", res, err)
	}
	if n := srv.CommandCalls(t, "incrby") - before; n != 2 { // stat:processed:<id> once, stat:processed once
		t.Errorf("%d INCRBY for two acks of one slot, want 2", n)
	}
	expect(t, srv, `{"queue":"q","run_at":"2024-01-15T10:23:46Z","payload":{"class":"C","args":[3]}}`, "GET", "resque:worker:h:1:q:1")
	expect(t, srv, "2", "GET", "resque:stat:processed:h:1:q:1")
	expect(t, srv, "1", "HLEN", "resque:resq:ahead:"+aheadOwner) // A, never claimed
}
