package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/resq-go/resq/internal/envelope"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/wire"
)

const (
	tv15Item = `{"class":"SendFollowUpEmail","args":[{"user_id":42}],"queue":"email"}`
	tv15TS   = 1705314600
)

var testLock = wire.Lock{Key: "resque:resque:resque_scheduler_master_lock", Value: "sched1:777"}

func TestDelayedKeys(t *testing.T) {
	t.Parallel()
	k := wire.NewKeys("resque")
	for _, c := range [][2]string{
		{k.DelayedSchedule(), "resque:delayed_queue_schedule"},
		{k.Delayed(tv15TS), "resque:delayed:1705314600"},
		{wire.DelayedMember(tv15TS), "delayed:1705314600"},
		{k.Timestamps([]byte(tv15Item)), "resque:timestamps:" + tv15Item},
		{k.SchedulerMasterLock(""), "resque:resque:resque_scheduler_master_lock"},
		{k.SchedulerMasterLock("MyApp"), "resque:resque:MyApp:resque_scheduler_master_lock"},
		{k.SchedulerMasterLock("MyApp:"), "resque:resque:MyApp::resque_scheduler_master_lock"},
		{wire.NewKeys("resque:GitHub").SchedulerMasterLock(""), "resque:GitHub:resque:GitHub:resque_scheduler_master_lock"},
		{wire.NewKeys("myapp").SchedulerMasterLock(""), "myapp:myapp:resque_scheduler_master_lock"},
	} {
		if c[0] != c[1] {
			t.Errorf("got %q, want %q", c[0], c[1])
		}
	}
}

// §9.2 and TV-15: the item's bytes, and the encoding rules of §0.4 (TV-02).
func TestEncodeDelayed(t *testing.T) {
	t.Parallel()
	if got := string(wire.RubyDelayedItem("SendFollowUpEmail", json.RawMessage(`[{"user_id":42}]`), "email")); got != tv15Item {
		t.Errorf("item = %s, want %s", got, tv15Item)
	}
	args, err := wire.MarshalArgs([]any{map[string]any{"to": "a/b@example.com"}, "Zoë", "<b>&</b>", nil, true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"class":"Mailer","args":[{"to":"a/b@example.com"},"Zoë","<b>&</b>",null,true],"queue":"mail"}`
	if got := string(wire.RubyDelayedItem("Mailer", args, "mail")); got != want {
		t.Errorf("item = %s, want %s", got, want)
	}
	if got := string(wire.RubyDelayedItem("Cleanup", nil, "q")); got != `{"class":"Cleanup","args":[],"queue":"q"}` {
		t.Errorf("no args: %s", got)
	}
	// resq's fields follow "queue"; the move cuts "queue" out and gets the
	// payload Encode writes.
	np := wire.NewPayload{Class: "X", Args: json.RawMessage(`[1]`), ID: "abc", EnqueuedAt: time.Unix(1705314600, 0),
		Envelope: envelope.Envelope{Sig: &envelope.Signature{KID: "k1", Value: []byte{1, 2, 3}}}}
	item := np.EncodeDelayed("q\"1")
	if want := `{"class":"X","args":[1],"queue":"q\"1","id":"abc","enqueued_at":1705314600,"kid":"k1","sig":"AQID"}`; string(item) != want {
		t.Errorf("signed item = %s, want %s", item, want)
	}
	d := wire.DecodeDelayed(item)
	if d.Err != nil || !d.Resq || d.Queue != `q"1` || d.Class != "X" || string(d.Payload) != string(np.Encode()) {
		t.Errorf("decoded = %+v (payload %s)", d, d.Payload)
	}
}

func TestDecodeDelayed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ raw, queue, payload string }{
		{tv15Item, "email", `{"class":"SendFollowUpEmail","args":[{"user_id":42}]}`},
		// node-resque's key order.
		{`{"class":"N","queue":"nq","args":[1,"a"]}`, "nq", `{"class":"N","args":[1,"a"]}`},
		// §9.7: hash → one argument, null/missing → [], scalar → one argument.
		{`{"class":"H","args":{"a":1},"queue":"q"}`, "q", `{"class":"H","args":[{"a":1}]}`},
		{`{"class":"H","args":null,"queue":"q"}`, "q", `{"class":"H","args":[]}`},
		{`{"class":"H","queue":"q"}`, "q", `{"class":"H","args":[]}`},
		{`{"class":"H","args":7,"queue":"q"}`, "q", `{"class":"H","args":[7]}`},
		{`{"class":"H","args":[],"queue":null}`, "", `{"class":"H","args":[]}`},
	} {
		d := wire.DecodeDelayed([]byte(c.raw))
		if d.Err != nil || d.Queue != c.queue || string(d.Payload) != c.payload || d.Resq {
			t.Errorf("%s: %+v payload %s", c.raw, d, d.Payload)
		}
	}
	for _, bad := range []string{`not json`, `{"args":[]}`, `{"class":"","args":[]}`, `[1]`} {
		if d := wire.DecodeDelayed([]byte(bad)); d.Err == nil {
			t.Errorf("%s decoded without error: %+v", bad, d)
		}
	}
}

// TV-15: RPUSH, SADD, ZADD with the exact bytes; a second push at the same
// second is stored twice in the list and once in the reverse index.
func TestPushDelayedTV15(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		if errs := s.PushDelayed(bg, []wire.DelayedPush{{TS: tv15TS, Item: []byte(tv15Item)}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		expect(t, srv, tv15Item, "LRANGE", "resque:delayed:1705314600", "0", "-1")
		expect(t, srv, "delayed:1705314600", "SMEMBERS", "resque:timestamps:"+tv15Item)
		expect(t, srv, "1705314600\n1705314600", "ZRANGE", "resque:delayed_queue_schedule", "0", "-1", "WITHSCORES")
		expect(t, srv, "resque:delayed:1705314600\nresque:delayed_queue_schedule\nresque:timestamps:"+tv15Item, "EVAL", rubyKeysScript, "0")
		s.PushDelayed(bg, []wire.DelayedPush{{TS: tv15TS, Item: []byte(tv15Item)}, {TS: tv15TS + 10, Item: []byte(tv15Item)}})
		expect(t, srv, "2", "LLEN", "resque:delayed:1705314600")
		expect(t, srv, "2", "SCARD", "resque:timestamps:"+tv15Item)
		ts, jobs, err := s.DelayedCounts(bg)
		if err != nil || ts != 2 || jobs != 3 {
			t.Errorf("counts = %d, %d, %v", ts, jobs, err)
		}
		next, ok, err := s.NextDelayed(bg)
		if err != nil || !ok || next != tv15TS {
			t.Errorf("next = %d %v %v", next, ok, err)
		}
	})
}

// TV-16: a due item is moved to its queue as {"class","args"}, the reverse
// index entry and the empty timestamp are removed.
func TestMoveDueTV16(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		// Written raw, as Ruby writes it.
		srv.Do(t, "RPUSH", "resque:delayed:1705314600", tv15Item)
		srv.Do(t, "SADD", "resque:timestamps:"+tv15Item, "delayed:1705314600")
		srv.Do(t, "ZADD", "resque:delayed_queue_schedule", "1705314600", "1705314600")
		srv.Do(t, "SET", testLock.Key, testLock.Value)
		res, err := s.MoveDue(bg, testLock, tv15TS, wire.MoveOptions{Batch: 100})
		if err != nil || res.Moved != 1 || !res.Empty {
			t.Fatalf("MoveDue = %+v, %v", res, err)
		}
		expect(t, srv, `{"class":"SendFollowUpEmail","args":[{"user_id":42}]}`, "LRANGE", "resque:queue:email", "0", "-1")
		expect(t, srv, "email", "SMEMBERS", "resque:queues")
		expect(t, srv, "resque:queue:email\nresque:queues\n"+testLock.Key, "EVAL", rubyKeysScript, "0")
	})
}

// The move is fenced: with the lock absent or another's, nothing moves.
func TestMoveDueFence(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		s.PushDelayed(bg, []wire.DelayedPush{{TS: 100, Item: []byte(tv15Item)}})
		if _, err := s.MoveDue(bg, testLock, 100, wire.MoveOptions{}); !errors.Is(err, wire.ErrNotMaster) {
			t.Errorf("without the lock: %v", err)
		}
		srv.Do(t, "SET", testLock.Key, "other:1")
		if _, err := s.MoveDue(bg, testLock, 100, wire.MoveOptions{}); !errors.Is(err, wire.ErrNotMaster) {
			t.Errorf("with another's lock: %v", err)
		}
		expect(t, srv, "1", "LLEN", "resque:delayed:100")
		expect(t, srv, "0", "EXISTS", "resque:queue:email")
	})
}

// Batches, node items, items without a queue (class map, else a failure
// record), undecodable items, and a list that grows between read and move.
func TestMoveDueBatches(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		srv.Do(t, "SET", testLock.Key, testLock.Value)
		var push []wire.DelayedPush
		for i := range 25 {
			push = append(push, wire.DelayedPush{TS: 100, Item: wire.RubyDelayedItem("J", json.RawMessage(fmt.Sprintf("[%d]", i)), "q")})
		}
		push = append(push,
			wire.DelayedPush{TS: 100, Item: []byte(`{"class":"N","queue":"nq","args":[1]}`)},
			wire.DelayedPush{TS: 100, Item: []byte(`{"class":"Mapped","args":[],"queue":null}`)},
			wire.DelayedPush{TS: 100, Item: []byte(`{"class":"Lost","args":[],"queue":null}`)},
			wire.DelayedPush{TS: 100, Item: []byte(`oops`)})
		for _, err := range s.PushDelayed(bg, push) {
			if err != nil {
				t.Fatal(err)
			}
		}
		o := wire.MoveOptions{Batch: 10, ClassQueues: map[string]string{"Mapped": "mq"}, Worker: "sched1:777", Now: specInstant}
		total := wire.MoveResult{}
		for range 10 {
			r, err := s.MoveDue(bg, testLock, 100, o)
			if err != nil {
				t.Fatal(err)
			}
			total.Moved += r.Moved
			total.Failed += r.Failed
			if r.Empty {
				total.Empty = true
				break
			}
		}
		if total.Moved != 27 || total.Failed != 2 || !total.Empty {
			t.Errorf("total = %+v", total)
		}
		expect(t, srv, "25", "LLEN", "resque:queue:q")
		expect(t, srv, `{"class":"J","args":[0]}`, "LINDEX", "resque:queue:q", "0")
		expect(t, srv, `{"class":"J","args":[24]}`, "LINDEX", "resque:queue:q", "-1")
		expect(t, srv, `{"class":"N","args":[1]}`, "LRANGE", "resque:queue:nq", "0", "-1")
		expect(t, srv, `{"class":"Mapped","args":[]}`, "LRANGE", "resque:queue:mq", "0", "-1")
		fails := srv.Do(t, "LRANGE", "resque:failed", "0", "-1")
		lines := strings.Split(fails, "\n")
		if len(lines) != 2 {
			t.Fatalf("failed = %s", fails)
		}
		f0, err := wire.DecodeFailure([]byte(lines[0]))
		if err != nil || f0.Exception != "Resque::NoQueueError" || string(f0.Payload) != `{"class":"Lost","args":[]}` || f0.Worker != "sched1:777" || !strings.Contains(f0.Error, "--class-queue Lost=QUEUE") {
			t.Errorf("failure 0 = %+v, %v", f0, err)
		}
		f1, err := wire.DecodeFailure([]byte(lines[1]))
		if err != nil || f1.Exception != "Resq::InvalidPayload" {
			t.Errorf("failure 1 = %+v, %v", f1, err)
		}
		expect(t, srv, "resque:failed\nresque:queue:mq\nresque:queue:nq\nresque:queue:q\nresque:queues\n"+testLock.Key, "EVAL", rubyKeysScript, "0")
	})
}

// Two movers racing over one timestamp move every item exactly once.
func TestMoveDueConcurrent(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		srv.Do(t, "SET", testLock.Key, testLock.Value)
		const n = 2000
		var push []wire.DelayedPush
		for i := range n {
			push = append(push, wire.DelayedPush{TS: 100, Item: wire.RubyDelayedItem("J", json.RawMessage(fmt.Sprintf("[%d]", i)), "q")})
		}
		s.PushDelayed(bg, push)
		done := make(chan error, 3)
		for range 3 {
			go func() {
				for {
					r, err := s.MoveDue(bg, testLock, 100, wire.MoveOptions{Batch: 7})
					if errors.Is(err, wire.ErrMoveContended) {
						continue // nothing moved; the scheduler retries too
					}
					if err != nil || r.Empty {
						done <- err
						return
					}
				}
			}()
		}
		for range 3 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		got := strings.Split(srv.Do(t, "LRANGE", "resque:queue:q", "0", "-1"), "\n")
		seen := map[string]bool{}
		for _, g := range got {
			if seen[g] {
				t.Fatalf("moved twice: %s", g)
			}
			seen[g] = true
		}
		if len(seen) != n {
			t.Errorf("moved %d of %d", len(seen), n)
		}
	})
}

// TV-17 (remove_delayed), remove from one timestamp, listing, and
// enqueue-now.
func TestRemoveAndListDelayed(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		other := `{"class":"Other","args":[],"queue":"o"}`
		s.PushDelayed(bg, []wire.DelayedPush{{TS: tv15TS, Item: []byte(tv15Item)}, {TS: tv15TS, Item: []byte(other)}, {TS: tv15TS + 60, Item: []byte(tv15Item)}, {TS: tv15TS + 120, Item: []byte(other)}})
		at, err := s.DelayedScheduledAt(bg, []byte(tv15Item))
		if err != nil || fmt.Sprint(at) != "[1705314600 1705314660]" {
			t.Errorf("scheduled at = %v, %v", at, err)
		}
		all, err := s.DelayedRange(bg, 0, 1<<40, 1, 2, nil)
		if err != nil || len(all) != 2 || string(all[0].Raw) != other || all[1].TS != tv15TS+60 {
			t.Errorf("range = %+v, %v", all, err)
		}
		found, err := s.DelayedRange(bg, 0, 1<<40, 0, -1, func(raw []byte) bool { return strings.Contains(string(raw), "Other") })
		if err != nil || len(found) != 2 {
			t.Errorf("found = %+v, %v", found, err)
		}
		n, err := s.RemoveDelayed(bg, []byte(tv15Item))
		if err != nil || n != 2 {
			t.Errorf("RemoveDelayed = %d, %v", n, err)
		}
		expect(t, srv, "0", "EXISTS", "resque:timestamps:"+tv15Item)
		expect(t, srv, other, "LRANGE", "resque:delayed:1705314600", "0", "-1")
		expect(t, srv, "3", "ZCARD", "resque:delayed_queue_schedule") // Ruby leaves it for the scheduler
		moved, err := s.EnqueueDelayedNow(bg, tv15TS, []byte(other), wire.MoveOptions{})
		if err != nil || !moved {
			t.Errorf("EnqueueDelayedNow = %v, %v", moved, err)
		}
		moved, err = s.EnqueueDelayedNow(bg, tv15TS, []byte(other), wire.MoveOptions{})
		if err != nil || moved {
			t.Errorf("second EnqueueDelayedNow = %v, %v", moved, err)
		}
		expect(t, srv, `{"class":"Other","args":[]}`, "LRANGE", "resque:queue:o", "0", "-1")
		expect(t, srv, "0", "EXISTS", "resque:delayed:1705314600")
		n, err = s.RemoveDelayedAt(bg, tv15TS+120, []byte(other))
		if err != nil || n != 1 {
			t.Errorf("RemoveDelayedAt = %d, %v", n, err)
		}
		expect(t, srv, "1705314660", "ZRANGE", "resque:delayed_queue_schedule", "0", "-1")
	})
}

// The master lock: SET NX with a TTL, refresh only by the holder, release
// only by the holder; a Ruby holder (SETNX) excludes resq.
func TestSchedulerLock(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		a, b := testLock, wire.Lock{Key: testLock.Key, Value: "sched2:888"}
		if ok, err := s.AcquireLock(bg, a, 10*time.Second); err != nil || !ok {
			t.Fatalf("acquire = %v, %v", ok, err)
		}
		if ok, _ := s.AcquireLock(bg, b, 10*time.Second); ok {
			t.Error("a second holder acquired the lock")
		}
		srv.Do(t, "PEXPIRE", a.Key, "500")
		if ok, _ := s.AcquireLock(bg, a, 10*time.Second); !ok {
			t.Error("the holder could not refresh")
		}
		if ttl := srv.Do(t, "TTL", a.Key); ttl != "10" && ttl != "9" {
			t.Errorf("TTL after refresh = %s", ttl)
		}
		if ok, _ := s.ReleaseLock(bg, b); ok {
			t.Error("a non-holder released the lock")
		}
		if v, _ := s.LockHolder(bg, a.Key); v != a.Value {
			t.Errorf("holder = %q", v)
		}
		if ok, _ := s.ReleaseLock(bg, a); !ok {
			t.Error("the holder could not release")
		}
		srv.Do(t, "SETNX", a.Key, "rubyhost:42") // Ruby's acquire
		if ok, _ := s.AcquireLock(bg, a, time.Second); ok {
			t.Error("acquired a lock Ruby holds")
		}
	})
}

// A schedule member that is not a decimal integer is normalised, so the
// move's ZREM can remove it and it does not block later timestamps.
func TestNextDelayedOddMember(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "ZADD", "resque:delayed_queue_schedule", "100", "100.5", "200", "200")
	srv.Do(t, "RPUSH", "resque:delayed:100", tv15Item)
	srv.Do(t, "SET", testLock.Key, testLock.Value)
	ts, ok, err := s.NextDelayed(bg)
	if err != nil || !ok || ts != 100 {
		t.Fatalf("NextDelayed = %d %v %v", ts, ok, err)
	}
	expect(t, srv, "100\n200", "ZRANGE", "resque:delayed_queue_schedule", "0", "-1")
	if r, err := s.MoveDue(bg, testLock, 100, wire.MoveOptions{}); err != nil || r.Moved != 1 || !r.Empty {
		t.Fatalf("MoveDue = %+v, %v", r, err)
	}
	if ts, _, _ := s.NextDelayed(bg); ts != 200 {
		t.Errorf("next = %d, want 200", ts)
	}
}

// MoveDueUpTo moves many due timestamps per step, oldest first, whole
// timestamps within the batch, and leaves later ones alone.
func TestMoveDueUpTo(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		srv.Do(t, "SET", testLock.Key, testLock.Value)
		var push []wire.DelayedPush
		for i := range 30 {
			push = append(push, wire.DelayedPush{TS: 100 + int64(i%10), Item: wire.RubyDelayedItem("J", json.RawMessage(fmt.Sprintf("[%d]", i)), "q")})
		}
		push = append(push, wire.DelayedPush{TS: 500, Item: wire.RubyDelayedItem("Later", nil, "q")})
		s.PushDelayed(bg, push)
		srv.Do(t, "ZADD", "resque:delayed_queue_schedule", "105.5", "105.5") // odd member, no list
		srv.Do(t, "ZADD", "resque:delayed_queue_schedule", "99", "99")       // emptied by a removal
		steps := 0
		for {
			r, err := s.MoveDueUpTo(bg, testLock, 200, wire.MoveOptions{Batch: 7})
			if err != nil {
				t.Fatal(err)
			}
			if r.Timestamps == 0 {
				break
			}
			if r.Moved > 7 && r.Timestamps > 1 {
				t.Errorf("step over the batch: %+v", r)
			}
			steps++
		}
		if steps < 5 || steps > 12 {
			t.Errorf("%d steps", steps)
		}
		got := strings.Split(srv.Do(t, "LRANGE", "resque:queue:q", "0", "-1"), "\n")
		if len(got) != 30 || got[0] != `{"class":"J","args":[0]}` || got[3] != `{"class":"J","args":[1]}` {
			t.Errorf("queue = %v", got)
		}
		expect(t, srv, "500", "ZRANGE", "resque:delayed_queue_schedule", "0", "-1")
		if _, err := s.MoveDueUpTo(bg, wire.Lock{Key: testLock.Key, Value: "other"}, 1000, wire.MoveOptions{}); !errors.Is(err, wire.ErrNotMaster) {
			t.Errorf("fence: %v", err)
		}
	})
}
