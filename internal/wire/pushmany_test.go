package wire_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/resq-go/resq/internal/wire"
)

// PushMany writes one RPUSH per queue (per 1000 values): every queue keeps
// its jobs' order, both queues join resque:queues, and Redis sees 3 RPUSHes
// for 1,201 jobs.
func TestPushManyOneRPushPerQueue(t *testing.T) {
	t.Parallel()
	s, srv := newPrivateStore(t)
	var items []wire.QueuedPayload
	for i := range 1200 {
		items = append(items, wire.QueuedPayload{Queue: "a", Payload: []byte(`{"class":"A","args":[` + strconv.Itoa(i) + `]}`)})
		if i == 600 {
			items = append(items, wire.QueuedPayload{Queue: "b", Payload: []byte(`{"class":"B","args":[]}`)})
		}
	}
	for i, err := range s.PushMany(bg, items) {
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
	}
	if n := srv.Do(t, "LLEN", "resque:queue:a"); n != "1200" {
		t.Fatalf("queue a holds %s jobs, want 1200", n)
	}
	for _, i := range []int{0, 599, 999, 1000, 1199} {
		want := `{"class":"A","args":[` + strconv.Itoa(i) + `]}`
		if got := srv.Do(t, "LINDEX", "resque:queue:a", strconv.Itoa(i)); got != want {
			t.Fatalf("queue a[%d] = %s, want %s", i, got, want)
		}
	}
	if n := srv.Do(t, "LLEN", "resque:queue:b"); n != "1" {
		t.Fatalf("queue b holds %s jobs, want 1", n)
	}
	for _, q := range []string{"a", "b"} {
		if srv.Do(t, "SISMEMBER", "resque:queues", q) != "1" {
			t.Fatalf("queue %s not in resque:queues", q)
		}
	}
	if info := srv.Do(t, "INFO", "commandstats"); !strings.Contains(info, "cmdstat_rpush:calls=3,") {
		t.Fatalf("want 3 RPUSH calls (a: 1000 + 200 values, b: 1):\n%s", info)
	}
}

// An RPUSH that fails fails every job it carried, and only those: the
// queue whose key holds a string reports an error for each of its jobs,
// none of them stored; the other queue's jobs are stored.
func TestPushManyRPushErrorFailsItsJobs(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "SET", "resque:queue:bad", "not a list")
	items := []wire.QueuedPayload{
		{Queue: "bad", Payload: []byte(`{"class":"X","args":[1]}`)},
		{Queue: "good", Payload: []byte(`{"class":"X","args":[2]}`)},
		{Queue: "bad", Payload: []byte(`{"class":"X","args":[3]}`)},
	}
	errs := s.PushMany(bg, items)
	if errs[0] == nil || errs[2] == nil {
		t.Fatalf("jobs pushed onto a string key reported stored: %v", errs)
	}
	if errs[1] != nil {
		t.Fatalf("the good queue's job failed: %v", errs[1])
	}
	if v := srv.Do(t, "GET", "resque:queue:bad"); v != "not a list" {
		t.Fatalf("bad queue key changed to %q", v)
	}
	if n := srv.Do(t, "LLEN", "resque:queue:good"); n != "1" {
		t.Fatalf("good queue holds %s jobs, want 1", n)
	}
}
