package resq

import (
	"context"
	"slices"
	"sync"

	"github.com/resq-go/resq/internal/wire"
)

// maxGroupWriters is how many flushes of one Client's enqueues are in
// flight at once. Measured on a quiet machine (docs/decisions.md §26, "Re-
// measured"): 8 producers ran 54–56k jobs/s with 2, 65–67k with 4, 73–78k
// with 8 (no grouping); 32 producers 163–168k with 2, 146–156k with 4,
// 127–128k with 8. 4 keeps most of both.
const maxGroupWriters = 4

// maxGroupPush bounds how many enqueues share one flush (and so how many
// values one RPUSH carries).
const maxGroupPush = 256

// pushGroup coalesces concurrent single enqueues on one Client into shared
// flushes (group commit). A caller that finds fewer than maxGroupWriters
// flushes in flight writes its job at once, alone — a lone producer pays
// exactly one round trip. Callers that arrive while all writers are busy
// join the newest waiting batch; when a flush ends, one member of the
// oldest batch writes that batch — one SADD per queue and one RPUSH per
// queue with all of the batch's jobs for it, in arrival order — and the
// others wait for the batch's reply. Every caller gets its own job's
// checked outcome: an RPUSH that fails fails every job it carried.
//
// A caller whose ctx ends while its batch is still waiting takes its job
// back and gets ctx.Err() (the job was not sent). Once a batch is claimed
// for writing its callers wait for the reply, which go-redis's read timeout
// bounds: the flush is written under the writer's ctx without its
// cancellation, so that one caller giving up does not fail its neighbours'
// jobs.
type pushGroup struct {
	store *wire.Store

	mu      sync.Mutex
	writing int          // flushes in flight
	waiting []*pushBatch // oldest first; only the last one takes new jobs
}

// pushBatch is the jobs of callers waiting for one flush.
type pushBatch struct {
	items []wire.QueuedPayload // a nil Payload: taken back by its caller
	live  int                  // items not taken back
	errs  []error              // per item, set before done is closed
	lead  chan struct{}        // buffered: tells one member to write the batch
	done  chan struct{}        // closed once the batch is written
}

func (g *pushGroup) push(ctx context.Context, queue string, payload []byte) error {
	g.mu.Lock()
	if g.writing < maxGroupWriters {
		g.writing++
		g.mu.Unlock()
		err := g.store.Push(context.WithoutCancel(ctx), queue, payload)
		g.handOn()
		return err
	}
	var b *pushBatch
	if n := len(g.waiting); n > 0 && len(g.waiting[n-1].items) < maxGroupPush {
		b = g.waiting[n-1]
	} else {
		b = &pushBatch{lead: make(chan struct{}, 1), done: make(chan struct{})}
		g.waiting = append(g.waiting, b)
	}
	i := len(b.items)
	b.items = append(b.items, wire.QueuedPayload{Queue: queue, Payload: payload})
	b.live++
	g.mu.Unlock()
	select {
	case <-b.done:
		return b.errs[i]
	case <-b.lead:
		return g.write(ctx, b, i)
	case <-ctx.Done():
	}
	g.mu.Lock()
	if k := slices.Index(g.waiting, b); k >= 0 { // not claimed yet: take the job back
		b.items[i].Payload = nil
		if b.live--; b.live == 0 {
			g.waiting = slices.Delete(g.waiting, k, k+1)
		}
		g.mu.Unlock()
		return ctx.Err() // never sent
	}
	g.mu.Unlock()
	select { // claimed: being written, or this caller is to write it
	case <-b.done:
		return b.errs[i]
	case <-b.lead:
		return g.write(ctx, b, i)
	}
}

// write sends batch b, whose member i this caller is, hands the next batch
// on and returns job i's outcome. b was claimed (taken off g.waiting) under
// g.mu, so nobody changes its items any more.
func (g *pushGroup) write(ctx context.Context, b *pushBatch, i int) error {
	items := make([]wire.QueuedPayload, 0, b.live)
	at := make([]int, 0, b.live)
	for k, it := range b.items {
		if it.Payload != nil {
			items, at = append(items, it), append(at, k)
		}
	}
	errs := g.store.PushMany(context.WithoutCancel(ctx), items)
	b.errs = make([]error, len(b.items))
	for k, err := range errs {
		b.errs[at[k]] = err
	}
	close(b.done)
	g.handOn()
	return b.errs[i]
}

// handOn ends a flush: the oldest waiting batch is claimed and one of its
// members told to write it, or, with none waiting, the writer slot is freed.
func (g *pushGroup) handOn() {
	g.mu.Lock()
	if len(g.waiting) == 0 {
		g.writing--
		g.mu.Unlock()
		return
	}
	b := g.waiting[0]
	g.waiting = slices.Delete(g.waiting, 0, 1)
	g.mu.Unlock()
	b.lead <- struct{}{}
}
