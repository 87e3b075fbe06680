package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/resq-go/resq"
)

const scheduleHelp = `
Recurring schedules are resque-scheduler's: static ones from a schedule file
(resq scheduler --schedule FILE) and persistent ones in Redis
(persistent_schedules), which Ruby's Resque.set_schedule(name, config,
persist: true) writes too. The master scheduler (resq's or Ruby's) applies a
set or remove within a second, without a restart. A persistent schedule wins
over a static one of the same name.

Give --schedule FILE to list or enqueue the static schedules of that file.`

const scheduleSetHelp = scheduleHelp + `

set takes the config as flags, or as resque-scheduler's JSON (every key Ruby
reads: cron, every, class, queue, args, description, rails_env, …):

  resq schedule set daily_report --cron '0 9 * * *' --class Report --queue reports --args '["pdf"]'
  resq schedule set heartbeat --every 30s --class Beat --queue beats
  resq schedule set daily_report --json '{"cron":"0 9 * * * Europe/Berlin","class":"Report","queue":"reports"}'

(With --json the config is the argument after the name; the output is JSON.)
A cron has 5 fields, or 6 with seconds first, and an optional zone after;
every is a rufus duration (30s, 1h30m, 2d).`

// loadStatic reads --schedule FILE for command cmd (nil when not given).
func loadStatic(cmd, path string) (*resq.Schedule, error) {
	if path == "" {
		return nil, nil
	}
	s, err := resq.LoadScheduleFile(path)
	if err != nil {
		return nil, usagef(cmd, "--schedule: %v", err)
	}
	return s, nil
}

func (c *cli) cmdScheduleList(ctx context.Context, args []string) error {
	fs := c.newFlags("schedule list", scheduleHelp)
	var file string
	fs.StringVar(&file, "schedule", "", "also list the static schedules of `FILE`")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	static, err := loadStatic("schedule list", file)
	if err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	vs, err := resq.NewAdmin(conn).Schedules(ctx, static)
	if err != nil {
		return fmt.Errorf("list schedules: %w (redis %s)", err, conn)
	}
	if c.g.json {
		for i := range vs {
			vs[i].Next, vs[i].LastRun = utc(vs[i].Next), utc(vs[i].LastRun)
		}
		return c.printJSON(vs)
	}
	if len(vs) == 0 {
		fmt.Fprintln(c.stdout, "no schedules (add one with resq schedule set, or give --schedule FILE)")
		return nil
	}
	t := newTable(c.stdout, "NAME", "SOURCE", "WHEN", "CLASS", "QUEUE", "NEXT (UTC)", "LAST (UTC)", "DESCRIPTION")
	for _, v := range vs {
		when := v.Cron
		if when == "" && v.Every != "" {
			when = "every " + v.Every
		}
		if v.Problem != "" {
			t.row(v.Name, v.Source, "invalid: "+firstLine(v.Problem, 80), "-", "-", "-", timeOrDash(v.LastRun), "-")
			continue
		}
		q := v.Queue
		if q == "" {
			q = "(class queue)"
		}
		desc := v.Description
		if len(v.Envs) > 0 {
			desc = fmt.Sprintf("[env %v] %s", v.Envs, desc)
		}
		t.row(v.Name, v.Source, orDash(when), v.Class, q, timeOrDash(v.Next), timeOrDash(v.LastRun), orDash(firstLine(desc, 60)))
	}
	t.flush()
	return nil
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func timeOrDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (c *cli) cmdScheduleSet(ctx context.Context, args []string) error {
	fs := c.newFlags("schedule set", scheduleSetHelp).args(1, 2, "the schedule NAME")
	var sc resq.ScheduleConfig
	var rawArgs string
	fs.StringVar(&sc.Cron, "cron", "", "fire on the cron line `CRON` (5 or 6 fields, optional zone after)")
	fs.StringVar(&sc.Every, "every", "", "fire every `D` (a rufus duration: 30s, 1h30m, 2d)")
	fs.StringVar(&sc.Class, "class", "", "the job's `CLASS`")
	fs.StringVar(&sc.Queue, "queue", "", "queue `Q` (default: the scheduler's --class-queue for the class)")
	fs.StringVar(&rawArgs, "args", "", "the job's arguments as `JSON` (an array is the argument list)")
	fs.StringVar(&sc.Description, "description", "", "a `TEXT` shown by resq schedule list and resque-web")
	fs.StringVar(&sc.RailsEnv, "rails-env", "", "only fire in schedulers whose --env is in `ENVS` (comma-separated)")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	name := pos[0]
	flagged := sc.Cron != "" || sc.Every != "" || sc.Class != "" || sc.Queue != "" || sc.Description != "" || sc.RailsEnv != "" || rawArgs != ""
	if len(pos) == 2 && flagged {
		return usagef("schedule set", "give the config as flags or as JSON, not both")
	}
	if len(pos) == 1 && !flagged {
		return usagef("schedule set", "give the config: --cron or --every with --class (and --queue), or --json '{…}'")
	}
	if rawArgs != "" {
		if !json.Valid([]byte(rawArgs)) {
			return usagef("schedule set", "--args is not valid JSON; e.g. --args '[1,\"x\"]'")
		}
		sc.Args = json.RawMessage(rawArgs)
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	a := resq.NewAdmin(conn)
	if len(pos) == 2 {
		err = a.SetScheduleJSON(ctx, name, []byte(pos[1]))
	} else {
		err = a.SetSchedule(ctx, name, sc)
	}
	if errors.Is(err, resq.ErrInvalidSchedule) {
		return usagef("schedule set", "%v", err)
	}
	if err != nil {
		return fmt.Errorf("set schedule %q: %w (redis %s)", name, err, conn)
	}
	if c.g.json {
		return c.printJSON(map[string]any{"name": name, "set": true})
	}
	fmt.Fprintf(c.stdout, "schedule %s set (persistent; the master scheduler applies it within a second)\n", name)
	return nil
}

func (c *cli) cmdScheduleRemove(ctx context.Context, args []string) error {
	fs := c.newFlags("schedule remove", scheduleHelp).args(1, 1, "the schedule NAME")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	ok, err := resq.NewAdmin(conn).RemoveSchedule(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("remove schedule %q: %w (redis %s)", pos[0], err, conn)
	}
	if c.g.json {
		return c.printJSON(map[string]any{"name": pos[0], "removed": ok})
	}
	if !ok {
		return fmt.Errorf("no persistent schedule %q (static schedules live in the schedule file: edit it and restart the schedulers)", pos[0])
	}
	fmt.Fprintf(c.stdout, "schedule %s removed\n", pos[0])
	return nil
}

func (c *cli) cmdScheduleEnqueueNow(ctx context.Context, args []string) error {
	fs := c.newFlags("schedule enqueue-now", scheduleHelp+`

enqueue-now pushes the schedule's job now, as resque-web's "Queue now": its
ticks and last run are not touched.`).args(1, 1, "the schedule NAME")
	var file, keyringPath string
	var cq []string
	fs.StringVar(&file, "schedule", "", "static schedules `FILE` (for a name that is not persistent)")
	fs.Var(stringsValue{&cq}, "class-queue", "queue for a schedule without one, as `CLASS=QUEUE` (repeatable)")
	c.keyringFlag(fs, &keyringPath, "to sign the job with")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	static, err := loadStatic("schedule enqueue-now", file)
	if err != nil {
		return err
	}
	m, err := parseClassQueues("schedule enqueue-now", cq)
	if err != nil {
		return err
	}
	keyring, err := loadKeyring("schedule enqueue-now", keyringPath)
	if err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{Keyring: keyring, Logger: c.logger})
	if err != nil {
		return err
	}
	e, err := resq.NewAdmin(conn).EnqueueScheduleNow(ctx, static, pos[0], client, m)
	if errors.Is(err, resq.ErrNoSuchSchedule) || errors.Is(err, resq.ErrInvalidSchedule) {
		return usagef("schedule enqueue-now", "%v", err)
	}
	if err != nil {
		return fmt.Errorf("enqueue schedule %q: %w", pos[0], err)
	}
	if c.g.json {
		return c.printJSON(map[string]any{"name": pos[0], "id": e.ID, "class": e.Class, "queue": e.Queue, "bytes": e.Size})
	}
	fmt.Fprintf(c.stdout, "enqueued %s on %s (schedule %s)\n", e.Class, e.Queue, pos[0])
	return nil
}
