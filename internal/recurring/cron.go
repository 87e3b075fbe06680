package recurring

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // IANA zones even where the system has no zoneinfo
)

// Cron is a parsed cron expression in the dialect rufus-scheduler (fugit)
// understands:
//
//   - 5 fields (minute hour day-of-month month day-of-week) or 6 with
//     seconds first; a 5-field expression fires at second 0;
//   - each field a comma list of "*", "n", "a-b" (wrapping: "22-2",
//     "fri-mon"), each with an optional "/step" ("*/15", "5/15" = 5-59/15,
//     "/15" = */15);
//   - month names jan…dec and weekday names sun…sat (any case), weekday 7 =
//     sunday, hour 24 = 0;
//   - day of month "L" or "last" (the last day), "-n" (n-th from the end,
//     "-1" = "L"); weekday "fri#2" (second friday), "fri#-1" / "fri#L"
//     (last friday), up to ±5;
//   - "?" as "*" in the day fields (Quartz style; rufus refuses it);
//   - day-of-month and day-of-week both restricted: either may match (as
//     man 5 crontab), or both must when either field ends in "&" (fugit's
//     extension);
//   - @yearly @annually @monthly @weekly @daily @midnight @noon @hourly;
//   - an optional trailing time zone: an IANA name (Europe/Berlin, UTC) or
//     an offset (+09:00, -0500). Without one the loader's Location is used
//     (rufus uses the process's local zone).
//
// Not supported, refused with an error: @reboot, "~" (random values, which
// would give every scheduler a different tick), "%" (weekday modulo).
//
// Daylight saving time (see Next): a wall-clock time that does not exist
// (spring forward) fires at the transition instant when the hour field is
// fixed, and is skipped when the hour field starts with "*"; a wall-clock
// time that occurs twice (fall back) fires once, at its first occurrence,
// when the hour field is fixed, and at both when it starts with "*".
type Cron struct {
	text     string
	loc      *time.Location
	zone     string // the zone as written, "" when none
	seconds  uint64 // bit n = second n
	minutes  uint64
	hours    uint32
	months   uint16 // bit n = month n (1..12)
	dom      uint32 // bit n = day n (1..31)
	domEnd   uint32 // bit n = n-th day from the end (1 = last)
	dow      uint8  // bit n = weekday n (0 = sunday)
	nth      []nthWeekday
	domStar  bool
	dowStar  bool
	dayAnd   bool
	hourWild bool // the hour field starts with "*": interval-like under DST
}

type nthWeekday struct {
	wd time.Weekday
	n  int // 1..5 from the start of the month, -1..-5 from the end
}

// String returns the expression as written.
func (c *Cron) String() string { return c.text }

// Location returns the zone the expression is evaluated in.
func (c *Cron) Location() *time.Location { return c.loc }

var cronSpecials = map[string]string{
	"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
	"@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
	"@noon": "0 12 * * *", "@hourly": "0 * * * *",
}

var monthNames = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}
var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseCron parses expr; loc is the zone used when expr names none (nil
// means time.Local). Errors say which field is wrong and why.
func ParseCron(expr string, loc *time.Location) (*Cron, error) {
	if loc == nil {
		loc = time.Local
	}
	text := strings.TrimSpace(expr)
	if text == "" {
		return nil, fmt.Errorf("empty cron expression; write 5 fields (minute hour day month weekday), e.g. \"30 2 * * *\"")
	}
	fields := strings.Fields(text)
	if strings.HasPrefix(fields[0], "@") {
		if fields[0] == "@reboot" {
			return nil, fmt.Errorf("@reboot is not supported: a schedule needs fire times")
		}
		sp, ok := cronSpecials[strings.ToLower(fields[0])]
		if !ok {
			return nil, fmt.Errorf("unknown cron shortcut %q; use one of @yearly @monthly @weekly @daily @hourly or 5 fields", fields[0])
		}
		fields = append(strings.Fields(sp), fields[1:]...)
	}
	c := &Cron{text: text, loc: loc}
	var zone string
	switch len(fields) {
	case 5:
	case 6:
		// Seconds first, unless the last field is a zone and not a weekday.
		if _, _, err := parseDOW(fields[5]); err != nil && looksLikeZone(fields[5]) {
			zone, fields = fields[5], fields[:5]
		}
	case 7:
		zone, fields = fields[6], fields[:6]
	default:
		return nil, fmt.Errorf("cron %q has %d fields; want 5 (minute hour day month weekday) or 6 (second first), optionally followed by a time zone", text, len(fields))
	}
	if zone != "" {
		z, err := loadZone(zone)
		if err != nil {
			return nil, fmt.Errorf("cron %q: time zone %q: %v; use an IANA name such as Europe/Berlin or an offset such as +09:00", text, zone, err)
		}
		c.loc, c.zone = z, zone
	}
	c.seconds = 1
	if len(fields) == 6 {
		b, err := parseBits(fields[0], 0, 59, nil)
		if err != nil {
			return nil, fieldErr(text, "second", fields[0], err)
		}
		c.seconds, fields = b, fields[1:]
	}
	var err error
	if c.minutes, err = parseBits(fields[0], 0, 59, nil); err != nil {
		return nil, fieldErr(text, "minute", fields[0], err)
	}
	h, err := parseBitsMax(fields[1], 0, 23, 24, nil)
	if err != nil {
		return nil, fieldErr(text, "hour", fields[1], err)
	}
	c.hours, c.hourWild = uint32(h), strings.HasPrefix(fields[1], "*")
	domText, dowText := fields[2], fields[4]
	if t, ok := strings.CutSuffix(domText, "&"); ok {
		domText, c.dayAnd = t, true
	}
	if t, ok := strings.CutSuffix(dowText, "&"); ok {
		dowText, c.dayAnd = t, true
	}
	if err := c.parseDOM(domText); err != nil {
		return nil, fieldErr(text, "day of month", fields[2], err)
	}
	m, err := parseBits(fields[3], 1, 12, monthNames)
	if err != nil {
		return nil, fieldErr(text, "month", fields[3], err)
	}
	c.months = uint16(m)
	if c.dow, c.nth, err = parseDOW(dowText); err != nil {
		return nil, fieldErr(text, "day of week", fields[4], err)
	}
	c.dowStar = dowText == "*" || dowText == "?"
	// A day-of-month list that no chosen month has (30 2 *) never fires.
	if _, ok := c.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)); !ok {
		return nil, fmt.Errorf("cron %q never fires (no month has the day asked for); check the day and month fields", text)
	}
	return c, nil
}

func fieldErr(text, field, value string, err error) error {
	return fmt.Errorf("cron %q: %s field %q: %v", text, field, value, err)
}

func looksLikeZone(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '+' || s[0] == '-' {
		return true
	}
	return s[0] >= 'A' && s[0] <= 'Z'
}

func loadZone(s string) (*time.Location, error) {
	if s[0] == '+' || s[0] == '-' {
		d := strings.ReplaceAll(s[1:], ":", "")
		if len(d) == 2 {
			d += "00"
		}
		if len(d) != 4 {
			return nil, fmt.Errorf("bad offset")
		}
		h, err1 := strconv.Atoi(d[:2])
		m, err2 := strconv.Atoi(d[2:])
		if err1 != nil || err2 != nil || h > 24 || m > 59 {
			return nil, fmt.Errorf("bad offset")
		}
		off := h*3600 + m*60
		if s[0] == '-' {
			off = -off
		}
		return time.FixedZone(s, off), nil
	}
	if s == "Z" {
		return time.UTC, nil
	}
	return time.LoadLocation(s)
}

// parseBits parses a comma list of elements into a bitset over [lo, hi].
func parseBits(field string, lo, hi int, names []string) (uint64, error) {
	return parseBitsMax(field, lo, hi, hi, names)
}

// parseBitsMax is parseBits where values up to valHi are accepted (hour 24,
// weekday 7) while ranges wrap and steps count over [lo, hi].
func parseBitsMax(field string, lo, hi, valHi int, names []string) (uint64, error) {
	if field == "" {
		return 0, fmt.Errorf("empty")
	}
	var out uint64
	for _, el := range strings.Split(field, ",") {
		if el == "" {
			return 0, fmt.Errorf("empty element in the list")
		}
		b, err := parseElement(el, lo, hi, valHi, names)
		if err != nil {
			return 0, err
		}
		out |= b
	}
	return out, nil
}

func parseElement(el string, lo, hi, valHi int, names []string) (uint64, error) {
	if strings.ContainsAny(el, "~%") {
		return 0, fmt.Errorf("random (~) and modulo (%%) values are not supported")
	}
	rng, stepText, hasStep := strings.Cut(el, "/")
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepText)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("step %q is not a positive number", stepText)
		}
		step = n
	}
	var start, end int
	switch {
	case rng == "*" || rng == "" && hasStep:
		start, end = lo, hi
	case rng == "":
		return 0, fmt.Errorf("empty value")
	default:
		a, b, isRange := strings.Cut(rng, "-")
		var err error
		if start, err = parseValue(a, lo, valHi, names); err != nil {
			return 0, err
		}
		end = start
		if isRange {
			if end, err = parseValue(b, lo, valHi, names); err != nil {
				return 0, err
			}
		} else if hasStep {
			end = hi
		}
	}
	var out uint64
	if start > hi { // hour 24, weekday 7
		start -= hi - lo + 1
	}
	if end > hi {
		end -= hi - lo + 1
	}
	span := end - start
	if span < 0 { // wrapping range: 22-2, fri-mon
		span += hi - lo + 1
	}
	for i := 0; i <= span; i += step {
		v := start + i
		if v > hi {
			v -= hi - lo + 1
		}
		out |= 1 << uint(v)
	}
	return out, nil
}

func parseValue(s string, lo, hi int, names []string) (int, error) {
	for i, n := range names {
		if strings.EqualFold(s, n) {
			if len(names) == 12 {
				return i + 1, nil
			}
			return i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi || strings.HasPrefix(s, "+") {
		want := fmt.Sprintf("a number from %d to %d", lo, hi)
		if names != nil {
			want += " or a name (" + names[0] + ", " + names[1] + ", …)"
		}
		return 0, fmt.Errorf("%q is not %s", s, want)
	}
	return n, nil
}

func (c *Cron) parseDOM(field string) error {
	if field == "*" || field == "?" {
		c.domStar = true
		return nil
	}
	for _, el := range strings.Split(field, ",") {
		low := strings.ToLower(el)
		switch {
		case low == "l" || low == "last":
			c.domEnd |= 1 << 1
		case strings.HasPrefix(el, "-") && !strings.Contains(el[1:], "-") && !strings.Contains(el, "/"):
			n, err := strconv.Atoi(el[1:])
			if err != nil || n < 1 || n > 31 {
				return fmt.Errorf("%q: a day counted from the end must be -1 to -31", el)
			}
			c.domEnd |= 1 << uint(n)
		default:
			b, err := parseElement(el, 1, 31, 31, nil)
			if err != nil {
				return err
			}
			c.dom |= uint32(b)
		}
	}
	return nil
}

func parseDOW(field string) (uint8, []nthWeekday, error) {
	if field == "*" || field == "?" {
		return 0x7f, nil, nil
	}
	var bits uint8
	var nth []nthWeekday
	for _, el := range strings.Split(field, ",") {
		if el == "" {
			return 0, nil, fmt.Errorf("empty element in the list")
		}
		if day, n, ok := strings.Cut(el, "#"); ok {
			wd, err := parseValue(day, 0, 7, dayNames)
			if err != nil {
				return 0, nil, err
			}
			k := -1
			if !strings.EqualFold(n, "l") && !strings.EqualFold(n, "last") {
				k, err = strconv.Atoi(n)
				if err != nil || k == 0 || k < -5 || k > 5 {
					return 0, nil, fmt.Errorf("%q: the number after # must be 1 to 5, -1 to -5 or L", el)
				}
			}
			nth = append(nth, nthWeekday{wd: time.Weekday(wd % 7), n: k})
			continue
		}
		b, err := parseElement(el, 0, 6, 7, dayNames)
		if err != nil {
			return 0, nil, err
		}
		bits |= uint8(b)
	}
	return bits, nth, nil
}

// dayMatch reports whether the date matches the day fields.
func (c *Cron) dayMatch(y int, m time.Month, d int) bool {
	last := daysIn(y, m)
	dom := c.domStar || c.dom&(1<<uint(d)) != 0 || c.domEnd&(1<<uint(last-d+1)) != 0
	wd := time.Date(y, m, d, 12, 0, 0, 0, time.UTC).Weekday()
	dow := c.dow&(1<<uint(wd)) != 0
	for _, e := range c.nth {
		if e.wd == wd && (e.n == (d-1)/7+1 || e.n == -((last-d)/7+1)) {
			dow = true
		}
	}
	if !c.domStar && !c.dowStar {
		if c.dayAnd {
			return dom && dow
		}
		return dom || dow
	}
	return dom && dow
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 12, 0, 0, 0, time.UTC).Day()
}

// nextYears bounds the search of Next: a day-of-month that exists only in
// leap years on a given weekday (29 2 mon&) recurs every 28 years.
const nextYears = 50

// Next returns the first fire time strictly after after, in UTC, and false
// when there is none within 50 years.
//
// Each matching wall-clock time (date, hour, minute, second) in the Cron's
// zone becomes instants as follows:
//   - it occurs once: that instant;
//   - it does not exist (spring forward, 02:30 in America/New_York on
//     2024-03-10): with a fixed hour field it fires at the transition (03:00
//     EDT, the first instant after the gap), so a daily job still runs that
//     day; with an hour field starting with "*" it is skipped (an hourly job
//     keeps one-hour spacing);
//   - it occurs twice (fall back, 02:30 in Europe/Berlin on 2024-10-27):
//     with a fixed hour field it fires once, at the first occurrence (02:30
//     CEST); with an hour field starting with "*" it fires at both.
//
// Several wall-clock times mapping to one instant fire once.
func (c *Cron) Next(after time.Time) (time.Time, bool) {
	after = after.Truncate(time.Second)
	au := after.Unix()
	start := after.In(c.loc)
	y, m, d := start.Date()
	// Start a day early: a wall-clock time of the previous local date may
	// map (through a gap) to an instant after after.
	day := time.Date(y, m, d-1, 12, 0, 0, 0, time.UTC)
	limit := day.AddDate(nextYears, 0, 0)
	for day.Before(limit) {
		y, m, d = day.Date()
		if c.months&(1<<uint(m)) == 0 {
			day = time.Date(y, m+1, 1, 12, 0, 0, 0, time.UTC)
			continue
		}
		if c.dayMatch(y, m, d) {
			if best, ok := c.bestInDay(y, m, d, au); ok {
				return time.Unix(best, 0).UTC(), true
			}
		}
		day = day.AddDate(0, 0, 1)
	}
	return time.Time{}, false
}

// bestInDay returns the earliest fire instant (Unix seconds) after au among
// the day's matching wall-clock times.
func (c *Cron) bestInDay(y int, m time.Month, d int, au int64) (int64, bool) {
	var best int64
	found := false
	// Quick reject: the whole day lies before au.
	if hi, _ := c.bounds(y, m, d, 23, 59, 59); hi <= au {
		return 0, false
	}
	for h := range 24 {
		if c.hours&(1<<uint(h)) == 0 {
			continue
		}
		_, lo := c.bounds(y, m, d, h, 0, 0)
		hi, _ := c.bounds(y, m, d, h, 59, 59)
		if hi <= au || found && lo >= best {
			continue
		}
		for mi := range 60 {
			if c.minutes&(1<<uint(mi)) == 0 {
				continue
			}
			_, lo := c.bounds(y, m, d, h, mi, 0)
			hi, _ := c.bounds(y, m, d, h, mi, 59)
			if hi <= au || found && lo >= best {
				continue
			}
			for s := c.seconds; s != 0; s &= s - 1 {
				sec := bits.TrailingZeros64(s)
				for _, u := range c.instants(y, m, d, h, mi, sec) {
					if u > au && (!found || u < best) {
						best, found = u, true
					}
				}
			}
		}
	}
	return best, found
}

// occurrences returns the instants (Unix seconds, ascending) at which the
// wall-clock time occurs in loc (0, 1 or 2), and for a time in a gap the
// transition instant.
func occurrences(loc *time.Location, y int, m time.Month, d, h, mi, s int) (occ [2]int64, n int, gap int64) {
	naive := time.Date(y, m, d, h, mi, s, 0, time.UTC).Unix()
	var offs [3]int
	for i, delta := range [3]int64{-86400, 0, 86400} {
		_, offs[i] = time.Unix(naive+delta, 0).In(loc).Zone()
	}
	minOff, maxOff := offs[0], offs[0]
	for i, o := range offs {
		minOff, maxOff = min(minOff, o), max(maxOff, o)
		dup := false
		for _, p := range offs[:i] {
			dup = dup || p == o
		}
		if dup {
			continue
		}
		u := naive - int64(o)
		if _, got := time.Unix(u, 0).In(loc).Zone(); got == o {
			if n == 1 && occ[0] > u {
				occ[0], occ[1] = u, occ[0]
			} else {
				occ[n] = u
			}
			n++
		}
	}
	if n == 0 {
		// In a gap: the instant naive-maxOff is before the transition.
		_, end := time.Unix(naive-int64(maxOff), 0).In(loc).ZoneBounds()
		gap = naive - int64(minOff)
		if !end.IsZero() {
			gap = end.Unix()
		}
	}
	return occ, n, gap
}

// bounds returns the latest and earliest instant the wall-clock time can
// stand for, DST rules aside.
func (c *Cron) bounds(y int, m time.Month, d, h, mi, s int) (hi, lo int64) {
	occ, n, gap := occurrences(c.loc, y, m, d, h, mi, s)
	if n == 0 {
		return gap, gap
	}
	return occ[n-1], occ[0]
}

// instants applies the DST rules of Next to one wall-clock time.
func (c *Cron) instants(y int, m time.Month, d, h, mi, s int) []int64 {
	occ, n, gap := occurrences(c.loc, y, m, d, h, mi, s)
	switch {
	case n == 0 && c.hourWild:
		return nil
	case n == 0:
		return []int64{gap}
	case n == 2 && !c.hourWild:
		return occ[:1]
	}
	return occ[:n]
}
