package resq

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/resq-go/resq/internal/isolate"
	"github.com/resq-go/resq/internal/wire"
)

type pruneOptions struct {
	host       string          // this host's name: same-host workers are checked by pid
	own        map[string]bool // ids never to prune (the caller's own)
	staleAfter time.Duration   // heartbeat age that marks a remote worker dead
	policy     DeadJobPolicy
	logger     *slog.Logger
	// orphans, when set, remembers since when each unregistered worker's
	// hold (jobs held ahead, wire/ahead.go) has been seen, across calls.
	orphans map[string]time.Time
}

// PruneResult lists what a dead-worker check did.
type PruneResult struct {
	// Pruned are the dead worker ids that were unregistered.
	Pruned []string `json:"pruned"`
	// Requeued and Failed count their in-flight jobs by outcome.
	Requeued int `json:"requeued"`
	Failed   int `json:"failed"`
}

// pruneDead finds dead workers and recovers their in-flight jobs:
//   - on this host, a worker whose pid is not a live process is dead at once;
//   - elsewhere, a worker whose heartbeat is older than staleAfter (by Redis's
//     clock) is dead; workers that never wrote a heartbeat are left alone, as
//     Ruby does.
//
// Each recovery is one atomic compare-and-act on the worker's record, so two
// workers pruning at once never requeue a job twice.
func (c *Conn) pruneDead(ctx context.Context, o pruneOptions) (PruneResult, error) {
	var res PruneResult
	states, err := c.store.WorkerStates(ctx)
	if err != nil {
		return res, err
	}
	now, err := c.store.ServerTime(ctx)
	if err != nil {
		return res, err
	}
	if o.logger == nil {
		o.logger = c.logger
	}
	returned := map[string]bool{}
	for _, st := range states {
		if o.own[st.ID] {
			continue
		}
		id, ok := wire.ParseWorkerID(st.ID)
		dead, why := false, ""
		expired := false
		if st.Heartbeat != "" {
			if hb, ok := wire.ParseTime(st.Heartbeat); ok && now.Sub(hb).Truncate(time.Second) > o.staleAfter {
				dead, expired = true, true
				why = fmt.Sprintf("heartbeat %s old", now.Sub(hb).Truncate(time.Second))
			}
		}
		if !dead && ok && id.Host == o.host && id.PID > 0 && !isolate.ProcessAlive(id.PID) {
			dead, why = true, fmt.Sprintf("pid %d is not running on this host", id.PID)
		}
		if !dead {
			continue
		}
		if owner := id.Host + ":" + id.PIDStr; ok && !returned[owner] {
			returned[owner] = true
			if id.Host == o.host && id.PID > 0 {
				// Nothing of the dead worker's jobs may still run when they
				// run again: its keeper ends them when it dies; this sweep
				// catches what escaped it.
				if n := isolate.KillJobsOfDeadOwner(id.PID); n > 0 {
					o.logger.Warn("killed processes left running by a dead worker's jobs", "owner", owner, "processes", n)
				}
			}
			if n, err := c.store.ReturnPickups(ctx, owner); err != nil {
				return res, fmt.Errorf("return picked-up jobs of dead worker %s: %w", owner, err)
			} else if n > 0 {
				res.Requeued += n
				o.logger.Info("returned a dead worker's picked-up jobs to their queues", "owner", owner, "jobs", n)
			}
		}
		if n, err := c.store.ReturnHeld(ctx, st.ID, nil); err != nil {
			return res, fmt.Errorf("return jobs held ahead by dead worker %s: %w", st.ID, err)
		} else if n > 0 {
			res.Requeued += n
			o.logger.Info("returned the jobs a dead worker held ahead to their queues", "worker", st.ID, "jobs", n)
		}
		outcome, err := c.recoverWorker(ctx, st, expired, o.policy, now)
		if err != nil {
			return res, fmt.Errorf("recover dead worker %s: %w", st.ID, err)
		}
		switch outcome {
		case "requeued":
			res.Requeued++
		case "failed":
			res.Failed++
		case "changed":
			continue
		}
		res.Pruned = append(res.Pruned, st.ID)
		o.logger.Info("pruned dead worker", "worker", st.ID, "reason", why, "job", outcome)
	}
	if err := c.returnOrphanHolds(ctx, o, states, now, &res); err != nil {
		return res, err
	}
	return res, nil
}

// returnOrphanHolds returns the holds of workers that are not registered
// (another tool — Ruby's pruning, say — unregistered them after they died,
// so no dead-worker check finds them): at once when the worker was on this
// host and its pid is not running; else once the hold has stayed
// unregistered for staleAfter across calls (a live worker whose ids were
// removed registers them again within a heartbeat).
func (c *Conn) returnOrphanHolds(ctx context.Context, o pruneOptions, states []wire.WorkerState, now time.Time, res *PruneResult) error {
	owners, err := c.store.HoldOwners(ctx)
	if err != nil {
		return err
	}
	registered := make(map[string]bool, len(states))
	for _, st := range states {
		registered[st.ID] = true
	}
	present := map[string]bool{}
	for _, owner := range owners {
		if o.own[owner] || registered[owner] {
			continue
		}
		present[owner] = true
		id, ok := wire.ParseWorkerID(owner)
		gone := ok && id.Host == o.host && id.PID > 0 && !isolate.ProcessAlive(id.PID)
		if !gone && o.orphans != nil {
			first, seen := o.orphans[owner]
			if !seen {
				o.orphans[owner] = now
			}
			gone = seen && now.Sub(first) >= o.staleAfter
		}
		if !gone {
			continue
		}
		n, err := c.store.ReturnHeld(ctx, owner, nil)
		if err != nil {
			return fmt.Errorf("return jobs held ahead by unregistered worker %s: %w", owner, err)
		}
		delete(o.orphans, owner)
		if n > 0 {
			res.Requeued += n
			o.logger.Info("returned the jobs an unregistered worker held ahead to their queues", "worker", owner, "jobs", n)
		}
	}
	for owner := range o.orphans {
		if !present[owner] {
			delete(o.orphans, owner)
		}
	}
	return nil
}

// recoverWorker unregisters one dead worker and requeues or fails its job.
func (c *Conn) recoverWorker(ctx context.Context, st wire.WorkerState, expired bool, policy DeadJobPolicy, now time.Time) (string, error) {
	if st.Record == nil || len(st.Record) == 0 {
		ok, err := c.store.RecoverWorker(ctx, st.ID, nil, wire.WorkingOn{}, wire.RecoverRequeue, nil)
		if !ok {
			return "changed", err
		}
		return "idle", err
	}
	rec, decErr := wire.DecodeWorkingOn(st.Record)
	payload := rec.Payload
	isJob := decErr == nil && len(payload) > 0 && payload[0] == '{'
	if isJob && policy == RequeueDeadJobs && rec.Queue != "" {
		ok, err := c.store.RecoverWorker(ctx, st.ID, st.Record, rec, wire.RecoverRequeue, nil)
		if !ok {
			return "changed", err
		}
		return "requeued", err
	}
	// Fail it the way Ruby's pruning does (docs/protocol.md §4.6, §4.12).
	class := "<Unknown Job>"
	if p, err := wire.DecodePayload(payload); err == nil {
		class = p.Class
	}
	f := wire.Failure{FailedAt: wire.FailedAt(now), Payload: payload, Backtrace: []string{}, Worker: st.ID, Queue: rec.Queue}
	if expired {
		f.Exception = ExceptionPruneDirtyExit
		f.Error = fmt.Sprintf("Worker %s did not gracefully exit while processing %s", st.ID, class)
	} else {
		f.Exception = ExceptionDirtyExit
		f.Error = "Job still being processed"
	}
	if !isJob {
		f.Payload = wire.DeadJobPayload(st.Record, rec, decErr)
	}
	ok, err := c.store.RecoverWorker(ctx, st.ID, st.Record, rec, wire.RecoverFail, f.Encode())
	if !ok {
		return "changed", err
	}
	return "failed", err
}
