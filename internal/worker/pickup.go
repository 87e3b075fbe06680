package worker

import (
	"context"
	"sync"
	"time"
)

// maxPickers bounds the blocking connections one worker holds.
const maxPickers = 16

// pickers runs one blocking pickup per queue (up to maxPickers) while a slot
// is idle and the queues are empty: a job pushed to an empty queue is moved
// at once (BLMOVE) into this process's pickup list and the fetcher is woken,
// so idle pickup latency does not depend on the poll interval. The pickup
// list is in Redis, so a job is never only in memory.
func (e *Engine) pickers(ctx context.Context) {
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, c := range running {
			c()
		}
		wg.Wait()
	}()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		want := map[string]bool{}
		if qs := e.pickQueues.Load(); qs != nil {
			for i, q := range *qs {
				if i >= maxPickers {
					break
				}
				want[q] = true
			}
		}
		for q, c := range running {
			if !want[q] {
				c()
				delete(running, q)
			}
		}
		for q := range want {
			if running[q] == nil {
				pctx, c := context.WithCancel(ctx)
				running[q] = c
				wg.Add(1)
				go func() { defer wg.Done(); e.pick(pctx, q) }()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Engine) pick(ctx context.Context, queue string) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if !e.wantPickup.Load() || e.paused.Load() {
			wait := e.pickSignal.wait()
			if e.wantPickup.Load() && !e.paused.Load() {
				continue
			}
			select {
			case <-ctx.Done():
				return
			case <-wait:
			case <-time.After(time.Second):
			}
			continue
		}
		bctx, cancel := context.WithCancel(ctx)
		e.picksMu.Lock()
		if e.picks == nil {
			e.picks = map[*context.CancelFunc]bool{}
		}
		e.picks[&cancel] = true
		e.picksMu.Unlock()
		moved, err := e.store.BlockingPickup(bctx, e.cfg.Owner, queue, time.Second)
		e.picksMu.Lock()
		delete(e.picks, &cancel)
		e.picksMu.Unlock()
		cancel()
		if err != nil && ctx.Err() == nil && bctx.Err() != nil {
			continue // cancelled by Pause
		}
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 5*time.Second)
		case moved:
			backoff = 100 * time.Millisecond
			e.wantPickup.Store(false) // the fetcher decides again
			e.poke()
		}
	}
}

// broadcast wakes every goroutine waiting on it.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

func (b *broadcast) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
}
