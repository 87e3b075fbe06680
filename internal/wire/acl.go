package wire

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// Least-privilege Redis ACL roles. The Store is the only code that sends
// commands, so the commands and key patterns each role's code paths use are
// listed here, next to that code; the ACL tests in the root package run
// every path of each role under a user made from these rules and fail on
// any denial, so a new command in a path shows up there.

// ACL role names.
const (
	RoleProducer  = "producer"  // Client: enqueue, batches, capped queues, dequeue, secret fields
	RoleWorker    = "worker"    // Worker: the whole job lifecycle, heartbeats, pruning, pickups, leases
	RoleScheduler = "scheduler" // resque-scheduler's keys plus enqueueing
	RoleViewer    = "viewer"    // dashboard viewer: every Admin read
	RoleAdmin     = "admin"     // dashboard admin: every Admin read and write
)

// Roles lists the roles in order of privilege.
func Roles() []string {
	return []string{RoleProducer, RoleWorker, RoleScheduler, RoleViewer, RoleAdmin}
}

// Commands every role needs: the connection handshake (go-redis sends
// HELLO or AUTH, and SELECT for a database other than 0; resq turns off its
// CLIENT SETINFO, which Redis before 7.2 does not know and an ACL could not
// name), PING, TIME, EXISTS (ProbeAccess), the cluster client's topology
// reads, and WAIT, which follows every enqueue when ConnConfig.ReplicaAcks
// is set (any role's program may enqueue; WAIT reads no data).
var aclBase = []string{"ping", "hello", "auth", "select", "exists", "cluster|slots", "cluster|shards", "cluster|nodes", "readonly", "time", "wait"}

// scripting commands: the Store runs scripts with EVALSHA, falling back to
// EVAL on NOSCRIPT; ProbeScripts loads the fetch script with SCRIPT LOAD.
var aclScripting = []string{"evalsha", "eval", "script|load"}

// transactions (plain-command twins of the scripts, and MULTI batches).
var aclTx = []string{"multi", "exec", "discard", "watch", "unwatch"}

type aclRole struct {
	cmds []string
	// keys are key patterns relative to the namespace; a "R:" or "W:"
	// prefix makes them read-only (%R~) or write-only (%W~).
	keys []string
	// chans are pub/sub channel patterns relative to the namespace.
	chans []string
	// scripts: the role's paths run scripts when Redis allows them.
	scripts bool
}

// The delayed queue (resque-scheduler's keys): the schedule, one list per
// due second, the reverse index of each item.
var aclDelayedKeys = []string{"delayed_queue_schedule", "delayed:*", "timestamps:*"}

// aclWake is the channel on which delayed pushes wake the scheduler.
var aclWake = []string{"resq:delayed:wake"}

// The scheduler's commands: the master lock (SET NX PX, GET, PEXPIRE,
// DEL), the move (ZRANGE/ZRANGEBYSCORE, LRANGE, SREM, SADD, RPUSH, LTRIM,
// LLEN, DEL, ZREM), the wake subscription, recurring schedules
// (HGETALL persistent_schedules and delayed:last_enqueued_at, SPOP
// schedules_changed, the tick key's SET NX / EXISTS, HSET last run).
var aclSchedulerCmds = []string{"get", "set", "pexpire", "del",
	"zrange", "zrangebyscore", "zadd", "zrem", "lrange", "ltrim", "llen", "rpush", "sadd", "srem", "smembers",
	"hget", "hgetall", "hset", "spop", "subscribe", "publish"}

// The scheduler's keys besides the delayed queue and the queues.
var aclSchedulerKeys = []string{
	// the master lock: Ruby namespaces its name twice (protocol §9.9)
	"$NS:*resque_scheduler_master_lock", "persistent_schedules", "schedules_changed",
	// a null-queue item becomes a failure record
	"failed",
	// recurring ticks, secret fields of signed ticks
	"resq:tick:*", "resq:secret_fields"}

var aclRoles = map[string]aclRole{
	RoleProducer: {
		cmds: []string{"sadd", "rpush", "llen", "hget", "hset",
			"lrange", "lrem", // Dequeue
			"zadd", "zrange", "publish", "smembers", "srem"}, // delayed push, RemoveDelayed
		keys:  append([]string{"queues", "queue:*", "resq:secret_fields"}, aclDelayedKeys...),
		chans: aclWake,
		// capped push and secret-field registration
		scripts: true,
	},
	// A worker user also runs the in-process scheduler of resq work (on
	// unless --no-scheduler), and its retries push to the delayed queue
	// inside the ack: it has the scheduler's rules too.
	RoleWorker: {
		cmds: append(append([]string(nil), aclSchedulerCmds...),
			// registration, heartbeats, the "working on" records, stats
			"sadd", "srem", "smembers", "sismember", "set", "get", "mget", "del", "expire", "pexpire", "pttl",
			"hset", "hget", "hgetall", "hdel", "hincrby", "incrby",
			// jobs held ahead: returned by field
			"hmget",
			// retry counters (resque-retry)
			"incr", "setnx",
			// queues, pickups, failures
			"lpop", "rpush", "lpush", "llen", "lrange", "lrem", "lmove", "blmove", "scan",
			// leases (class concurrency caps)
			"zadd", "zrem", "zcard", "zcount", "zremrangebyscore", "zscore",
		),
		keys: append(append([]string{"queues", "queue:*", "workers", "worker:*", "workers:heartbeat", "pruning_dead_workers_in_progress",
			// pause-all-workers is only read, but a script's keys need
			// read and write permission
			"stat:*", "failed", "pause-all-workers", "resq:*",
			// resque-retry's counters and failure records
			"resque-retry:*", "failure-resque-retry:*"}, aclDelayedKeys...), aclSchedulerKeys...),
		chans:   aclWake,
		scripts: true,
	},
	RoleScheduler: {
		// resq's scheduler (resq scheduler, or Scheduler in a program):
		// the delayed queue, the lock, recurring schedules, and the
		// queues it enqueues to.
		cmds:    aclSchedulerCmds,
		keys:    append(append([]string{"queues", "queue:*"}, aclDelayedKeys...), aclSchedulerKeys...),
		chans:   aclWake,
		scripts: true,
	},
	RoleViewer: {
		cmds: aclViewerCmds,
		keys: []string{"R:*"},
	},
	RoleAdmin: {
		cmds: append(append([]string(nil), aclViewerCmds...),
			// queue and failure edits, pruning (with dead workers' pickups),
			// the audit log
			"set", "del", "sadd", "srem", "rpush", "lpush", "lindex", "lset", "lrem", "ltrim", "lmove", "hset", "hdel",
			// delayed jobs: remove, enqueue now; schedules: set, remove
			"zrem"),
		keys:    []string{"*"},
		scripts: true,
	},
}

// aclViewerCmds are the reads of every Admin view.
var aclViewerCmds = []string{"get", "mget", "smembers", "llen", "lrange", "hgetall", "hmget", "scan", "info",
	// the Delayed and Schedule tabs
	"zrangebyscore"}

// ACLRules returns the ACL SETUSER rules (after the user name) of role for
// namespace ns: commands first, then key patterns. With scripting false the
// role gets no scripting command and resq runs its plain-command twins.
// The rules reset the user's keys, channels, selectors and commands but not
// its password or on/off state.
func ACLRules(role, ns string, scripting bool) ([]string, error) {
	r, ok := aclRoles[role]
	if !ok {
		return nil, fmt.Errorf("unknown ACL role %q (want one of %s)", role, strings.Join(Roles(), ", "))
	}
	k := NewKeys(ns)
	out := []string{"resetkeys", "resetchannels", "clearselectors", "-@all"}
	cmds := append(append([]string(nil), aclBase...), r.cmds...)
	if r.scripts {
		cmds = append(cmds, aclTx...)
		if scripting {
			cmds = append(cmds, aclScripting...)
		}
	}
	seen := map[string]bool{}
	var pos, neg []string
	for _, c := range cmds {
		if seen[c] {
			continue
		}
		seen[c] = true
		if strings.HasPrefix(c, "-") {
			neg = append(neg, c)
		} else {
			pos = append(pos, "+"+c)
		}
	}
	sort.Strings(pos[len(aclBase):])
	out = append(out, pos...)
	out = append(out, neg...)
	seenKey := map[string]bool{}
	for _, p := range r.keys {
		if seenKey[p] {
			continue
		}
		seenKey[p] = true
		perm := "~"
		switch {
		case strings.HasPrefix(p, "R:"):
			perm, p = "%R~", p[2:]
		case strings.HasPrefix(p, "W:"):
			perm, p = "%W~", p[2:]
		}
		out = append(out, perm+keyPattern(k, p))
	}
	for _, c := range r.chans {
		out = append(out, "&"+keyPattern(k, c))
	}
	return out, nil
}

// keyPattern renders a relative pattern under the namespace, escaping the
// namespace's glob characters; "*" in rel stays a wildcard.
// "$NS" in rel stands for the escaped namespace itself.
func keyPattern(k Keys, rel string) string {
	rel = strings.ReplaceAll(rel, "$NS", escapeGlob(k.Namespace()))
	return escapeGlob(k.ns) + rel
}

// ProbeAccess reads the namespace's queue set: with PING it tells wrong
// credentials (WRONGPASS) and an ACL user whose key patterns do not cover the
// namespace (NOPERM) from a Redis that is merely unreachable.
func (s *Store) ProbeAccess(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return err
	}
	return s.rdb.Exists(ctx, s.Keys.Queues()).Err()
}
