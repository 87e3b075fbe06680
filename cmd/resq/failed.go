package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"

	"github.com/resq-go/resq"
)

const failedListHelp = `
List failure records, oldest first. INDEX is the record's position in the
failed list, as resque-web numbers them; 'resq failed retry' and 'resq failed
remove' take it.`

func (c *cli) cmdFailedList(ctx context.Context, args []string) error {
	fs := c.newFlags("failed list", failedListHelp).args(0, 0, "")
	var start, count int64
	fs.Int64Var(&start, "start", 0, "index `N` of the first record to show")
	fs.Int64Var(&count, "count", 50, "how many records (`N`) to show")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if start < 0 || count < 1 {
		return usagef("failed list", "--start must be 0 or more and --count 1 or more")
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	admin := resq.NewAdmin(conn)
	fails, err := admin.Failures(ctx, start, count)
	if err != nil {
		return fmt.Errorf("list failures on %s: %w", conn, err)
	}
	if c.g.json {
		if fails == nil {
			fails = []resq.FailureView{}
		}
		return c.printJSON(fails)
	}
	total, err := admin.FailureCount(ctx)
	if err != nil {
		return fmt.Errorf("count failures on %s: %w", conn, err)
	}
	if len(fails) == 0 {
		if total == 0 {
			fmt.Fprintln(c.stdout, "no failures")
		} else {
			fmt.Fprintf(c.stdout, "%d failures; none at index %d or later\n", total, start)
		}
		return nil
	}
	t := newTable(c.stdout, "INDEX", "FAILED_AT", "QUEUE", "CLASS", "EXCEPTION", "ERROR", "WORKER", "RETRIED_AT")
	for _, f := range fails {
		if f.Unparsable {
			t.row(strconv.FormatInt(f.Index, 10), "-", "-", "-", "-", "(unparsable failure record)", "-", "-")
			continue
		}
		class := f.Job.Class
		if f.Job.Invalid != "" {
			class = "(invalid job)"
		}
		t.row(strconv.FormatInt(f.Index, 10), orDash(f.FailedAt), orDash(f.Queue), orDash(class),
			orDash(f.Exception), orDash(firstLine(f.Error, 100)), orDash(resq.ShortWorker(f.Worker)), orDash(f.RetriedAt))
	}
	t.flush()
	if shown := start + int64(len(fails)); shown < total {
		fmt.Fprintf(c.stdout, "(%d of %d failures shown; --start %d for more)\n", len(fails), total, shown)
	}
	return nil
}

const failedRetryHelp = `
Requeue failed jobs onto their queues, by INDEX (as 'resq failed list' shows
them) or all of them with --all. As in Ruby Resque and resque-web, the
records stay in the list and are marked with retried_at.`

func (c *cli) cmdFailedRetry(ctx context.Context, args []string) error {
	fs := c.newFlags("failed retry", failedRetryHelp).args(0, -1, "")
	var all bool
	fs.BoolVar(&all, "all", false, "retry every failure")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	idxs, err := parseIndexes("failed retry", pos, all)
	if err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	admin := resq.NewAdmin(conn)
	prog := c.newProgress("retried")
	defer prog.finish()
	if all {
		n, err := admin.RetryAllFailures(ctx, prog.update)
		prog.finish()
		if err != nil {
			return fmt.Errorf("retry all failures on %s (%d retried before the error): %w", conn, n, err)
		}
		if c.g.json {
			return c.printJSON(map[string]any{"retried": n})
		}
		fmt.Fprintf(c.stdout, "retried %d %s\n", n, plural(n, "failure", "failures"))
		return nil
	}
	if err := checkIndexes(ctx, admin, idxs); err != nil {
		return err
	}
	type retried struct {
		Index int64  `json:"index"`
		Queue string `json:"queue"`
	}
	done := make([]retried, 0, len(idxs))
	for i, idx := range idxs {
		q, err := admin.RetryFailure(ctx, idx)
		if err != nil {
			prog.finish()
			return fmt.Errorf("retry failure %d (%d retried before it): %w", idx, len(done), err)
		}
		done = append(done, retried{idx, q})
		prog.update(i+1, len(idxs))
	}
	prog.finish()
	if c.g.json {
		return c.printJSON(map[string]any{"retried": len(done), "failures": done})
	}
	for _, r := range done {
		fmt.Fprintf(c.stdout, "retried failure %d onto queue %s\n", r.Index, r.Queue)
	}
	return nil
}

const failedRemoveHelp = `
Delete failure records by INDEX (as 'resq failed list' shows them), or all
of them with --all. Indexes refer to the list as it is before the command:
removing 3 and 5 removes the records listed at 3 and 5.`

func (c *cli) cmdFailedRemove(ctx context.Context, args []string) error {
	fs := c.newFlags("failed remove", failedRemoveHelp).args(0, -1, "")
	var all bool
	fs.BoolVar(&all, "all", false, "delete every failure record")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	idxs, err := parseIndexes("failed remove", pos, all)
	if err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	admin := resq.NewAdmin(conn)
	if all {
		n, err := admin.ClearFailures(ctx)
		if err != nil {
			return fmt.Errorf("remove all failures on %s: %w", conn, err)
		}
		if c.g.json {
			return c.printJSON(map[string]any{"removed": n})
		}
		fmt.Fprintf(c.stdout, "removed %d %s\n", n, plural(n, "failure", "failures"))
		return nil
	}
	if err := checkIndexes(ctx, admin, idxs); err != nil {
		return err
	}
	prog := c.newProgress("removed")
	err = admin.RemoveFailures(ctx, idxs, func(done int) { prog.update(done, len(idxs)) })
	prog.finish()
	if err != nil {
		return fmt.Errorf("remove failures on %s: %w", conn, err)
	}
	if c.g.json {
		return c.printJSON(map[string]any{"removed": len(idxs), "indexes": idxs})
	}
	fmt.Fprintf(c.stdout, "removed %d %s\n", len(idxs), plural(len(idxs), "failure", "failures"))
	return nil
}

// parseIndexes reads failure indexes; exactly one of INDEX… and --all.
func parseIndexes(cmd string, pos []string, all bool) ([]int64, error) {
	switch {
	case all && len(pos) > 0:
		return nil, usagef(cmd, "give failure indexes or --all, not both")
	case all:
		return nil, nil
	case len(pos) == 0:
		return nil, usagef(cmd, "give the indexes of the failures (see 'resq failed list'), or --all")
	}
	seen := map[int64]bool{}
	var out []int64
	for _, p := range pos {
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil || n < 0 {
			return nil, usagef(cmd, "%q is not a failure index: indexes are whole numbers from 0, as 'resq failed list' shows them", p)
		}
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// checkIndexes refuses the whole command when an index is past the end, so
// that nothing is half done.
func checkIndexes(ctx context.Context, admin *resq.Admin, idxs []int64) error {
	n, err := admin.FailureCount(ctx)
	if err != nil {
		return fmt.Errorf("count failures: %w", err)
	}
	for _, i := range idxs {
		if i >= n {
			if n == 0 {
				return fmt.Errorf("failure %d: there are no failures; nothing was changed", i)
			}
			return fmt.Errorf("failure %d: there are %d failures (indexes 0 to %d); nothing was changed", i, n, n-1)
		}
	}
	return nil
}
