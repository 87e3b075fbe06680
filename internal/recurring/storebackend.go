package recurring

import (
	"context"
	"errors"

	"github.com/resq-go/resq/internal/wire"
)

// StoreBackend is the Backend on a wire.Store: resque-scheduler's keys and
// resq's fenced tick script.
type StoreBackend struct {
	Store *wire.Store
	// Lock is the master lock key (Keys.SchedulerMasterLock(prefix)) and
	// this scheduler's value in it ("<host>:<pid>").
	Lock wire.Lock
}

// NewStoreBackend returns the Backend for a scheduler whose master lock is
// lock.Key holding lock.Value.
func NewStoreBackend(st *wire.Store, lock wire.Lock) *StoreBackend {
	return &StoreBackend{Store: st, Lock: lock}
}

// Fire runs wire.Store.FireScheduleTick.
func (b *StoreBackend) Fire(ctx context.Context, r FireRequest) (bool, error) {
	fired, err := b.Store.FireScheduleTick(ctx, wire.ScheduleTick{
		Lock: b.Lock,
		Name: r.Tick.Name, At: r.Tick.At, TTL: r.TTL,
		Queue: r.Queue, Payload: r.Payload, EnqueuedAt: r.EnqueuedAt,
	})
	if errors.Is(err, wire.ErrNotMaster) {
		return false, ErrNotMaster
	}
	return fired, err
}

// PersistentSchedules runs HGETALL persistent_schedules.
func (b *StoreBackend) PersistentSchedules(ctx context.Context) (map[string]string, error) {
	return b.Store.PersistentSchedules(ctx)
}

// PopChanged drains schedules_changed.
func (b *StoreBackend) PopChanged(ctx context.Context) ([]string, error) {
	return b.Store.PopChangedSchedules(ctx)
}

// LastEnqueued runs HGETALL delayed:last_enqueued_at.
func (b *StoreBackend) LastEnqueued(ctx context.Context) (map[string]string, error) {
	return b.Store.LastEnqueuedAt(ctx)
}
