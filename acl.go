package resq

import (
	"context"
	"fmt"

	"github.com/resq-go/resq/internal/wire"
)

// ACLRole is a least-privilege Redis ACL role for one kind of resq process.
type ACLRole string

// The roles. Each is the smallest set of commands and key patterns its code
// paths use, under one namespace (docs/operations.md).
const (
	// ACLProducer enqueues: Client (Enqueue, EnqueueBatch, capped queues,
	// Dequeue, secret-field registration). It cannot read failures, see
	// workers or delete queues.
	ACLProducer ACLRole = wire.RoleProducer
	// ACLWorker runs Workers: the job lifecycle, failures, heartbeats,
	// pruning dead workers, blocking pickups, class-concurrency leases.
	ACLWorker ACLRole = wire.RoleWorker
	// ACLScheduler runs a scheduler (resq's or resque-scheduler): its
	// delayed-job and schedule keys and enqueueing.
	ACLScheduler ACLRole = wire.RoleScheduler
	// ACLViewer reads everything the dashboard shows and writes nothing.
	ACLViewer ACLRole = wire.RoleViewer
	// ACLAdmin is the dashboard's admin: every Admin read and write.
	ACLAdmin ACLRole = wire.RoleAdmin
)

// ACLRoles lists every role, least privileged first.
func ACLRoles() []ACLRole {
	var out []ACLRole
	for _, r := range wire.Roles() {
		out = append(out, ACLRole(r))
	}
	return out
}

// ACLRules returns role's ACL rules for namespace, as the arguments that
// follow the user name in ACL SETUSER (or in an aclfile's user line):
// commands, then key patterns. With scripting false the role gets no
// EVAL/EVALSHA/SCRIPT and resq uses its plain-command twins. The rules
// reset the user's commands, keys, channels and selectors but leave its
// password and on/off state alone.
func ACLRules(role ACLRole, namespace string, scripting bool) ([]string, error) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return wire.ACLRules(string(role), namespace, scripting)
}

// CheckAccess pings Redis and reads the namespace's queue set. Its error
// tells wrong credentials and an ACL that does not cover the namespace
// (IsPermanent) from an unreachable Redis. Long-running programs call it at
// start-up.
func (c *Conn) CheckAccess(ctx context.Context) error {
	if err := c.store.ProbeAccess(ctx); err != nil {
		return fmt.Errorf("redis %s: %w", c.desc, err)
	}
	return nil
}
