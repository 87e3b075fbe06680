package resq

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/resq-go/resq/internal/redistest"
)

// newTestGroup returns a pushGroup on a private Redis whose writer slots are
// all taken, so that every push waits in a batch until handOn is called.
func newTestGroup(t *testing.T) (*pushGroup, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	conn, err := Open(ConnConfig{URL: srv.URL(), Namespace: "g"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	g := &pushGroup{store: conn.store, writing: maxGroupWriters}
	return g, srv
}

// waitBatched waits until n jobs wait in g's batches.
func waitBatched(g *pushGroup, n int) {
	for {
		g.mu.Lock()
		k := 0
		for _, b := range g.waiting {
			k += b.live
		}
		g.mu.Unlock()
		if k == n {
			return
		}
		runtime.Gosched()
	}
}

// Three callers wait in one batch; one's ctx ends, so it takes its job back
// and gets the ctx's error; when the flush in flight ends, the other two
// jobs go out in one SADD and one RPUSH and both callers see success.
func TestPushGroupTakeBackAndOneRPush(t *testing.T) {
	t.Parallel()
	g, srv := newTestGroup(t)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	go func() { errs <- g.push(ctx, "q", []byte(`"cancelled"`)) }()
	waitBatched(g, 1)
	for _, p := range []string{`"a"`, `"b"`} {
		go func() { errs <- g.push(context.Background(), "q", []byte(p)) }()
	}
	waitBatched(g, 3)
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want context.Canceled", err)
	}
	waitBatched(g, 2)
	g.handOn() // the flush in flight ends: the batch is written
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("batched push: %v", err)
		}
	}
	if got := srv.Do(t, "LRANGE", "g:queue:q", "0", "-1"); got != "\"a\"\n\"b\"" && got != "\"b\"\n\"a\"" {
		t.Fatalf("queue holds %q, want the two jobs not taken back", got)
	}
	info := srv.Do(t, "INFO", "commandstats")
	if !strings.Contains(info, "cmdstat_rpush:calls=1,") || !strings.Contains(info, "cmdstat_sadd:calls=1,") {
		t.Fatalf("want one SADD and one RPUSH for the batch:\n%s", info)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.writing != maxGroupWriters-1 || len(g.waiting) != 0 {
		t.Fatalf("after the batch: %d writing, %d batches waiting; want %d, 0", g.writing, len(g.waiting), maxGroupWriters-1)
	}
}

// A batch whose only caller takes its job back is dropped: nothing is sent,
// and the next flush's end frees the slot instead of waking nobody.
func TestPushGroupEmptyBatchDropped(t *testing.T) {
	t.Parallel()
	g, srv := newTestGroup(t)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() { errs <- g.push(ctx, "q", []byte(`"x"`)) }()
	waitBatched(g, 1)
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	g.handOn()
	if n := srv.Do(t, "EXISTS", "g:queue:q"); n != "0" {
		t.Fatal("a job taken back was pushed")
	}
	if g.writing != maxGroupWriters-1 || len(g.waiting) != 0 {
		t.Fatalf("%d writing, %d waiting; want %d, 0", g.writing, len(g.waiting), maxGroupWriters-1)
	}
}
