package wire

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// AuditCap is how many audit entries <ns>:resq:audit keeps; older ones are
// trimmed on every append.
const AuditCap = 1000

// Audit is resq's audit log: a list of JSON entries, newest first (LPUSH),
// capped at AuditCap (LTRIM).
func (k Keys) Audit() string { return k.resq("audit") }

// AuditEntry is one audit record: who did what to which target, when, from
// where, and whether it worked. Stored as
//
//	{"at":"2026-01-02T15:04:05.123Z","user":"alice","action":"failure.retry",
//	 "target":"failed/3","detail":"queue mail","remote":"10.0.0.7","ok":true}
type AuditEntry struct {
	At     time.Time `json:"at"`
	User   string    `json:"user"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Detail string    `json:"detail,omitempty"`
	Remote string    `json:"remote,omitempty"`
	OK     bool      `json:"ok"`
}

// Encode returns the entry's JSON.
func (e AuditEntry) Encode() []byte {
	e.At = e.At.UTC()
	b, err := json.Marshal(e)
	if err != nil { // cannot happen: only strings, a bool and a time
		panic(fmt.Sprintf("wire: encode audit entry: %v", err))
	}
	return b
}

// DecodeAuditEntry parses one stored entry.
func DecodeAuditEntry(raw []byte) (AuditEntry, error) {
	var e AuditEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return AuditEntry{}, fmt.Errorf("audit entry is not valid JSON: %w", err)
	}
	return e, nil
}

// AppendAudit pushes one entry to the head of the audit log and trims it to
// AuditCap entries, in one MULTI/EXEC.
func (s *Store) AppendAudit(ctx context.Context, e AuditEntry) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, s.Keys.Audit(), e.Encode())
		p.LTrim(ctx, s.Keys.Audit(), 0, AuditCap-1)
		return nil
	})
	return err
}

// AuditLog returns count raw entries from start (0 is the newest) and the
// length of the log.
func (s *Store) AuditLog(ctx context.Context, start, count int64) ([][]byte, int64, error) {
	var n *redis.IntCmd
	var r *redis.StringSliceCmd
	if count <= 0 {
		l, err := s.rdb.LLen(ctx, s.Keys.Audit()).Result()
		return nil, l, err
	}
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		n = p.LLen(ctx, s.Keys.Audit())
		r = p.LRange(ctx, s.Keys.Audit(), start, start+count-1)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	out := make([][]byte, len(r.Val()))
	for i, v := range r.Val() {
		out[i] = []byte(v)
	}
	return out, n.Val(), nil
}

// RedisInfo returns the server's INFO text (all default sections).
func (s *Store) RedisInfo(ctx context.Context) (string, error) {
	n, err := s.keyNode(ctx)
	if err != nil {
		return "", err
	}
	return n.Info(ctx).Result()
}
