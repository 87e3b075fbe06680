package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

// delayFlags are resq enqueue's --in and --at.
type delayFlags struct {
	in time.Duration
	at string
}

func (d *delayFlags) register(fs *flagSet) {
	newDuration(fs.FlagSet, &d.in, "in", 0, "delay the job by `D` (e.g. 10m, 1h30m): it waits in resque-scheduler's delayed queue until a scheduler moves it")
	fs.StringVar(&d.at, "at", "", "delay the job until `TIME` (RFC 3339, e.g. 2027-01-01T09:00:00Z, or Unix seconds)")
}

// when returns the due time (zero: enqueue now).
func (d *delayFlags) when(cmd string, now time.Time) (time.Time, error) {
	if d.in != 0 && d.at != "" {
		return time.Time{}, usagef(cmd, "give --in or --at, not both")
	}
	if d.in > 0 {
		return now.Add(d.in), nil
	}
	if d.at == "" {
		return time.Time{}, nil
	}
	t, err := parseWhen(d.at)
	if err != nil {
		return time.Time{}, usagef(cmd, "--at %q: %v", d.at, err)
	}
	return t, nil
}

// parseWhen reads RFC 3339 (with or without fraction) or Unix seconds.
func parseWhen(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("not a time; use RFC 3339 with a zone, e.g. 2027-01-01T09:00:00Z or 2027-01-01T10:00:00+01:00, or Unix seconds")
}

const delayedHelp = `
Delayed jobs wait in resque-scheduler's delayed queue (delayed_queue_schedule,
delayed:<ts>) until a scheduler (resq scheduler, resq work, or Ruby's
resque-scheduler) moves them to their queue. Jobs delayed by Ruby, ActiveJob
and node-resque are listed too.

Filters (every action): --class CLASS, --queue Q, --args ARGS_JSON (equal as
JSON values), --id ID (signed or encrypted jobs), --from TIME, --to TIME (due
time bounds, RFC 3339 or Unix seconds).`

// delayedFilterFlags are the filters shared by the delayed actions.
type delayedFilterFlags struct {
	class, queue, args, id, from, to string
}

func (f *delayedFilterFlags) register(fs *flagSet) {
	fs.StringVar(&f.class, "class", "", "only jobs of `CLASS`")
	fs.StringVar(&f.queue, "queue", "", "only jobs for queue `Q`")
	fs.StringVar(&f.args, "args", "", "only jobs whose args equal `ARGS_JSON` (a JSON array)")
	fs.StringVar(&f.id, "id", "", "only the job with resq id `ID`")
	fs.StringVar(&f.from, "from", "", "only jobs due at or after `TIME`")
	fs.StringVar(&f.to, "to", "", "only jobs due at or before `TIME`")
}

func (f *delayedFilterFlags) filter(cmd string) (resq.DelayedFilter, error) {
	out := resq.DelayedFilter{Class: f.class, Queue: f.queue, ID: f.id}
	if f.args != "" {
		if err := checkArgsJSON([]byte(f.args)); err != nil {
			return out, usagef(cmd, "--args %v; it must be a JSON array, e.g. '[42]'", err)
		}
		out.Args = json.RawMessage(f.args)
	}
	for _, b := range []struct {
		flag, v string
		p       *time.Time
	}{{"from", f.from, &out.From}, {"to", f.to, &out.To}} {
		if b.v == "" {
			continue
		}
		t, err := parseWhen(b.v)
		if err != nil {
			return out, usagef(cmd, "--%s %q: %v", b.flag, b.v, err)
		}
		*b.p = t
	}
	return out, nil
}

func (f *delayedFilterFlags) empty() bool {
	return f.class == "" && f.queue == "" && f.args == "" && f.id == "" && f.from == "" && f.to == ""
}

func (c *cli) cmdDelayedCount(ctx context.Context, args []string) error {
	fs := c.newFlags("delayed count", delayedHelp)
	if _, err := fs.parse(args); err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := resq.NewAdmin(conn).DelayedCount(ctx)
	if err != nil {
		return fmt.Errorf("count delayed jobs: %w (redis %s)", err, conn)
	}
	if c.g.json {
		return c.printJSON(st)
	}
	fmt.Fprintf(c.stdout, "%d delayed jobs at %d timestamps\n", st.Jobs, st.Timestamps)
	return nil
}

func (c *cli) cmdDelayedList(ctx context.Context, args []string) error {
	fs := c.newFlags("delayed list", delayedHelp)
	var ff delayedFilterFlags
	ff.register(fs)
	var start, count int
	fs.IntVar(&start, "start", 0, "skip the first `N` matching jobs")
	fs.IntVar(&count, "count", 50, "show at most `N` jobs")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if start < 0 || count < 1 {
		return usagef("delayed list", "--start must be 0 or more and --count at least 1")
	}
	f, err := ff.filter("delayed list")
	if err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	vs, err := resq.NewAdmin(conn).Delayed(ctx, f, start, count)
	if err != nil {
		return fmt.Errorf("list delayed jobs: %w (redis %s)", err, conn)
	}
	if c.g.json {
		type row struct {
			At    time.Time    `json:"at"`
			Queue string       `json:"queue"`
			Job   resq.JobView `json:"job"`
		}
		rows := make([]row, len(vs))
		for i, v := range vs {
			rows[i] = row{At: v.At.UTC(), Queue: v.Queue, Job: v.Job}
		}
		return c.printJSON(rows)
	}
	if len(vs) == 0 {
		fmt.Fprintln(c.stdout, "no delayed jobs")
		return nil
	}
	t := newTable(c.stdout, "DUE (UTC)", "QUEUE", "CLASS", "ID", "ARGS")
	for _, v := range vs {
		q := v.Queue
		if q == "" {
			q = "(none)"
		}
		a := string(v.Job.Args)
		if v.Job.Invalid != "" {
			a = "invalid: " + v.Job.Invalid
		}
		t.row(v.At.UTC().Format(time.RFC3339), q, v.Job.Class, v.Job.ID, firstLine(a, 80))
	}
	t.flush()
	return nil
}

func (c *cli) cmdDelayedRemove(ctx context.Context, args []string) error {
	return c.delayedAction(ctx, "delayed remove", args, func(a *resq.Admin, f resq.DelayedFilter) (int64, error) {
		return a.RemoveDelayed(ctx, f)
	}, "removed")
}

func (c *cli) cmdDelayedEnqueueNow(ctx context.Context, args []string) error {
	var cq []string
	return c.delayedActionWith(ctx, "delayed enqueue-now", args, func(fs *flagSet) {
		fs.Var(stringsValue{&cq}, "class-queue", "queue for items stored without one, as `CLASS=QUEUE` (repeatable)")
	}, func(a *resq.Admin, f resq.DelayedFilter) (int64, error) {
		m, err := parseClassQueues("delayed enqueue-now", cq)
		if err != nil {
			return 0, err
		}
		n, err := a.EnqueueDelayedNow(ctx, f, m)
		return int64(n), err
	}, "enqueued")
}

func (c *cli) delayedAction(ctx context.Context, name string, args []string, do func(*resq.Admin, resq.DelayedFilter) (int64, error), verb string) error {
	return c.delayedActionWith(ctx, name, args, nil, do, verb)
}

func (c *cli) delayedActionWith(ctx context.Context, name string, args []string, extra func(*flagSet), do func(*resq.Admin, resq.DelayedFilter) (int64, error), verb string) error {
	fs := c.newFlags(name, delayedHelp)
	var ff delayedFilterFlags
	ff.register(fs)
	var all bool
	fs.BoolVar(&all, "all", false, "act on every delayed job (needed when no filter is given)")
	if extra != nil {
		extra(fs)
	}
	if _, err := fs.parse(args); err != nil {
		return err
	}
	if ff.empty() && !all {
		return usagef(name, "no filter given: name the jobs with --class, --queue, --args, --id, --from or --to, or pass --all for every delayed job")
	}
	f, err := ff.filter(name)
	if err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	n, err := do(resq.NewAdmin(conn), f)
	if err != nil {
		if _, ok := err.(*usageError); ok {
			return err
		}
		return fmt.Errorf("%s: %w after %d jobs (redis %s)", name, err, n, conn)
	}
	if c.g.json {
		return c.printJSON(map[string]int64{verb: n})
	}
	fmt.Fprintf(c.stdout, "%s %d delayed jobs\n", verb, n)
	return nil
}

// parseClassQueues reads CLASS=QUEUE pairs.
func parseClassQueues(cmd string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		class, queue, ok := strings.Cut(p, "=")
		class, queue = strings.TrimSpace(class), strings.TrimSpace(queue)
		if !ok || class == "" || queue == "" {
			return nil, usagef(cmd, "--class-queue %q: want CLASS=QUEUE, e.g. --class-queue SendFollowUpEmail=email", p)
		}
		m[class] = queue
	}
	return m, nil
}
