// Command resq is the command-line tool of resq: it runs workers (including
// external programs as job handlers with --exec), enqueues jobs, and inspects
// and manages queues, failures, workers and stats in a Resque-compatible
// Redis. See docs/cli.md.
//
// The command tree is built per invocation by run, which takes its output
// writers, environment and signal source as arguments, so tests run every
// command in-process. There is no package-level mutable state.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/resq-go/resq"
)

func main() {
	// When resq work re-executes itself as the limit shim of a job, this
	// applies the limits and execs the job's program; otherwise it returns.
	resq.RunShimIfRequested()
	// go-redis logs dial failures through a process-wide logger; the same
	// errors reach the commands, which report them once.
	redis.SetLogger(discardRedisLog{})
	sys := system{
		Stdout:           os.Stdout,
		Stderr:           os.Stderr,
		Env:              os.Environ(),
		StderrIsTerminal: isTerminal(os.Stderr),
		Signals: func(sigs ...os.Signal) (<-chan os.Signal, func()) {
			ch := make(chan os.Signal, 8)
			signal.Notify(ch, sigs...)
			return ch, func() { signal.Stop(ch) }
		},
	}
	os.Exit(run(context.Background(), os.Args[1:], sys))
}

type discardRedisLog struct{}

func (discardRedisLog) Printf(context.Context, string, ...any) {}

// system is everything a command may touch outside its arguments.
type system struct {
	Stdout, Stderr io.Writer
	// Env is the environment as KEY=VALUE pairs (os.Environ's form).
	Env []string
	// StderrIsTerminal turns on progress output for long operations.
	StderrIsTerminal bool
	// Signals subscribes to signals; stop unsubscribes. Commands that do not
	// handle signals never call it, so Ctrl-C keeps its default meaning for
	// them. Nil: no signals are ever delivered.
	Signals func(sigs ...os.Signal) (ch <-chan os.Signal, stop func())
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a runtime error: Redis, a missing record, …
	exitUsage   = 2 // bad command line
)

// cli is one invocation of the tool.
type cli struct {
	stdout io.Writer // both are safe for concurrent writes
	stderr io.Writer
	env    map[string]string
	sys    system
	g      globals
	logger *slog.Logger
}

// usageError is a bad command line: exit 2, with a hint at the help.
type usageError struct {
	cmd string // "queues", "failed retry"; empty for the top level
	msg string
}

func (e *usageError) Error() string { return e.msg }

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// exitCode ends the command with a code; its message (if any) was printed.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, sys system) int {
	if sys.Signals == nil {
		sys.Signals = func(...os.Signal) (<-chan os.Signal, func()) { return nil, func() {} }
	}
	c := &cli{
		stdout: &lockedWriter{w: orDiscard(sys.Stdout)},
		stderr: &lockedWriter{w: orDiscard(sys.Stderr)},
		env:    envMap(sys.Env),
		sys:    sys,
	}
	c.logger = slog.New(slog.NewTextHandler(c.stderr, nil))
	err := c.dispatch(ctx, args)
	return c.report(err)
}

// report prints err the way its kind asks and returns the exit code.
func (c *cli) report(err error) int {
	var ue *usageError
	var code exitCode
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &code):
		return int(code)
	case errors.As(err, &ue):
		if ue.cmd == "" {
			fmt.Fprintf(c.stderr, "resq: %s\n", ue.msg)
		} else {
			fmt.Fprintf(c.stderr, "resq %s: %s\nrun 'resq %s --help' to see its usage\n", ue.cmd, ue.msg, ue.cmd)
		}
		return exitUsage
	default:
		fmt.Fprintf(c.stderr, "resq: %v\n", err)
		return exitFailure
	}
}

// command is one entry of the command tree.
type command struct {
	name     string // "queues", "failed list"
	synopsis string // arguments after the name
	summary  string // one line for 'resq help'
	run      func(c *cli, ctx context.Context, args []string) error
}

// commands is the command tree, in the order 'resq help' lists it.
func commands() []command {
	return []command{
		{"work", "--queues Q,… --exec CLASS=PATH … [flags]", "run a worker; --exec runs a program per job", (*cli).cmdWork},
		{"enqueue", "--queue Q CLASS [ARGS_JSON] [--in D | --at TIME]", "push one job (ARGS_JSON is a JSON array, default []), now or delayed", (*cli).cmdEnqueue},
		{"delayed list", "[filters] [--start N] [--count N]", "list delayed jobs by due time", (*cli).cmdDelayedList},
		{"delayed count", "", "count delayed jobs and timestamps", (*cli).cmdDelayedCount},
		{"delayed remove", "(filters | --all)", "delete delayed jobs", (*cli).cmdDelayedRemove},
		{"delayed enqueue-now", "(filters | --all)", "move delayed jobs to their queues now", (*cli).cmdDelayedEnqueueNow},
		{"scheduler", "[--schedule FILE] [--env ENV] [--lock-prefix P] [--class-queue CLASS=Q]… [flags]", "move due delayed jobs and fire recurring schedules (resque-scheduler's master lock)", (*cli).cmdScheduler},
		{"schedule list", "[--schedule FILE]", "list recurring schedules with next and last runs", (*cli).cmdScheduleList},
		{"schedule set", "NAME (--cron C | --every D) --class C [--queue Q] [--args JSON] | NAME --json CONFIG", "store a persistent schedule, as Ruby's set_schedule(persist: true)", (*cli).cmdScheduleSet},
		{"schedule remove", "NAME", "remove a persistent schedule", (*cli).cmdScheduleRemove},
		{"schedule enqueue-now", "NAME [--schedule FILE] [--keyring FILE]", "enqueue a schedule's job now (its ticks are not touched)", (*cli).cmdScheduleEnqueueNow},
		{"queues", "", "list queues and their sizes", (*cli).cmdQueues},
		{"peek", "QUEUE [--start N] [--count N]", "show jobs waiting in a queue", (*cli).cmdPeek},
		{"clear", "QUEUE [--remove]", "delete every job waiting in a queue", (*cli).cmdClear},
		{"failed list", "[--start N] [--count N]", "list failure records", (*cli).cmdFailedList},
		{"failed retry", "(INDEX… | --all)", "requeue failed jobs (records stay, marked retried)", (*cli).cmdFailedRetry},
		{"failed remove", "(INDEX… | --all)", "delete failure records", (*cli).cmdFailedRemove},
		{"workers", "", "list registered workers and what they are doing", (*cli).cmdWorkers},
		{"prune", "[--stale D] [--dead-jobs requeue|fail]", "unregister dead workers and recover their jobs", (*cli).cmdPrune},
		{"stats", "", "the numbers of Resque.info", (*cli).cmdStats},
		{"acl", "[--role R,…] [--no-scripting] [--aclfile]", "print least-privilege Redis ACL users per role for the namespace", (*cli).cmdACL},
		{"keys new", "--out FILE [--type ed25519|hmac-sha256] [--force]", "make a keyring: a signing and an encryption key (mode 0600)", (*cli).cmdKeysNew},
		{"keys list", "--keyring FILE", "show a keyring's key ids, types and primaries (never secrets)", (*cli).cmdKeysList},
		{"keys rotate", "--keyring FILE", "add new primary keys; old ones stay to verify and decrypt", (*cli).cmdKeysRotate},
		{"keys public", "--keyring FILE --out FILE [--force]", "write the workers' keyring: Ed25519 public keys only", (*cli).cmdKeysPublic},
		{"keys reencrypt", "--keyring FILE [--queue Q]…", "move queued and failed jobs onto the primary keys", (*cli).cmdKeysReencrypt},
		{"keys retire", "--keyring FILE KEYID [--force]", "remove a key that no job in Redis uses any more", (*cli).cmdKeysRetire},
		{"web", "[--listen ADDR] [--users FILE] [--admins NAMES] [--prefix P] [--metrics-listen ADDR]", "serve the dashboard (sign-in, roles, CSRF, /metrics)", (*cli).cmdWeb},
		{"demo", "[--jobs N] [--duration D] [--listen ADDR]", "a working system in one command (embedded Redis by default)", (*cli).cmdDemo},
		{"version", "", "version of resq, Go and every dependency", (*cli).cmdVersion},
		{"help", "[COMMAND]", "show help for resq or for one command", (*cli).cmdHelp},
	}
}

func findCommand(name string) (command, bool) {
	for _, cmd := range commands() {
		if cmd.name == name {
			return cmd, true
		}
	}
	return command{}, false
}

// dispatch parses the global flags before the command name, then runs it.
func (c *cli) dispatch(ctx context.Context, args []string) error {
	if err := c.g.init(c.env); err != nil {
		return err
	}
	fs := flag.NewFlagSet("resq", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.g.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.printMainHelp(c.stdout)
			return err
		}
		return usagef("", "%s; run 'resq help' to see the commands and global flags", flagErrText(err))
	}
	c.g.noteExplicit(fs)
	rest := fs.Args()
	if len(rest) == 0 {
		c.printMainHelp(c.stderr)
		return exitCode(exitUsage)
	}
	name, rest := rest[0], rest[1:]
	group := ""
	if actions := groupActions(name); actions != nil {
		group = name
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			if len(rest) > 0 && isHelpFlag(rest[0]) {
				c.printGroupHelp(c.stdout, group)
				return nil
			}
			c.printGroupHelp(c.stderr, group)
			return usagef("", "'resq %s' needs an action: %s (e.g. 'resq %s %s')", group, orList(actions), group, actions[0])
		}
		name, rest = group+" "+rest[0], rest[1:]
	}
	cmd, ok := findCommand(name)
	if !ok {
		if group != "" {
			return usagef("", "unknown action %q for 'resq %s'; use %s", strings.TrimPrefix(name, group+" "), group, orList(groupActions(group)))
		}
		hint := ""
		if s := suggest(name); s != "" {
			hint = fmt.Sprintf(" (did you mean %q?)", s)
		}
		return usagef("", "unknown command %q%s; run 'resq help' to see the commands", name, hint)
	}
	return cmd.run(c, ctx, rest)
}

// groupActions returns the actions of a command group ("failed", "keys")
// in help order, or nil when name is not a group.
func groupActions(name string) []string {
	var out []string
	for _, cmd := range commands() {
		if g, action, ok := strings.Cut(cmd.name, " "); ok && g == name {
			out = append(out, action)
		}
	}
	return out
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) <= 1 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func isHelpFlag(s string) bool { return s == "-h" || s == "-help" || s == "--help" || s == "--h" }

// suggest returns the command closest to a mistyped name, if any is close.
func suggest(name string) string {
	best, bestD := "", 3
	for _, cmd := range commands() {
		first := strings.Fields(cmd.name)[0]
		if d := editDistance(name, first); d < bestD {
			best, bestD = first, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(rb)]
}

// cmdHelp prints the overview or one command's usage.
func (c *cli) cmdHelp(_ context.Context, args []string) error {
	if len(args) == 0 {
		c.printMainHelp(c.stdout)
		return nil
	}
	name := strings.Join(args, " ")
	if groupActions(name) != nil {
		c.printGroupHelp(c.stdout, name)
		return nil
	}
	cmd, ok := findCommand(name)
	if !ok {
		return usagef("", "no help for unknown command %q; run 'resq help' to see the commands", name)
	}
	return cmd.run(c, context.Background(), []string{"--help"})
}

func (c *cli) printMainHelp(w io.Writer) {
	var b strings.Builder
	b.WriteString("resq: Resque-compatible background jobs (Ruby Resque 3 and node-resque share the same Redis)\n\n")
	b.WriteString("Usage: resq [global flags] COMMAND [flags] [arguments]\n\nCommands:\n")
	width := 0
	for _, cmd := range commands() {
		width = max(width, len(cmd.name))
	}
	for _, cmd := range commands() {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, cmd.name, cmd.summary)
	}
	b.WriteString("\nGlobal flags (before or after the command name):\n")
	fs := flag.NewFlagSet("resq", flag.ContinueOnError)
	c.g.register(fs)
	writeFlags(&b, fs, nil)
	b.WriteString("\nRun 'resq help COMMAND' or 'resq COMMAND --help' for a command's flags.\n")
	b.WriteString("Exit codes: 0 success, 1 runtime error (Redis, missing record, …), 2 bad command line.\n")
	io.WriteString(w, b.String())
}

func (c *cli) printGroupHelp(w io.Writer, group string) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: resq %s ACTION [flags]\n\nActions:\n", group)
	for _, cmd := range commands() {
		if strings.HasPrefix(cmd.name, group+" ") {
			fmt.Fprintf(&b, "  %-14s %s\n", strings.TrimPrefix(cmd.name, group+" "), cmd.summary)
		}
	}
	fmt.Fprintf(&b, "\nRun 'resq %s ACTION --help' for an action's flags.\n", group)
	io.WriteString(w, b.String())
}

func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// lockedWriter serialises writes from the logger, progress output and job
// event lines written by several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
