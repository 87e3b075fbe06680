package wire_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/wire"
)

// TestDueMoverSparse drains a backlog of many timestamps holding one item
// each (a scheduler outage at one job per second) through a DueMover, with
// and without scripts: every item reaches its queue once, in due order, the
// reverse indexes and the schedule are emptied, and no step exceeds the
// batch.
func TestDueMoverSparse(t *testing.T) {
	t.Parallel()
	bothModes(t, func(t *testing.T, s *wire.Store, srv *redistest.Server) {
		srv.Do(t, "SET", testLock.Key, testLock.Value)
		const n = 2500
		var push []wire.DelayedPush
		for i := range n {
			q := "a"
			if i%3 == 0 {
				q = "b"
			}
			push = append(push, wire.DelayedPush{TS: 1000 + int64(i), Item: wire.RubyDelayedItem("J", json.RawMessage(fmt.Sprintf("[%d]", i)), q)})
		}
		push = append(push, wire.DelayedPush{TS: 1000 + n, Item: []byte(`{"class":"Lost","args":[],"queue":null}`)})
		push = append(push, wire.DelayedPush{TS: 9000, Item: wire.RubyDelayedItem("Later", nil, "a")})
		for _, err := range s.PushDelayed(bg, push) {
			if err != nil {
				t.Fatal(err)
			}
		}
		m := s.NewDueMover(testLock, wire.MoveOptions{Batch: 300})
		var moved, failed, steps int
		for {
			r, err := m.Step(bg, 5000, time.Unix(5000, 0))
			if err != nil {
				t.Fatal(err)
			}
			if r.Timestamps == 0 {
				break
			}
			if r.Moved+r.Failed > 300 {
				t.Errorf("step over the batch: %+v", r)
			}
			moved, failed, steps = moved+r.Moved, failed+r.Failed, steps+1
		}
		if moved != n || failed != 1 || steps != 9 {
			t.Errorf("moved %d failed %d in %d steps", moved, failed, steps)
		}
		a := strings.Split(srv.Do(t, "LRANGE", "resque:queue:a", "0", "-1"), "\n")
		b := strings.Split(srv.Do(t, "LRANGE", "resque:queue:b", "0", "-1"), "\n")
		if len(a)+len(b) != n || b[0] != `{"class":"J","args":[0]}` || a[0] != `{"class":"J","args":[1]}` || a[len(a)-1] != `{"class":"J","args":[2498]}` {
			t.Errorf("queues: %d + %d, a[0] %s b[0] %s", len(a), len(b), a[0], b[0])
		}
		expect(t, srv, "a\nb", "SORT", "resque:queues", "ALPHA")
		expect(t, srv, "9000", "ZRANGE", "resque:delayed_queue_schedule", "0", "-1")
		expect(t, srv, "1", "LLEN", "resque:failed")
		expect(t, srv, "0", "EXISTS", "resque:delayed:1000", "resque:timestamps:"+string(push[0].Item), "resque:timestamps:"+string(push[n-1].Item))
	})
}

// TestDueMoverReadAhead changes the items a mover has read ahead before
// its next step: an item removed is not enqueued, an item pushed in front
// or in its place is moved once, and a lock taken over moves nothing.
func TestDueMoverReadAhead(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		t.Run(fmt.Sprint("plain=", plain), func(t *testing.T) {
			t.Parallel()
			s, srv := newPrivateStore(t)
			if plain {
				s.UsePlainCommands()
			}
			srv.Do(t, "SET", testLock.Key, testLock.Value)
			item := func(i int) []byte { return wire.RubyDelayedItem("J", json.RawMessage("["+strconv.Itoa(i)+"]"), "q") }
			var push []wire.DelayedPush
			for i := range 40 {
				push = append(push, wire.DelayedPush{TS: 100 + int64(i/2), Item: item(i)})
			}
			s.PushDelayed(bg, push)
			m := s.NewDueMover(testLock, wire.MoveOptions{Batch: 10})
			step := func() wire.MoveResult {
				t.Helper()
				r, err := m.Step(bg, 1000, time.Unix(1000, 0))
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			if r := step(); r.Moved != 10 || r.First != 100 {
				t.Fatalf("first step %+v", r)
			}
			// The read-ahead holds timestamps 105..109 (items 10..19).
			if n, err := s.RemoveDelayed(bg, item(12)); err != nil || n != 1 {
				t.Fatalf("remove: %d %v", n, err)
			}
			s.PushDelayed(bg, []wire.DelayedPush{{TS: 105, Item: item(100)}, {TS: 50, Item: item(101)}, {TS: 106, Item: item(102)}})
			srv.Do(t, "SCRIPT", "FLUSH") // the pipelined step loads its scripts again
			step()
			// A takeover: the next step moves nothing.
			srv.Do(t, "SET", testLock.Key, "other")
			before := srv.Do(t, "LLEN", "resque:queue:q")
			if _, err := m.Step(bg, 1000, time.Unix(1000, 0)); !errors.Is(err, wire.ErrNotMaster) {
				t.Fatalf("fence: %v", err)
			}
			expect(t, srv, before, "LLEN", "resque:queue:q")
			srv.Do(t, "SET", testLock.Key, testLock.Value)
			for step().Timestamps > 0 {
			}
			got := strings.Split(srv.Do(t, "LRANGE", "resque:queue:q", "0", "-1"), "\n")
			seen := map[string]int{}
			for _, g := range got {
				seen[g]++
			}
			if len(got) != 42 || seen[`{"class":"J","args":[12]}`] != 0 || seen[`{"class":"J","args":[100]}`] != 1 || seen[`{"class":"J","args":[101]}`] != 1 || seen[`{"class":"J","args":[102]}`] != 1 {
				t.Errorf("queue (%d): %v", len(got), got)
			}
			for g, c := range seen {
				if c != 1 {
					t.Errorf("%s enqueued %d times", g, c)
				}
			}
			expect(t, srv, "0", "ZCARD", "resque:delayed_queue_schedule")
		})
	}
}
