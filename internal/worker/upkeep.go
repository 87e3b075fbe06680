package worker

import (
	"context"
	"time"
)

// upkeep refreshes heartbeats, re-registers ids that someone removed, and
// calls PruneFunc to recover dead workers' jobs, every HeartbeatInterval and
// when the fetch loop sees Redis back after an outage. Each step is tried
// once per round: the next round is the retry.
func (e *Engine) upkeep(ctx context.Context) {
	t := time.NewTicker(e.cfg.HeartbeatInterval)
	defer t.Stop()
	ids := e.cfg.IDs
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.recheck:
		}
		if err := e.store.Beat(ctx, ids); err != nil {
			if ctx.Err() == nil {
				e.logger.Warn("heartbeat failed", "error", err)
			}
			continue
		}
		if ok, err := e.store.IsRegistered(ctx, ids[0]); err == nil && !ok {
			e.logger.Warn("worker ids were unregistered by another process; registering again", "first_id", ids[0])
			_ = e.store.Register(ctx, ids, time.Now())
		}
		if e.cfg.PruneFunc == nil {
			continue
		}
		if err := e.cfg.PruneFunc(ctx); err != nil && ctx.Err() == nil {
			e.logger.Warn("dead-worker check failed", "error", err)
		}
	}
}
