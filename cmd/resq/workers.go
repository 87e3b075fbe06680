package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

func (c *cli) cmdWorkers(ctx context.Context, args []string) error {
	fs := c.newFlags("workers", "List registered workers (Ruby, Node and resq alike) and what each is doing.").args(0, 0, "")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	ws, err := resq.NewAdmin(conn).Workers(ctx)
	if err != nil {
		return fmt.Errorf("list workers on %s: %w", conn, err)
	}
	if c.g.json {
		if ws == nil {
			ws = []resq.WorkerView{}
		}
		return c.printJSON(ws)
	}
	if len(ws) == 0 {
		fmt.Fprintf(c.stdout, "no workers registered in %s\n", conn)
		return nil
	}
	t := newTable(c.stdout, "ID", "HOST", "PID", "QUEUES", "STARTED", "HEARTBEAT", "STATE")
	for _, w := range ws {
		t.row(w.ID, orDash(w.Host), strconv.Itoa(w.PID), orDash(strings.Join(w.Queues, ",")),
			orDash(w.Started), orDash(w.Heartbeat), workerState(w))
	}
	t.flush()
	return nil
}

func workerState(w resq.WorkerView) string {
	if w.Working == nil {
		return "idle"
	}
	if w.Working.Job.Invalid != "" && w.Working.Queue == "" {
		return "working (unreadable record)"
	}
	class := w.Working.Job.Class
	if class == "" {
		class = "(invalid job)"
	}
	return fmt.Sprintf("working on %s from %s since %s", class, orDash(w.Working.Queue), orDash(w.Working.RunAt))
}

const pruneHelp = `
Find dead workers and recover their jobs, as a starting worker does: a
worker on this host whose process is gone, or a worker anywhere whose
heartbeat is older than --stale. Their ids are unregistered and the job each
was running is requeued (or failed with --dead-jobs fail).`

func (c *cli) cmdPrune(ctx context.Context, args []string) error {
	fs := c.newFlags("prune", pruneHelp).args(0, 0, "")
	var stale time.Duration
	var policy resq.DeadJobPolicy
	newDuration(fs.FlagSet, &stale, "stale", resq.DefaultPruneInterval, "heartbeat age `D` after which a worker counts as dead (Ruby's prune_interval)")
	fs.Var(deadJobsValue{&policy}, "dead-jobs", "what happens to a dead worker's job: `requeue|fail` (fail records Resque::DirtyExit, as Ruby does)")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if stale <= 0 {
		return usagef("prune", "--stale must be more than 0")
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := resq.NewAdmin(conn).Prune(ctx, stale, policy)
	if err != nil {
		return fmt.Errorf("prune dead workers on %s: %w", conn, err)
	}
	if c.g.json {
		pruned := res.Pruned
		if pruned == nil {
			pruned = []string{}
		}
		return c.printJSON(map[string]any{"pruned": pruned, "requeued": res.Requeued, "failed": res.Failed})
	}
	for _, id := range res.Pruned {
		fmt.Fprintf(c.stdout, "pruned %s\n", id)
	}
	fmt.Fprintf(c.stdout, "pruned %d dead %s; their jobs: %d requeued, %d failed\n",
		len(res.Pruned), plural(len(res.Pruned), "worker", "workers"), res.Requeued, res.Failed)
	return nil
}

func (c *cli) cmdStats(ctx context.Context, args []string) error {
	fs := c.newFlags("stats", "Show the numbers of Ruby's Resque.info: pending, processed, queues, workers, working, failed.").args(0, 0, "")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := resq.NewAdmin(conn).Stats(ctx)
	if err != nil {
		return fmt.Errorf("read stats on %s: %w", conn, err)
	}
	if c.g.json {
		return c.printJSON(st)
	}
	c.writeStats(st)
	return nil
}

func (c *cli) writeStats(st resq.Stats) {
	t := newTable(c.stdout, "STAT", "VALUE")
	for _, r := range [][2]string{
		{"pending", strconv.FormatInt(st.Pending, 10)},
		{"processed", strconv.FormatInt(st.Processed, 10)},
		{"queues", strconv.FormatInt(st.Queues, 10)},
		{"workers", strconv.FormatInt(st.Workers, 10)},
		{"working", strconv.FormatInt(st.Working, 10)},
		{"failed", strconv.FormatInt(st.Failed, 10)},
		{"stat_failed", strconv.FormatInt(st.StatFailed, 10)},
		{"servers", strings.Join(st.Servers, ", ")},
		{"environment", st.Environment},
	} {
		t.row(r[0], r[1])
	}
	t.flush()
}
