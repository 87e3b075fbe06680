package wire_test

import (
	"testing"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// AckAndFetch writes the acks and, in the same MULTI, gives the finished
// slots their next jobs: each record is replaced by the next job's, or
// deleted when the queues ran dry; the counters move as AckAll's do.
func TestAckAndFetchReplacesRecords(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	ids := []string{"h:1:q:1", "h:1:q:2", "h:1:q:3"}
	for i := 0; i < 3; i++ {
		srv.Do(t, "RPUSH", "resque:queue:q", archivePayload)
	}
	first, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: ids, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(first) != 3 {
		t.Fatalf("Fetch = %+v, %v", first, err)
	}
	srv.Do(t, "RPUSH", "resque:queue:q", `{"class":"Next","args":[2]}`)
	acks := make([]wire.Ack, len(ids))
	for i, id := range ids {
		acks[i] = wire.Ack{WorkerID: id, Processed: true, Queue: "q", Class: "Archive"}
	}
	next := &wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: ids, MaxBytes: maxPayload}
	mark := wire.AckMark{Owner: "h:1", Seq: 41}
	got, fetched, err := s.AckAndFetch(bg, acks, specInstant.Add(time.Second), next, mark)
	if err != nil || !fetched {
		t.Fatal(fetched, err)
	}
	if len(got) != 1 || got[0].Slot != 0 || string(got[0].Raw) != `{"class":"Next","args":[2]}` || got[0].Held {
		t.Fatalf("AckAndFetch = %+v, want the one queued job for slot 0", got)
	}
	expect(t, srv, `{"queue":"q","run_at":"2024-01-15T10:23:46Z","payload":{"class":"Next","args":[2]}}`, "GET", "resque:worker:"+ids[0])
	expect(t, srv, "0", "EXISTS", "resque:worker:"+ids[1], "resque:worker:"+ids[2])
	expect(t, srv, "3", "GET", "resque:stat:processed")
	for _, id := range ids {
		expect(t, srv, "1", "GET", "resque:stat:processed:"+id)
	}
	// A retry of that write (its reply lost, say) sees its mark and writes
	// nothing: no counter moves twice, the next job's record stays.
	landed, err := s.AckRetry(bg, acks, mark, specInstant.Add(time.Second))
	if err != nil || !landed {
		t.Fatalf("AckRetry of a landed write = %v, %v; want landed", landed, err)
	}
	expect(t, srv, "3", "GET", "resque:stat:processed")
	expect(t, srv, `{"queue":"q","run_at":"2024-01-15T10:23:46Z","payload":{"class":"Next","args":[2]}}`, "GET", "resque:worker:"+ids[0])
}

// A retry of a write that did not land writes the acks once, with its mark,
// and a second retry then finds it landed.
func TestAckRetryWritesOnce(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q", archivePayload)
	if _, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant); err != nil {
		t.Fatal(err)
	}
	srv.Do(t, "SET", "resque:resq:acked:h:1", "6") // an earlier batch's mark
	acks := []wire.Ack{{WorkerID: W, Processed: true, Queue: "q", Class: "Archive"}}
	mark := wire.AckMark{Owner: "h:1", Seq: 7}
	for i, want := range []bool{false, true} {
		landed, err := s.AckRetry(bg, acks, mark, specInstant)
		if err != nil || landed != want {
			t.Fatalf("AckRetry #%d = %v, %v; want landed=%v", i+1, landed, err, want)
		}
	}
	expect(t, srv, "1", "GET", "resque:stat:processed")
	expect(t, srv, "0", "EXISTS", "resque:worker:"+W)
	expect(t, srv, "7", "GET", "resque:resq:acked:h:1")
	if ttl := srv.Do(t, "TTL", "resque:resq:acked:h:1"); ttl == "-1" || ttl == "-2" {
		t.Errorf("ack mark TTL = %s", ttl)
	}
}

// Paused workers take nothing: the acks are written and the records
// deleted, the queue keeps its job.
func TestAckAndFetchPaused(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q", archivePayload, archivePayload)
	if _, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant); err != nil {
		t.Fatal(err)
	}
	srv.Do(t, "SET", "resque:pause-all-workers", "true")
	got, fetched, err := s.AckAndFetch(bg, []wire.Ack{{WorkerID: W, Processed: true, Queue: "q", Class: "Archive"}}, specInstant,
		&wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload}, wire.AckMark{})
	if err != nil || len(got) != 0 || fetched {
		t.Fatalf("AckAndFetch while paused = %+v, %v, %v; want no jobs, not fetched", got, fetched, err)
	}
	expect(t, srv, "0", "EXISTS", "resque:worker:"+W)
	expect(t, srv, "1", "LLEN", "resque:queue:q")
	expect(t, srv, "1", "GET", "resque:stat:processed")
}

// A flushed script cache (Redis restarted, SCRIPT FLUSH) fails only the
// fetch part: the acks are written, the records deleted, and the next call
// has the script again.
func TestAckAndFetchNoScript(t *testing.T) {
	t.Parallel()
	s, srv := newPrivateStore(t) // SCRIPT FLUSH is server-wide
	srv.Do(t, "RPUSH", "resque:queue:q", archivePayload, archivePayload, archivePayload)
	if _, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant); err != nil {
		t.Fatal(err)
	}
	srv.Do(t, "SCRIPT", "FLUSH")
	ack := []wire.Ack{{WorkerID: W, Processed: true, Queue: "q", Class: "Archive"}}
	next := &wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload}
	got, fetched, err := s.AckAndFetch(bg, ack, specInstant, next, wire.AckMark{})
	if err != nil || len(got) != 0 || fetched {
		t.Fatalf("AckAndFetch after SCRIPT FLUSH = %+v, %v, %v; want no jobs, not fetched, no error", got, fetched, err)
	}
	expect(t, srv, "0", "EXISTS", "resque:worker:"+W)
	expect(t, srv, "1", "GET", "resque:stat:processed")
	expect(t, srv, "2", "LLEN", "resque:queue:q")
	// The script was loaded again: the next fetch works in one go.
	if _, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant); err != nil {
		t.Fatal(err)
	}
	got, fetched, err = s.AckAndFetch(bg, ack, specInstant, next, wire.AckMark{})
	if err != nil || len(got) != 1 || !fetched {
		t.Fatalf("AckAndFetch = %+v, %v; want the last job", got, err)
	}
	expect(t, srv, "0", "LLEN", "resque:queue:q")
}

// A record already set on a slot the worker thinks idle (the reply of a
// fetch was lost, or an ack landed without its reply) is handed back, not
// overwritten: nothing is popped for that slot.
func TestFetchHandsBackHeldRecord(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	ids := []string{"h:1:q:1", "h:1:q:2"}
	held := `{"queue":"other","run_at":"2024-01-15T10:20:00Z","payload":{"class":"Held","args":[1]}}`
	srv.Do(t, "SET", "resque:worker:"+ids[0], held)
	heldString := `{"queue":"q","run_at":"2024-01-15T10:20:00Z","payload":"not json"}`
	srv.Do(t, "SET", "resque:worker:"+ids[1], heldString)
	srv.Do(t, "RPUSH", "resque:queue:q", archivePayload)
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: ids, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 2 {
		t.Fatalf("Fetch = %+v, %v; want both held jobs", got, err)
	}
	if f := got[0]; f.Slot != 0 || !f.Held || f.Queue != "other" || string(f.Raw) != `{"class":"Held","args":[1]}` || string(f.Record()) != held {
		t.Errorf("first = %+v (record %s)", f, f.Record())
	}
	if f := got[1]; f.Slot != 1 || !f.Held || f.Queue != "q" || string(f.Raw) != "not json" || f.Record() != nil {
		t.Errorf("second = %+v", f)
	}
	expect(t, srv, "1", "LLEN", "resque:queue:q")
	expect(t, srv, held, "GET", "resque:worker:"+ids[0])
}

// A record on an idle slot that is not a working-on record is handed back as
// the job's payload, for the worker to fail with a reason: the fetch does
// not error on it forever.
func TestFetchHandsBackGarbageRecord(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "SET", "resque:worker:"+W, "garbage{")
	got, err := s.FetchWith(bg, wire.FetchRequest{Queues: []string{"q"}, WorkerIDs: []string{W}, MaxBytes: maxPayload, CheckHeld: true}, specInstant)
	if err != nil || len(got) != 1 || !got[0].Held || string(got[0].Raw) != "garbage{" || got[0].Record() != nil {
		t.Fatalf("Fetch = %+v, %v; want the record as the payload", got, err)
	}
}
