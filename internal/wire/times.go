package wire

import (
	"strconv"
	"strings"
	"time"
)

// Time layouts Ruby Resque writes (docs/protocol.md §0.5).
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
// (docs/protocol.md §0.5): RFC 3339, Ruby's failure and Time#to_s forms, JavaScript's
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
	// Ruby's %Z may print a numeric zone ("+04", "-0530").
	if i := strings.LastIndexByte(s, ' '); i > 0 {
		if loc, ok := numericZone(s[i+1:]); ok {
			if t, err := time.ParseInLocation("2006/01/02 15:04:05", s[:i], loc); err == nil {
				return t, true
			}
		}
	}
	for _, l := range parseLayouts {
		t, err := time.Parse(l, s)
		if err != nil {
			continue
		}
		// time.Parse gives unknown zone abbreviations offset 0; fix the
		// common ones.
		if name, off := t.Zone(); off == 0 && name != "UTC" && name != "GMT" && name != "Z" && name != "" {
			if o, ok := zoneAbbrev[name]; ok {
				t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.FixedZone(name, o*60))
			}
		}
		return t, true
	}
	return time.Time{}, false
}

// zoneAbbrev holds UTC offsets, in minutes, of common zone abbreviations.
var zoneAbbrev = map[string]int{
	"EST": -300, "EDT": -240, "CST": -360, "CDT": -300, "MST": -420, "MDT": -360,
	"PST": -480, "PDT": -420, "AKST": -540, "AKDT": -480, "HST": -600,
	"BST": 60, "IST": 330, "CET": 60, "CEST": 120, "EET": 120, "EEST": 180, "WET": 0, "WEST": 60,
	"MSK": 180, "JST": 540, "KST": 540, "AEST": 600, "AEDT": 660, "ACST": 570, "AWST": 480,
	"NZST": 720, "NZDT": 780, "SGT": 480, "HKT": 480,
}

// numericZone parses "+04", "-0530" or "+05:30".
func numericZone(z string) (*time.Location, bool) {
	if len(z) < 3 || (z[0] != '+' && z[0] != '-') {
		return nil, false
	}
	digits := strings.ReplaceAll(z[1:], ":", "")
	if len(digits) != 2 && len(digits) != 4 {
		return nil, false
	}
	h, err := strconv.Atoi(digits[:2])
	if err != nil {
		return nil, false
	}
	m := 0
	if len(digits) == 4 {
		if m, err = strconv.Atoi(digits[2:]); err != nil {
			return nil, false
		}
	}
	off := (h*60 + m) * 60
	if z[0] == '-' {
		off = -off
	}
	return time.FixedZone(z, off), true
}
