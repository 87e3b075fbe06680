package wire_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/redistest"
	"github.com/resq-go/resq/internal/wire"
)

// With replica acknowledgements on, every enqueue write reports success
// only once a replica holds it: with no replica it is refused with
// ErrNotReplicated (and is stored on the master, not rolled back); with a
// replica the replica has it the moment the call returns. Both with
// scripts and with plain commands.
func TestReplicaAcks(t *testing.T) {
	t.Parallel()
	for _, plain := range []bool{false, true} {
		t.Run("plain="+strconv.FormatBool(plain), func(t *testing.T) {
			t.Parallel()
			master := redistest.Start(t)
			// A short wait where no replica can answer, a long one (it
			// ends when the replica answers) where one can.
			short, long := wire.NewStore(clientOf(t, master), "resque"), wire.NewStore(clientOf(t, master), "resque")
			short.SetReplicaAcks(1, 50*time.Millisecond)
			long.SetReplicaAcks(1, 5*time.Second)
			if plain {
				short.UsePlainCommands()
				long.UsePlainCommands()
			}
			s := short
			writes := []struct {
				name string
				key  string // the key the write grows
				len  string // the command reading that key's length
				do   func() error
			}{
				{"Push", "resque:queue:a", "LLEN", func() error { return s.Push(bg, "a", []byte(`{"class":"A","args":[]}`)) }},
				{"PushMany", "resque:queue:b", "LLEN", func() error {
					errs := s.PushMany(bg, []wire.QueuedPayload{{Queue: "b", Payload: []byte(`{"class":"B","args":[1]}`)}, {Queue: "b", Payload: []byte(`{"class":"B","args":[2]}`)}})
					return errors.Join(errs...)
				}},
				{"PushCapped", "resque:queue:c", "LLEN", func() error {
					_, pushed, err := s.PushCapped(bg, "c", []byte(`{"class":"C","args":[]}`), 100)
					if err == nil && !pushed {
						t.Error("PushCapped refused a push under its cap")
					}
					return err
				}},
				{"PushDelayed", "resque:delayed:1700000000", "LLEN", func() error {
					return errors.Join(s.PushDelayed(bg, []wire.DelayedPush{{TS: 1700000000, Item: []byte(`{"class":"D","args":[],"queue":"d"}`)}})...)
				}},
			}
			// No replica: refused, but stored on the master.
			for _, w := range writes {
				err := w.do()
				if !errors.Is(err, wire.ErrNotReplicated) || !strings.Contains(err.Error(), "0 of 1 replicas") {
					t.Errorf("%s without a replica: %v, want ErrNotReplicated saying 0 of 1 replicas confirmed", w.name, err)
				}
				if n := master.Do(t, w.len, w.key); n == "0" {
					t.Errorf("%s without a replica: nothing stored on the master", w.name)
				}
			}
			// A full queue refuses without a write: no confirmation needed.
			if _, pushed, err := s.PushCapped(bg, "c", []byte(`{"class":"C","args":[]}`), 1); pushed || err != nil {
				t.Errorf("PushCapped over the cap = pushed %v, %v; want a refusal without error", pushed, err)
			}

			replica := redistest.StartReplica(t, master, redistest.Options{})
			s = long
			for _, w := range writes {
				before := master.Do(t, w.len, w.key)
				if err := w.do(); err != nil {
					t.Errorf("%s with a replica: %v", w.name, err)
					continue
				}
				// Read at once: WAIT returned only after the replica had it.
				got, want := replica.Do(t, w.len, w.key), master.Do(t, w.len, w.key)
				if got != want || got == before {
					t.Errorf("%s with a replica: replica holds %s, master %s (before %s): the write was confirmed before the replica had it", w.name, got, want, before)
				}
			}
			if calls := master.CommandCalls(t, "wait"); calls < 2*len(writes) {
				t.Errorf("WAIT ran %d times, want one per write (%d)", calls, 2*len(writes))
			}
		})
	}
}

// Without replica acknowledgements no WAIT is sent.
func TestNoReplicaAcksNoWait(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	s := wire.NewStore(clientOf(t, srv), "resque")
	if err := s.Push(bg, "a", []byte(`{"class":"A","args":[]}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PushCapped(bg, "a", []byte(`{"class":"A","args":[]}`), 10); err != nil {
		t.Fatal(err)
	}
	if calls := srv.CommandCalls(t, "wait"); calls != 0 {
		t.Errorf("WAIT ran %d times with acknowledgements off", calls)
	}
}
