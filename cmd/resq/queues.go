package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

const enqueueHelp = `
Push one job of class CLASS onto queue Q, exactly as Ruby's
Resque.enqueue_to does (SADD queues, RPUSH queue:Q). ARGS_JSON is the job's
argument array as JSON; it defaults to [].

With --keyring FILE (or RESQ_KEYRING) the job is signed with the keyring's
primary signing key; --encrypt also encrypts ARGS_JSON with its encryption
key, so only a worker holding the keyring (and the job's handler) sees it.
The payload limits refuse what a worker would refuse.

With --in D or --at TIME the job is delayed: it is stored in
resque-scheduler's delayed queue and a scheduler (resq scheduler, resq work,
or Ruby's resque-scheduler) moves it to Q when due. A time in the current
second or before enqueues it now.

With --activejob, CLASS is an ActiveJob class and the job is written as
Rails' Resque adapter writes it (perform_later): class
ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper, one argument holding
ActiveJob's serialized job hash with ARGS_JSON as its arguments (objects get
ActiveJob's "_aj_symbol_keys":[] marker), so that a Rails worker runs it.
It cannot be combined with --encrypt.

Examples:
  resq enqueue --queue mail SendWelcomeEmail '[{"user_id": 42}]'
  resq enqueue --queue default Cleanup
  resq enqueue --in 10m --queue mail SendReminder '[42]'
  resq enqueue --at 2027-01-01T09:00:00Z --queue mail NewYear
  resq enqueue --keyring keys.json --encrypt --queue pay Charge '[{"card": "4111…"}]'
  resq enqueue --activejob --queue mailers WelcomeJob '[{"user_id": 42}]'`

func (c *cli) cmdEnqueue(ctx context.Context, args []string) error {
	fs := c.newFlags("enqueue", enqueueHelp).args(1, 2, "CLASS")
	var queue, keyringPath string
	var encrypt, activeJob bool
	var lim limitFlags
	fs.StringVar(&queue, "queue", "", "the `QUEUE` to push to (required)")
	c.keyringFlag(fs, &keyringPath, "to sign the job with (and encrypt, with --encrypt)")
	fs.BoolVar(&encrypt, "encrypt", false, "encrypt the args with the keyring's encryption key (AES-256-GCM)")
	fs.BoolVar(&activeJob, "activejob", false, "CLASS is an ActiveJob class: write the job as Rails' Resque adapter does, for a Rails worker")
	var maxLen int64
	fs.Int64Var(&maxLen, "max-queue-length", 0, "refuse to push when the queue already holds `N` jobs (checked and pushed atomically; 0: no cap)")
	lim.register(fs, "refuse")
	var delay delayFlags
	delay.register(fs)
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if queue == "" {
		return usagef("enqueue", "missing --queue Q (usage: resq enqueue --queue Q CLASS [ARGS_JSON])")
	}
	at, err := delay.when("enqueue", time.Now())
	if err != nil {
		return err
	}
	if maxLen < 0 {
		return usagef("enqueue", "--max-queue-length must not be negative")
	}
	limits, err := lim.limits("enqueue")
	if err != nil {
		return err
	}
	keyring, err := loadKeyring("enqueue", keyringPath)
	if err != nil {
		return err
	}
	if keyring.CanVerify() && !keyring.CanSign() {
		return usagef("enqueue", "--keyring %s cannot sign (a workers' keyring made by 'resq keys public'?): workers would refuse its jobs as unsigned; producers use the keyring made by 'resq keys new'", keyringPath)
	}
	if encrypt && activeJob {
		return usagef("enqueue", "--activejob cannot be combined with --encrypt: the Rails worker that runs the job cannot decrypt it")
	}
	if encrypt && keyring == nil {
		return usagef("enqueue", "--encrypt needs --keyring FILE (or RESQ_KEYRING) with an encryption key (make one with: resq keys new --out FILE)")
	}
	if encrypt && !keyring.CanEncrypt() {
		return usagef("enqueue", "--encrypt: keyring %s has no encryption primary", keyringPath)
	}
	class := pos[0]
	raw := json.RawMessage("[]")
	if len(pos) == 2 {
		raw = json.RawMessage(pos[1])
		if err := checkArgsJSON(raw); err != nil {
			return usagef("enqueue", "ARGS_JSON %v; it must be a JSON array, e.g. '[42, \"text\", {\"key\": \"value\"}]' (quote it for the shell)", err)
		}
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	ccfg := resq.ClientConfig{Logger: c.logger, Keyring: keyring, Limits: limits}
	if maxLen > 0 {
		ccfg.QueueCaps = map[string]int64{queue: maxLen}
	}
	client, err := resq.NewClient(conn, ccfg)
	if err != nil {
		return err
	}
	e, err := client.EnqueueWith(ctx, resq.EnqueueParams{Queue: queue, Class: class, RawArgs: raw, Encrypt: encrypt, At: at, ActiveJob: activeJob})
	if errors.Is(err, resq.ErrQueueFull) {
		n, _ := resq.NewAdmin(conn).QueueSize(ctx, queue)
		return fmt.Errorf("queue %s is full (%d jobs, cap %d); the job was NOT enqueued (redis %s)", queue, max(n, maxLen), maxLen, conn)
	}
	if err != nil {
		return fmt.Errorf("%w; %s (redis %s)", err, notEnqueuedHint(err), conn)
	}
	signed := keyring.CanSign()
	delayed := at.Unix() > time.Now().Unix()
	if c.g.json {
		out := map[string]any{"id": e.ID, "class": e.Class, "queue": e.Queue, "bytes": e.Size, "signed": signed, "encrypted": encrypt}
		if delayed {
			out["at"] = time.Unix(at.Unix(), 0).UTC()
		}
		if activeJob {
			out["job_class"] = class
		}
		return c.printJSON(out)
	}
	if activeJob {
		e.Class = class + " (via ActiveJob)"
	}
	var how []string
	if signed {
		how = append(how, "signed")
	}
	if encrypt {
		how = append(how, "encrypted")
	}
	suffix := ""
	if len(how) > 0 {
		suffix = " (" + strings.Join(how, ", ") + ")"
	}
	if delayed {
		fmt.Fprintf(c.stdout, "delayed %s for %s until %s%s\n", e.Class, e.Queue, time.Unix(at.Unix(), 0).UTC().Format(time.RFC3339), suffix)
		return nil
	}
	fmt.Fprintf(c.stdout, "enqueued %s to %s id=%s%s\n", e.Class, e.Queue, e.ID, suffix)
	return nil
}

// checkArgsJSON says what is wrong with ARGS_JSON without repeating it (it
// may hold secrets).
func checkArgsJSON(raw []byte) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return fmt.Errorf("is not valid JSON (error at byte %d)", syn.Offset)
		}
		return fmt.Errorf("is not valid JSON (%v)", err)
	}
	if _, ok := v.([]any); !ok {
		return fmt.Errorf("is JSON but not an array (wrap a single value in [ ])")
	}
	return nil
}

// notEnqueuedHint says whether the job may have reached Redis: when the
// connection could not be made, or Redis refused the command, it did not;
// a timeout after sending leaves it unknown; an unconfirmed one
// (replica_acks) is on the master.
func notEnqueuedHint(err error) string {
	var re interface{ RedisError() }
	var op *net.OpError
	var ne net.Error
	switch {
	case errors.Is(err, resq.ErrNotReplicated):
		return "the job IS on the master and may still run; enqueueing it again may run it twice"
	case errors.As(err, &op) && op.Op == "dial":
		return "the job was NOT enqueued"
	case errors.As(err, &re):
		return "the job was NOT enqueued"
	case errors.As(err, &ne) && ne.Timeout():
		return "the job may or may not have been enqueued (Redis did not answer in time); check with 'resq peek'"
	default:
		return "the job was NOT enqueued"
	}
}

func (c *cli) cmdQueues(ctx context.Context, args []string) error {
	fs := c.newFlags("queues", "List every queue in the queues set, sorted by name, with its length.").args(0, 0, "")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	qs, err := resq.NewAdmin(conn).Queues(ctx)
	if err != nil {
		return fmt.Errorf("list queues on %s: %w", conn, err)
	}
	if c.g.json {
		if qs == nil {
			qs = []resq.QueueInfo{}
		}
		return c.printJSON(qs)
	}
	if len(qs) == 0 {
		fmt.Fprintf(c.stdout, "no queues in %s\n", conn)
		return nil
	}
	t := newTable(c.stdout, "NAME", "SIZE")
	for _, q := range qs {
		t.row(q.Name, strconv.FormatInt(q.Size, 10))
	}
	t.flush()
	return nil
}

const peekHelp = `
Show jobs waiting in QUEUE without taking them: position, class, id,
enqueued time and args (as JSON). Position 0 is the next job to run.`

func (c *cli) cmdPeek(ctx context.Context, args []string) error {
	fs := c.newFlags("peek", peekHelp).args(1, 1, "QUEUE")
	var start, count int64
	fs.Int64Var(&start, "start", 0, "position `N` of the first job to show (0 is the next to run)")
	fs.Int64Var(&count, "count", 10, "how many jobs (`N`) to show")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	if start < 0 || count < 1 {
		return usagef("peek", "--start must be 0 or more and --count 1 or more")
	}
	queue := pos[0]
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	admin := resq.NewAdmin(conn)
	jobs, err := admin.Peek(ctx, queue, start, count)
	if err != nil {
		return fmt.Errorf("peek at queue %s on %s: %w", queue, conn, err)
	}
	if c.g.json {
		if jobs == nil {
			jobs = []resq.JobView{}
		}
		return c.printJSON(jobs)
	}
	size, err := admin.QueueSize(ctx, queue)
	if err != nil {
		return fmt.Errorf("size of queue %s: %w", queue, err)
	}
	if len(jobs) == 0 {
		fmt.Fprintf(c.stdout, "queue %s has %d jobs; none at position %d or later\n", queue, size, start)
		return nil
	}
	t := newTable(c.stdout, "#", "CLASS", "ID", "ENQUEUED_AT", "ARGS")
	for i, j := range jobs {
		class, args := j.Class, compactJSON(j.Args)
		if j.Invalid != "" {
			class, args = orDash(class), fmt.Sprintf("(invalid job: %s) %s", j.Invalid, firstLine(j.Raw, 200))
		}
		enq := "-"
		if j.EnqueuedAt != nil {
			enq = j.EnqueuedAt.Local().Format("2006-01-02 15:04:05")
		}
		t.row(strconv.FormatInt(start+int64(i), 10), class, orDash(j.ID), enq, args)
	}
	t.flush()
	if shown := start + int64(len(jobs)); shown < size {
		fmt.Fprintf(c.stdout, "(%d of %d jobs shown; --start %d for more)\n", len(jobs), size, shown)
	}
	return nil
}

const clearHelp = `
Delete every job waiting in QUEUE. The queue stays listed (as resque-web's
"clear"), unless --remove also removes it from the queues set (as
Resque.remove_queue).`

func (c *cli) cmdClear(ctx context.Context, args []string) error {
	fs := c.newFlags("clear", clearHelp).args(1, 1, "QUEUE")
	var remove bool
	fs.BoolVar(&remove, "remove", false, "also remove the queue from the queues set")
	pos, err := fs.parse(args)
	if err != nil {
		return err
	}
	queue := pos[0]
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	admin := resq.NewAdmin(conn)
	n, err := admin.ClearQueue(ctx, queue)
	if err != nil {
		return fmt.Errorf("clear queue %s on %s: %w", queue, conn, err)
	}
	if remove {
		if err := admin.RemoveQueue(ctx, queue); err != nil {
			return fmt.Errorf("remove queue %s (its %d jobs were deleted): %w", queue, n, err)
		}
	}
	if c.g.json {
		return c.printJSON(map[string]any{"queue": queue, "deleted": n, "removed": remove})
	}
	msg := fmt.Sprintf("deleted %d %s from queue %s", n, plural(n, "job", "jobs"), queue)
	if remove {
		msg += " and removed the queue"
	}
	fmt.Fprintln(c.stdout, msg)
	return nil
}

func plural[N int | int64](n N, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
