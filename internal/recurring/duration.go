package recurring

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration reads a rufus-scheduler (fugit) duration: a sequence of
// number+unit parts, optionally separated by blanks, commas or "and":
// "30s", "15m", "1h30m", "2 hours", "1.5h", "1d", "1w", "1M" (30 days),
// "1y" (365 days), a bare number of seconds ("90", or as the last part:
// "1m30"), or ISO 8601 ("PT15M", "P1DT2H"). Units: y year(s); M month(s)
// (upper-case M); w week(s); d day(s); h hour(s); m min mins minute(s)
// (lower-case); s sec secs second(s). The result must be a whole number of
// seconds, at least one.
func ParseDuration(s string) (time.Duration, error) {
	text := strings.TrimSpace(s)
	if text == "" {
		return 0, fmt.Errorf("empty duration; write e.g. 30s, 15m, 1h30m or 1d")
	}
	var secs float64
	var err error
	if text[0] == 'P' || text[0] == 'p' {
		secs, err = parseISODuration(strings.ToUpper(text))
	} else {
		secs, err = parsePlainDuration(text)
	}
	if err != nil {
		return 0, fmt.Errorf("duration %q: %v; write e.g. 30s, 15m, 1h30m, 1d or 1w", s, err)
	}
	if secs < 1 || secs != math.Trunc(secs) || secs > float64(math.MaxInt64/int64(time.Second)) {
		return 0, fmt.Errorf("duration %q is %gs; resq needs a whole number of seconds, at least 1s", s, secs)
	}
	return time.Duration(secs) * time.Second, nil
}

type durUnit struct {
	names []string
	fold  bool // case-insensitive
	secs  float64
}

// Longer names first, so "min" is not read as "m" + "in".
var durUnits = []durUnit{
	{[]string{"years", "year", "y"}, true, 365 * 86400},
	{[]string{"months", "month"}, true, 30 * 86400},
	{[]string{"M"}, false, 30 * 86400},
	{[]string{"weeks", "week", "w"}, true, 7 * 86400},
	{[]string{"days", "day", "d"}, true, 86400},
	{[]string{"hours", "hour", "h"}, true, 3600},
	{[]string{"minutes", "minute", "mins", "min", "m"}, false, 60},
	{[]string{"seconds", "second", "secs", "sec", "s"}, true, 1},
}

func parsePlainDuration(s string) (float64, error) {
	neg := false
	if s[0] == '-' || s[0] == '+' {
		neg, s = s[0] == '-', s[1:]
	}
	total := 0.0
	parts := 0
	for {
		s = strings.TrimLeft(s, " \t,")
		if rest, ok := strings.CutPrefix(strings.ToLower(s), "and"); ok && parts > 0 && (rest == "" || rest[0] == ' ' || rest[0] >= '0' && rest[0] <= '9') {
			s = strings.TrimLeft(s[3:], " \t,")
		}
		if s == "" {
			break
		}
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("expected a number at %q", s)
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0, fmt.Errorf("bad number %q", s[:i])
		}
		s = strings.TrimLeft(s[i:], " \t")
		parts++
		unit, rest, ok := cutUnit(s)
		if !ok {
			if strings.TrimSpace(s) == "" { // a bare number: seconds
				total += n
				break
			}
			return 0, fmt.Errorf("unknown unit at %q", s)
		}
		total += n * unit
		s = rest
	}
	if parts == 0 {
		return 0, fmt.Errorf("no number")
	}
	if neg {
		total = -total
	}
	return total, nil
}

func cutUnit(s string) (float64, string, bool) {
	for _, u := range durUnits {
		for _, name := range u.names {
			if len(s) < len(name) {
				continue
			}
			head := s[:len(name)]
			if head == name || u.fold && strings.EqualFold(head, name) && name != "m" {
				rest := s[len(name):]
				// A unit ends at a digit, a separator or the end ("5mo" is not 5m).
				if rest == "" || strings.ContainsRune(" \t,0123456789.", rune(rest[0])) {
					return u.secs, rest, true
				}
			}
		}
	}
	return 0, s, false
}

func parseISODuration(s string) (float64, error) {
	s = strings.TrimPrefix(s, "P")
	date, clock, hasT := strings.Cut(s, "T")
	total := 0.0
	read := func(part string, units map[byte]float64) error {
		for part != "" {
			i := 0
			for i < len(part) && (part[i] >= '0' && part[i] <= '9' || part[i] == '.') {
				i++
			}
			if i == 0 || i == len(part) {
				return fmt.Errorf("bad ISO 8601 duration part %q", part)
			}
			n, err := strconv.ParseFloat(part[:i], 64)
			u, ok := units[part[i]]
			if err != nil || !ok {
				return fmt.Errorf("bad ISO 8601 duration part %q", part)
			}
			total += n * u
			part = part[i+1:]
		}
		return nil
	}
	if err := read(date, map[byte]float64{'Y': 365 * 86400, 'M': 30 * 86400, 'W': 7 * 86400, 'D': 86400}); err != nil {
		return 0, err
	}
	if hasT {
		if clock == "" {
			return 0, fmt.Errorf("nothing after T")
		}
		if err := read(clock, map[byte]float64{'H': 3600, 'M': 60, 'S': 1}); err != nil {
			return 0, err
		}
	} else if date == "" {
		return 0, fmt.Errorf("nothing after P")
	}
	return total, nil
}

// everyAnchor is the instant every grid starts from: Monday 1970-01-05
// 00:00 UTC, so "1w" fires on Mondays and shorter periods that divide a day
// fire at round UTC times.
var everyAnchor = time.Date(1970, 1, 5, 0, 0, 0, 0, time.UTC)

// Every is an "every" schedule on a fixed grid: ticks at Anchor + k×Period
// for every integer k (not before FirstAt when that is set). The grid is the
// same in every scheduler, so a tick has the same identity everywhere and
// survives restarts and a change of master (rufus instead starts counting
// when the schedule is loaded). first_in shifts the grid by its duration;
// first_at sets the grid's origin and the earliest tick.
type Every struct {
	Period  time.Duration
	Anchor  time.Time
	FirstAt time.Time // zero: no lower bound
	text    string
}

// String returns the every value as written.
func (e *Every) String() string { return e.text }

// Next returns the first tick strictly after after.
func (e *Every) Next(after time.Time) (time.Time, bool) {
	after = after.Truncate(time.Second)
	if !e.FirstAt.IsZero() && after.Before(e.FirstAt) {
		return e.FirstAt.UTC(), true
	}
	p := int64(e.Period / time.Second)
	d := after.Unix() - e.Anchor.Unix()
	k := d / p
	if d < 0 && d%p != 0 {
		k-- // floor division
	}
	return time.Unix(e.Anchor.Unix()+(k+1)*p, 0).UTC(), true
}
