package wire

import (
	"strconv"
	"strings"
	"time"
)

// Time layouts Ruby Resque writes (spec §0.5).
const (
	RunAtLayout     = "2006-01-02T15:04:05Z"      // worker:<id> run_at, UTC
	StartedLayout   = "2006-01-02 15:04:05 -0700" // worker:<id>:started, Ruby Time#to_s
	HeartbeatLayout = "2006-01-02T15:04:05-07:00" // workers:heartbeat values, Time#iso8601
	FailedAtLayout  = "2006/01/02 15:04:05 MST"   // failure failed_at / retried_at
)

// RunAt formats the run_at field of a "working on" record.
func RunAt(t time.Time) string { return t.UTC().Format(RunAtLayout) }

// Started formats worker:<id>:started in the process's local zone.
func Started(t time.Time) string { return t.Local().Format(StartedLayout) }

// Heartbeat formats a heartbeat value (Redis server time, whole seconds,
// shown in the local zone).
func Heartbeat(t time.Time) string { return t.Truncate(time.Second).Local().Format(HeartbeatLayout) }

// FailedAt formats failed_at and retried_at in the local zone.
func FailedAt(t time.Time) string { return t.Local().Format(FailedAtLayout) }

var parseLayouts = []string{
	time.RFC3339Nano,
	time.RFC3339,
	"2006/01/02 15:04:05 MST",
	"2006/01/02 15:04:05 -0700",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 -0700 MST",
	"2006-01-02 15:04:05.999999999 -0700 MST",
	"Mon Jan 02 2006 15:04:05 GMT-0700",
	"2006-01-02T15:04:05",
	"2006/01/02 15:04:05",
	"2006-01-02 15:04:05",
}

// ParseTime reads any time format that Ruby, node-resque or goworker write
// (spec §0.5): RFC 3339, Ruby's failure and Time#to_s forms, JavaScript's
// Date#toString, Go's time.Time.String() and integer Unix seconds. A time
// without a zone is read as UTC.
func ParseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), true
	}
	// Go's String(): drop the monotonic clock reading.
	if i := strings.Index(s, " m="); i > 0 {
		s = s[:i]
	}
	// JavaScript's Date#toString: drop the "(Zone Name)" suffix.
	if i := strings.Index(s, " ("); i > 0 && strings.HasSuffix(s, ")") {
		s = s[:i]
	}
	for _, l := range parseLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
