package resq

import (
	"context"
	"slices"
	"sync"

	"github.com/resq-go/resq/internal/wire"
)

// maxGroupWriters is how many pipelines of one Client's enqueues are in
// flight at once (measured with 8 producers: 1 or 2 leave Redis idle
// between pipelines, 4 matched 8 independent writers' throughput with 20 %
// fewer Redis commands).
const maxGroupWriters = 4

// maxGroupPush bounds how many enqueues share one pipeline.
const maxGroupPush = 256

// pushGroup coalesces concurrent single enqueues on one Client into shared
// pipelines (group commit). A caller that finds fewer than maxGroupWriters
// writes in progress writes its job at once, alone — a lone producer pays
// exactly one round trip, as before. Callers that arrive while all writers
// are busy queue up; when a write ends, the oldest of them writes everything
// queued in one pipeline (one SADD per queue, one RPUSH per job) and the
// others wait for its reply. Every caller still gets its own job's checked
// outcome.
//
// A caller whose ctx ends while its job is still queued takes it back and
// gets ctx.Err() (the job was not sent). Once the job is in a pipeline the
// caller waits for the reply, which go-redis's read timeout bounds: the
// pipeline is written under the writer's ctx without its cancellation, so
// that one caller giving up does not fail its neighbours' jobs.
type pushGroup struct {
	store *wire.Store

	mu      sync.Mutex
	writing int // pipelines in flight
	pending []*pushReq
}

type pushReq struct {
	item wire.QueuedPayload
	err  error
	lead bool          // set before done is signalled: write the next batch
	done chan struct{} // signalled once: written (err set), or lead
}

func (g *pushGroup) push(ctx context.Context, queue string, payload []byte) error {
	r := &pushReq{item: wire.QueuedPayload{Queue: queue, Payload: payload}, done: make(chan struct{}, 1)}
	g.mu.Lock()
	if g.writing < maxGroupWriters {
		g.writing++
		g.mu.Unlock()
		return g.write(ctx, r)
	}
	g.pending = append(g.pending, r)
	g.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		g.mu.Lock()
		if i := slices.Index(g.pending, r); i >= 0 {
			g.pending = slices.Delete(g.pending, i, i+1)
			g.mu.Unlock()
			return ctx.Err() // never sent
		}
		g.mu.Unlock()
		<-r.done // already in a pipeline, or chosen to write the next one
	}
	if r.lead {
		return g.write(ctx, r)
	}
	return r.err
}

// write sends r and what is queued behind it, hands the next batch to the
// oldest caller still waiting, and returns r's outcome.
func (g *pushGroup) write(ctx context.Context, r *pushReq) error {
	g.mu.Lock()
	n := min(len(g.pending), maxGroupPush-1)
	batch := make([]*pushReq, 0, n+1)
	batch = append(batch, r)
	batch = append(batch, g.pending[:n]...)
	g.pending = slices.Delete(g.pending, 0, n)
	g.mu.Unlock()

	wctx := context.WithoutCancel(ctx)
	if len(batch) == 1 {
		r.err = g.store.Push(wctx, r.item.Queue, r.item.Payload)
	} else {
		items := make([]wire.QueuedPayload, len(batch))
		for i, b := range batch {
			items[i] = b.item
		}
		errs := g.store.PushMany(wctx, items)
		for i, b := range batch {
			b.err = errs[i]
			if i > 0 {
				b.done <- struct{}{}
			}
		}
	}

	g.mu.Lock()
	if len(g.pending) > 0 {
		next := g.pending[0]
		g.pending = g.pending[1:]
		next.lead = true
		next.done <- struct{}{}
	} else {
		g.writing--
	}
	g.mu.Unlock()
	return r.err
}
