package resq

import (
	"context"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// EnqueueDelayedItem moves one copy of a delayed job to its queue now: item
// is the DelayedView.Item of a job due at at (the dashboard's "Enqueue
// now" for one job). The move is atomic: when the Scheduler moved or
// someone removed that copy first, nothing is pushed and it reports false.
// classQueues gives the queue of an item stored without one (else it
// becomes a failure record, as in the Scheduler's move).
func (a *Admin) EnqueueDelayedItem(ctx context.Context, at time.Time, item []byte, classQueues map[string]string) (bool, error) {
	return a.store.EnqueueDelayedNow(ctx, at.Unix(), item, wire.MoveOptions{ClassQueues: classQueues, Worker: "resq-admin", Now: time.Now()})
}

// RemoveDelayedItem removes a delayed job due at at: item is its
// DelayedView.Item (every copy of those exact bytes at that second goes, as
// Ruby's remove_delayed_job_from_timestamp does). It returns the number
// removed.
func (a *Admin) RemoveDelayedItem(ctx context.Context, at time.Time, item []byte) (int64, error) {
	return a.store.RemoveDelayedAt(ctx, at.Unix(), item)
}
