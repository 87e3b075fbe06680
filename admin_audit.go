package resq

import (
	"context"
	"time"

	"github.com/resq-go/resq/internal/wire"
)

// AuditEntry is one record of the audit log: who did what to which target,
// when, from which address, and whether it worked. The dashboard writes one
// for every state change; the log is kept in Redis, newest first, capped at
// AuditLogCap entries.
type AuditEntry struct {
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Action string    `json:"action"`           // e.g. "failure.retry", "queue.remove"
	Target string    `json:"target,omitempty"` // e.g. "failed/3", "queue/mail"
	Detail string    `json:"detail,omitempty"`
	Remote string    `json:"remote,omitempty"` // client address
	OK     bool      `json:"ok"`
	// Invalid is set when the stored entry could not be read.
	Invalid bool `json:"invalid,omitempty"`
}

// AuditLogCap is how many audit entries are kept; older ones are dropped.
const AuditLogCap = wire.AuditCap

// RecordAudit appends e to the audit log (Time defaults to now).
func (a *Admin) RecordAudit(ctx context.Context, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	return a.store.AppendAudit(ctx, wire.AuditEntry{At: e.Time, User: e.User, Action: e.Action,
		Target: e.Target, Detail: e.Detail, Remote: e.Remote, OK: e.OK})
}

// AuditLog returns count entries from start (0 is the newest) and the number
// of entries kept.
func (a *Admin) AuditLog(ctx context.Context, start, count int64) ([]AuditEntry, int64, error) {
	raws, n, err := a.store.AuditLog(ctx, start, count)
	if err != nil {
		return nil, 0, err
	}
	out := make([]AuditEntry, len(raws))
	for i, r := range raws {
		e, err := wire.DecodeAuditEntry(r)
		if err != nil {
			out[i] = AuditEntry{Invalid: true}
			continue
		}
		out[i] = AuditEntry{Time: e.At, User: e.User, Action: e.Action, Target: e.Target,
			Detail: e.Detail, Remote: e.Remote, OK: e.OK}
	}
	return out, n, nil
}

// RedisInfo returns the text of Redis's INFO command, for the dashboard's
// Redis page. (It lives here, not in admin.go, only because the dashboard
// issue owns this file; it belongs with the other Admin reads.)
func (a *Admin) RedisInfo(ctx context.Context) (string, error) { return a.store.RedisInfo(ctx) }
