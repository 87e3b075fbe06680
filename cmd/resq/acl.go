package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

const aclHelp = `
Print least-privilege Redis ACL users for resq's roles under the namespace
(--namespace / RESQ_NAMESPACE): producer (enqueue), worker, scheduler,
viewer (dashboard, read-only) and admin (dashboard admin). Each user gets
only the commands and key patterns its role's code paths use.

By default the output is ACL SETUSER commands for redis-cli; --aclfile
prints aclfile "user" lines instead. The users are created switched on but
without a password, so nobody can sign in as them until you add one:
ACL SETUSER resq-worker >PASSWORD (or ">PASSWORD" / "#SHA256HEX" on the
aclfile line). Re-running the commands updates the rules and keeps the
passwords.

The worker role includes the scheduler role's rules, because resq work
runs a scheduler in-process unless --no-scheduler (and its retries write
the delayed queue anyway). The scheduler role is for resq scheduler (or a
Scheduler in your program) alone; it cannot run jobs.

--no-scripting leaves out EVAL/EVALSHA/SCRIPT: resq then runs its
plain-command twins (see docs/operations.md).

Examples:
  resq acl --namespace '{resque}' --role worker,viewer | redis-cli -h HOST --user ADMIN --askpass
  resq acl --aclfile >> /etc/redis/users.acl`

func (c *cli) cmdACL(ctx context.Context, args []string) error {
	fs := c.newFlags("acl", aclHelp).args(0, 0, "")
	var roles, prefix string
	var noScripting, aclfile bool
	fs.StringVar(&roles, "role", "", "comma-separated `ROLES` (default all: producer,worker,scheduler,viewer,admin)")
	fs.StringVar(&prefix, "user-prefix", "resq-", "user name `PREFIX`: the users are PREFIX+role")
	fs.BoolVar(&noScripting, "no-scripting", false, "no Lua scripting commands (resq uses plain commands)")
	fs.BoolVar(&aclfile, "aclfile", false, "print aclfile user lines instead of ACL SETUSER commands")
	if _, err := fs.parse(args); err != nil {
		return err
	}
	list := resq.ACLRoles()
	if roles != "" {
		list = nil
		for _, r := range strings.Split(roles, ",") {
			if r = strings.TrimSpace(r); r != "" {
				list = append(list, resq.ACLRole(r))
			}
		}
	}
	for _, role := range list {
		rules, err := resq.ACLRules(role, c.g.namespace, !noScripting)
		if err != nil {
			return usagef("acl", "--role: %v", err)
		}
		user := prefix + string(role)
		if aclfile {
			// An aclfile line is the full state: start from nothing.
			fmt.Fprintf(c.stdout, "user %s on %s\n", user, strings.Join(rules, " "))
		} else {
			fmt.Fprintf(c.stdout, "ACL SETUSER %s on %s\n", user, strings.Join(rules, " "))
		}
	}
	return nil
}

// checkRedis is the start-up check of the long-running commands (work,
// web): it pings Redis and reads the namespace. An error that retrying
// will not fix (resq.IsPermanent: wrong password, missing ACL permission,
// certificate trouble) is tried twice more over a second — a password
// rotation can be mid-way — and then ends the command with one message. An
// unreachable Redis is not an error here: the command's own loop retries
// with backoff until Redis answers.
func (c *cli) checkRedis(ctx context.Context, conn *resq.Conn) error {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := conn.CheckAccess(ctx)
		switch {
		case err == nil:
			return nil
		case !resq.IsPermanent(err):
			c.logger.Warn("Redis does not answer yet; retrying with backoff", "error", err)
			return nil
		case attempt == 3:
			return fmt.Errorf("%w\n%s", err, permanentHint(err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// permanentHint says what to do about a permanent error.
func permanentHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "WRONGPASS"), strings.Contains(msg, "NOAUTH"), strings.Contains(msg, "invalid password"), strings.Contains(msg, "without any password"):
		return "Redis refused the credentials: check the user and password in --redis / REDIS_URL (and --sentinel-password for the sentinels)."
	case strings.Contains(msg, "NOPERM"):
		return "The Redis ACL user lacks a command or key this command needs (is its key pattern for this --namespace?); 'resq acl --namespace NS' prints each role's rules."
	case errors.Is(err, resq.ErrNoHashTag):
		return "Use a namespace with a hash tag on Redis Cluster."
	}
	return "TLS failed on a certificate: check --redis-ca, --redis-cert, --redis-key and --redis-server-name."
}
