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
	// LockKey is the master lock key (Keys.SchedulerMasterLock(prefix));
	// LockValue is this scheduler's value in it ("<host>:<pid>").
	LockKey, LockValue string
}

// NewStoreBackend returns the Backend for a scheduler whose master lock is
// lockKey holding lockValue.
func NewStoreBackend(st *wire.Store, lockKey, lockValue string) *StoreBackend {
	return &StoreBackend{Store: st, LockKey: lockKey, LockValue: lockValue}
}

// Fire runs wire.Store.FireScheduleTick.
func (b *StoreBackend) Fire(ctx context.Context, r FireRequest) (bool, error) {
	fired, err := b.Store.FireScheduleTick(ctx, wire.ScheduleTick{
		LockKey: b.LockKey, LockValue: b.LockValue,
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
