package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

// globals are the flags every command accepts, before or after its name.
type globals struct {
	redis     redisURLValue
	namespace string
	json      bool
	level     levelValue
	conn      connFlags // TLS, Sentinel, Cluster (conn_flags.go)

	// explicit records what the user chose (flag or environment) rather
	// than a default: resq demo starts its own Redis only when the Redis
	// URL was not given, and uses its own namespace unless one was.
	redisExplicit, namespaceExplicit, levelExplicit bool
}

// init sets the defaults from the environment.
func (g *globals) init(env map[string]string) error {
	g.redis = redisURLValue(resq.DefaultRedisURL)
	if v := env["REDIS_URL"]; v != "" {
		g.redis, g.redisExplicit = redisURLValue(v), true
	}
	if g.conn.init(env) {
		g.redisExplicit = true
	}
	g.namespace = resq.DefaultNamespace
	if v := env["RESQ_NAMESPACE"]; v != "" {
		g.namespace, g.namespaceExplicit = v, true
	}
	g.level = levelValue(slog.LevelInfo)
	if v := env["RESQ_LOG_LEVEL"]; v != "" {
		if err := g.level.Set(v); err != nil {
			return usagef("", "RESQ_LOG_LEVEL=%s: %v", v, err)
		}
		g.levelExplicit = true
	}
	if v := env["RESQ_JSON"]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return usagef("", "RESQ_JSON=%s: want true or false", v)
		}
		g.json = b
	}
	return nil
}

// register adds the global flags to fs with their current values as
// defaults, so a command's flag set does not undo what was parsed before
// the command name.
func (g *globals) register(fs *flag.FlagSet) {
	fs.Var(&g.redis, "redis", "Redis `URL`: redis://[user:password@]host:port/db, rediss:// for TLS, redis+sentinel://S1:26379,S2:26379/MASTER/db, redis+cluster://N1:port,N2:port; ?replica_acks=N makes enqueues wait for N replicas (env REDIS_URL)")
	fs.StringVar(&g.namespace, "namespace", g.namespace, "key namespace `NS`, as Ruby's Resque.redis.namespace (env RESQ_NAMESPACE)")
	fs.BoolVar(&g.json, "json", g.json, "machine output: one JSON document on stdout (env RESQ_JSON)")
	fs.Var(&g.level, "log-level", "log `LEVEL` on stderr: debug, info, warn or error (env RESQ_LOG_LEVEL)")
	g.conn.register(fs)
}

func isGlobalFlag(name string) bool {
	switch name {
	case "redis", "namespace", "json", "log-level":
		return true
	}
	return isConnFlag(name)
}

// noteExplicit records the global flags set on fs's command line.
func (g *globals) noteExplicit(fs *flag.FlagSet) {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "redis", "sentinel-master", "sentinel-addrs", "cluster-addrs":
			g.redisExplicit = true
		case "namespace":
			g.namespaceExplicit = true
		case "log-level":
			g.levelExplicit = true
		}
	})
}

// redisURLValue is a Redis URL whose String never shows a password (it is
// what flag's help output prints as the default).
type redisURLValue string

func (v *redisURLValue) String() string { return redactURL(string(*v)) }
func (v *redisURLValue) Set(s string) error {
	if s == "" {
		return errors.New("empty URL")
	}
	*v = redisURLValue(s)
	return nil
}

func redactURL(s string) string {
	if strings.Contains(s, "sentinel_password=") {
		return "(URL hidden: it holds a sentinel password)"
	}
	u, err := url.Parse(s)
	if err != nil {
		if strings.Contains(s, "@") {
			return "(unparsable URL hidden: it may hold a password)"
		}
		return s
	}
	if u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

type levelValue slog.Level

func (v *levelValue) String() string { return strings.ToLower(slog.Level(*v).String()) }
func (v *levelValue) Set(s string) error {
	switch strings.ToLower(s) {
	case "debug":
		*v = levelValue(slog.LevelDebug)
	case "info":
		*v = levelValue(slog.LevelInfo)
	case "warn", "warning":
		*v = levelValue(slog.LevelWarn)
	case "error":
		*v = levelValue(slog.LevelError)
	default:
		return errors.New("want debug, info, warn or error")
	}
	return nil
}

// durationValue parses time.ParseDuration syntax; a bare number is seconds.
type durationValue struct{ d *time.Duration }

func newDuration(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Var(durationValue{p}, name, usage)
}

func (v durationValue) String() string {
	if v.d == nil || *v.d == 0 {
		return "0"
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n < 0 || math.IsNaN(n) || n > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("%q is not a usable number of seconds", s)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use e.g. 30s, 1m30s, 250ms, or a number of seconds)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// sizeValue parses byte sizes: 1000, 64KiB, 256MiB, 1GB, 1.5GiB.
type sizeValue struct{ n *int64 }

func newSize(fs *flag.FlagSet, p *int64, name string, def int64, usage string) {
	*p = def
	fs.Var(sizeValue{p}, name, usage)
}

func (v sizeValue) String() string {
	if v.n == nil {
		return "0"
	}
	return formatSize(*v.n)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v.n = n
	return nil
}

var errSizeSyntax = errors.New("use a number of bytes with an optional unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. 256MiB")

func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, fmt.Errorf("%q: %w", s, errSizeSyntax)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q; %w", s, unit, errSizeSyntax)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, errSizeSyntax)
	}
	b := f * mult
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	if b != math.Trunc(b) {
		return 0, fmt.Errorf("%q is not a whole number of bytes", s)
	}
	return int64(b), nil
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.FormatInt(n, 10)
}

// stringsValue collects a repeatable flag.
type stringsValue struct{ p *[]string }

func (v stringsValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, " ")
}
func (v stringsValue) Set(s string) error { *v.p = append(*v.p, s); return nil }

// deadJobsValue is requeue|fail.
type deadJobsValue struct{ p *resq.DeadJobPolicy }

func (v deadJobsValue) String() string {
	if v.p != nil && *v.p == resq.FailDeadJobs {
		return "fail"
	}
	return "requeue"
}

func (v deadJobsValue) Set(s string) error {
	switch s {
	case "requeue":
		*v.p = resq.RequeueDeadJobs
	case "fail":
		*v.p = resq.FailDeadJobs
	default:
		return errors.New("want requeue (run the job again) or fail (record a Resque::DirtyExit failure, as Ruby does)")
	}
	return nil
}

// flagSet is one command's flags plus the global ones.
type flagSet struct {
	*flag.FlagSet
	c        *cli
	cmd      command
	long     string // description shown by --help
	maxArgs  int    // -1: any number
	minArgs  int
	argsHelp string // "QUEUE", shown in errors
}

func (c *cli) newFlags(name, long string) *flagSet {
	cmd, _ := findCommand(name)
	fs := flag.NewFlagSet("resq "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &flagSet{FlagSet: fs, c: c, cmd: cmd, long: long}
}

// args sets how many positional arguments the command takes.
func (f *flagSet) args(minN, maxN int, help string) *flagSet {
	f.minArgs, f.maxArgs, f.argsHelp = minN, maxN, help
	return f
}

// parse parses flags and positional arguments in any order ("--" ends the
// flags), with the global flags accepted too, and configures the logger.
func (f *flagSet) parse(args []string) ([]string, error) {
	f.c.g.register(f.FlagSet)
	var pos []string
	for {
		if err := f.FlagSet.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.printUsage(f.c.stdout)
				return nil, err
			}
			return nil, usagef(f.cmd.name, "%s", flagErrText(err))
		}
		rest := f.FlagSet.Args()
		if len(rest) == 0 {
			break
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	f.c.g.noteExplicit(f.FlagSet)
	switch {
	case len(pos) < f.minArgs:
		return nil, usagef(f.cmd.name, "missing %s (usage: resq %s %s)", f.argsHelp, f.cmd.name, f.cmd.synopsis)
	case f.maxArgs >= 0 && len(pos) > f.maxArgs:
		extra := pos[f.maxArgs:]
		if f.maxArgs == 0 {
			return nil, usagef(f.cmd.name, "unexpected argument %q: this command takes no arguments", extra[0])
		}
		return nil, usagef(f.cmd.name, "unexpected extra argument %q (usage: resq %s %s)", extra[0], f.cmd.name, f.cmd.synopsis)
	}
	f.c.logger = slog.New(slog.NewTextHandler(f.c.stderr, &slog.HandlerOptions{Level: slog.Level(f.c.g.level)}))
	return pos, nil
}

// flagErrText rewrites the flag package's messages to say what to do.
func flagErrText(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return fmt.Sprintf("unknown flag --%s", name)
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return fmt.Sprintf("flag --%s needs a value", name)
	}
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		// invalid value "x" for flag -count: parse error
		if i := strings.Index(rest, " for flag -"); i >= 0 {
			return "invalid value " + rest[:i] + " for --" + strings.Replace(rest[i+len(" for flag -"):], ": parse error", ": not a number", 1)
		}
	}
	return msg
}

func (f *flagSet) printUsage(w io.Writer) {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: resq %s %s\n\n", f.cmd.name, f.cmd.synopsis)
	if f.long != "" {
		b.WriteString(strings.TrimSpace(f.long))
		b.WriteString("\n\n")
	}
	own := 0
	f.VisitAll(func(fl *flag.Flag) {
		if !isGlobalFlag(fl.Name) {
			own++
		}
	})
	if own > 0 {
		b.WriteString("Flags:\n")
		writeFlags(&b, f.FlagSet, func(name string) bool { return !isGlobalFlag(name) })
		b.WriteString("\n")
	}
	b.WriteString("Global flags:\n")
	writeFlags(&b, f.FlagSet, isGlobalFlag)
	io.WriteString(w, b.String())
}

// writeFlags lists fs's flags (those keep accepts; all when nil) in GNU style.
func writeFlags(b *strings.Builder, fs *flag.FlagSet, keep func(string) bool) {
	fs.VisitAll(func(fl *flag.Flag) {
		if keep != nil && !keep(fl.Name) {
			return
		}
		name, usage := flag.UnquoteUsage(fl)
		fmt.Fprintf(b, "  --%s", fl.Name)
		if name != "" {
			fmt.Fprintf(b, " %s", name)
		}
		b.WriteString("\n        ")
		b.WriteString(strings.ReplaceAll(usage, "\n", "\n        "))
		if d := fl.DefValue; d != "" && d != "0" && d != "false" && d != "[]" {
			fmt.Fprintf(b, " (default %s)", d)
		}
		b.WriteString("\n")
	})
}
