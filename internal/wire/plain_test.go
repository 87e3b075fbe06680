package wire_test

import (
	"crypto/sha1"
	"fmt"
	"strings"
	"testing"

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
