package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/web"
)

const webHelp = `
Serve the dashboard: resque-web's pages (/overview, /working, /queues,
/queues/NAME, /workers, /workers/ID, /failed, /stats), resque-scheduler's
tabs (/delayed, /schedule) plus /audit and /metrics, with sign-in, roles,
CSRF protection and a strict Content-Security-Policy.

--schedule FILE shows that schedule file's entries on the Schedule tab
beside the persistent schedules in Redis; --lock-prefix names the
schedulers' master lock as their --lock-prefix does.

--users FILE is an htpasswd file with bcrypt entries (htpasswd -B -c FILE
alice). Users are viewers (read-only) unless named in a "# resq-admins: a, b"
comment line in the file or in --admins. Without --users the dashboard has
no sign-in and refuses to listen on anything but a loopback address.

--metrics-listen ADDR also serves /metrics alone on ADDR (no sign-in), for a
Prometheus that cannot sign in. See docs/operations.md.

Examples:
  resq web                                   # http://127.0.0.1:5678/, loopback only
  resq web --listen :5678 --users /etc/resq/users.htpasswd
  resq web --users users.htpasswd --admins alice --prefix /resq`

func (c *cli) cmdWeb(ctx context.Context, args []string) error {
	fs := c.newFlags("web", webHelp).args(0, 0, "")
	var listen, usersFile, admins, prefix, metricsListen, scheduleFile, lockPrefix string
	fs.StringVar(&listen, "listen", web.DefaultListen, "`ADDR` to serve the dashboard on")
	fs.StringVar(&usersFile, "users", "", "htpasswd `FILE` with bcrypt entries (required off loopback)")
	fs.StringVar(&admins, "admins", "", "comma-separated user `NAMES` with the admin role")
	fs.StringVar(&prefix, "prefix", "", "path `PREFIX` when a proxy serves the dashboard under one (e.g. /resq)")
	fs.StringVar(&metricsListen, "metrics-listen", "", "also serve /metrics alone on `ADDR`")
	fs.StringVar(&scheduleFile, "schedule", "", "show the recurring schedules of `FILE` (the schedulers' --schedule) on the Schedule tab, beside the persistent ones")
	fs.StringVar(&lockPrefix, "lock-prefix", c.env["RESQUE_SCHEDULER_MASTER_LOCK_PREFIX"], "the schedulers' master lock prefix `P` (env RESQUE_SCHEDULER_MASTER_LOCK_PREFIX)")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	var users web.Users
	if usersFile != "" {
		var err error
		if users, err = web.LoadUsers(usersFile); err != nil {
			return usagef("web", "--users: %v", err)
		}
	}
	for _, name := range strings.Split(admins, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		if err := users.SetRole(name, web.RoleAdmin); err != nil {
			return usagef("web", "--admins: %v", err)
		}
	}
	if err := web.CheckListen(listen, users); err != nil {
		return usagef("web", "%v", err)
	}
	var static *resq.Schedule
	if scheduleFile != "" {
		var err error
		if static, err = resq.LoadScheduleFile(scheduleFile); err != nil {
			return usagef("web", "--schedule: %v", err)
		}
	}
	conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := c.checkRedis(ctx, conn); err != nil {
		return err
	}
	metrics := web.NewMetrics(conn)
	h, err := web.New(conn, web.Config{Users: users, Logger: c.logger, Prefix: strings.TrimSuffix(prefix, "/"), Metrics: metrics,
		Schedules: web.AdminSchedules(resq.NewAdmin(conn), static), SchedulerLockPrefix: lockPrefix})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	sigs, stopSigs := c.sys.Signals(stopSignals()...)
	defer stopSigs()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-ctx.Done():
		}
	}()
	errs := make(chan error, 2)
	if metricsListen != "" {
		mln, err := net.Listen("tcp", metricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s: %w", metricsListen, err)
		}
		c.logger.Info("metrics listening", "addr", mln.Addr().String())
		go func() { errs <- web.Serve(ctx, mln, metrics.Handler()) }()
	}
	c.logger.Info("dashboard listening", "url", "http://"+ln.Addr().String()+prefix+"/", "users", users.Len(), "redis", conn.String())
	fmt.Fprintf(c.stderr, "resq web: dashboard on http://%s%s/ (Ctrl-C stops)\n", ln.Addr(), prefix)
	err = web.Serve(ctx, ln, h)
	cancel()
	return err
}
