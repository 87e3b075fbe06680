package recurring

import (
	"strings"
	"testing"
	"time"
)

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	l, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// nextN lists the first n fire times after from, in UTC RFC 3339.
func nextN(t *testing.T, c *Cron, from time.Time, n int) []string {
	t.Helper()
	var out []string
	for range n {
		next, ok := c.Next(from)
		if !ok {
			t.Fatalf("%s: no next time after %v", c, from)
		}
		if !next.After(from) {
			t.Fatalf("%s: Next(%v) = %v, not after", c, from, next)
		}
		out = append(out, next.Format(time.RFC3339))
		from = next
	}
	return out
}

func checkTimes(t *testing.T, expr string, loc *time.Location, from string, want ...string) {
	t.Helper()
	c, err := ParseCron(expr, loc)
	if err != nil {
		t.Fatalf("ParseCron(%q): %v", expr, err)
	}
	f, err := time.Parse(time.RFC3339, from)
	if err != nil {
		t.Fatal(err)
	}
	got := nextN(t, c, f, len(want))
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%q from %s:\n got %v\nwant %v", expr, from, got, want)
	}
}

func TestCronBasics(t *testing.T) {
	t.Parallel()
	utc := time.UTC
	checkTimes(t, "*/15 * * * *", utc, "2024-01-15T10:23:45Z", "2024-01-15T10:30:00Z", "2024-01-15T10:45:00Z", "2024-01-15T11:00:00Z")
	// Six fields, seconds first.
	checkTimes(t, "*/20 * * * * *", utc, "2024-01-15T10:23:45Z", "2024-01-15T10:24:00Z", "2024-01-15T10:24:20Z", "2024-01-15T10:24:40Z")
	checkTimes(t, "30 0 9 * * mon-fri", utc, "2024-01-19T09:00:30Z", "2024-01-22T09:00:30Z", "2024-01-23T09:00:30Z")
	// Names, wrap-around ranges, 7 = sunday, 24 = 0.
	checkTimes(t, "0 22-2/2 * * SAT-sun", utc, "2024-01-19T12:00:00Z", "2024-01-20T00:00:00Z", "2024-01-20T02:00:00Z", "2024-01-20T22:00:00Z", "2024-01-21T00:00:00Z")
	checkTimes(t, "0 24 * * 7", utc, "2024-01-15T00:00:00Z", "2024-01-21T00:00:00Z")
	checkTimes(t, "0 0 1 jan,Jul *", utc, "2024-01-15T00:00:00Z", "2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z")
	// Last day, n-th from the end, n-th weekday, last weekday.
	checkTimes(t, "0 0 L * *", utc, "2024-01-15T00:00:00Z", "2024-01-31T00:00:00Z", "2024-02-29T00:00:00Z", "2024-03-31T00:00:00Z")
	checkTimes(t, "0 0 -2 * *", utc, "2024-02-01T00:00:00Z", "2024-02-28T00:00:00Z", "2024-03-30T00:00:00Z")
	checkTimes(t, "0 9 * * fri#2", utc, "2024-01-01T00:00:00Z", "2024-01-12T09:00:00Z", "2024-02-09T09:00:00Z")
	checkTimes(t, "0 9 * * mon#L", utc, "2024-01-01T00:00:00Z", "2024-01-29T09:00:00Z", "2024-02-26T09:00:00Z")
	// Both day fields restricted: either matches (cron), or both with "&".
	checkTimes(t, "0 0 13 * fri", utc, "2024-09-01T00:00:00Z", "2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z")
	checkTimes(t, "0 0 13 * fri&", utc, "2024-01-01T00:00:00Z", "2024-09-13T00:00:00Z", "2024-12-13T00:00:00Z")
	checkTimes(t, "0 0 29 2 *", utc, "2024-03-01T00:00:00Z", "2028-02-29T00:00:00Z")
	checkTimes(t, "@hourly", utc, "2024-01-15T10:23:45Z", "2024-01-15T11:00:00Z")
	checkTimes(t, "5/20 * * * *", utc, "2024-01-15T10:23:45Z", "2024-01-15T10:25:00Z", "2024-01-15T10:45:00Z", "2024-01-15T11:05:00Z")
	// Trailing zones: a name and an offset; the 6-field form with a zone.
	checkTimes(t, "0 9 * * * Asia/Tokyo", utc, "2024-01-15T00:00:00Z", "2024-01-16T00:00:00Z")
	checkTimes(t, "0 9 * * * +05:30", utc, "2024-01-15T00:00:00Z", "2024-01-15T03:30:00Z")
	checkTimes(t, "15 0 9 * * * America/New_York", utc, "2024-01-15T00:00:00Z", "2024-01-15T14:00:15Z")
	// Without a zone, the loader's location applies.
	checkTimes(t, "0 9 * * *", mustZone(t, "Europe/Berlin"), "2024-01-15T00:00:00Z", "2024-01-15T08:00:00Z")
}

func TestCronErrors(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string]string{
		"":                     "empty cron",
		"* * * *":              "has 4 fields",
		"61 * * * *":           `minute field "61"`,
		"* 25 * * *":           "hour field",
		"* * 32 * *":           "day of month",
		"* * * 13 *":           "month field",
		"* * * * 8":            "day of week",
		"* * * * fri#6":        "1 to 5",
		"*/0 * * * *":          "positive number",
		"0 0 30 2 *":           "never fires",
		"0 0 * * * Mars/Olymp": "time zone",
		"@reboot":              "not supported",
		"@often":               "unknown cron shortcut",
		"~ * * * *":            "random",
		"* * * * tue%2":        "modulo",
		"1,,2 * * * *":         "empty element",
	} {
		_, err := ParseCron(expr, time.UTC)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseCron(%q) = %v; want an error containing %q", expr, err, want)
		}
	}
}

// The DST rules of Next, on the spring-forward and fall-back days of
// America/New_York (2024-03-10 02:00 EST→03:00 EDT; 2024-11-03 02:00
// EDT→01:00 EST) and Europe/Berlin (2024-03-31 02:00 CET→03:00 CEST;
// 2024-10-27 03:00 CEST→02:00 CET).
func TestCronDST(t *testing.T) {
	t.Parallel()
	ny, berlin := mustZone(t, "America/New_York"), mustZone(t, "Europe/Berlin")

	// A daily 02:30 job on spring-forward day: 02:30 does not exist; it
	// runs at the transition (03:00 EDT = 07:00 UTC; 03:00 CEST = 01:00 UTC).
	checkTimes(t, "30 2 * * *", ny, "2024-03-09T12:00:00Z", "2024-03-10T07:00:00Z", "2024-03-11T06:30:00Z")
	checkTimes(t, "30 2 * * *", berlin, "2024-03-30T12:00:00Z", "2024-03-31T01:00:00Z", "2024-04-01T00:30:00Z")
	checkTimes(t, "30 2 * * * Europe/Berlin", time.UTC, "2024-03-30T12:00:00Z", "2024-03-31T01:00:00Z")
	// Two wall-clock times in the gap run once, at the transition.
	checkTimes(t, "0,30 2 * * *", ny, "2024-03-10T05:00:00Z", "2024-03-10T07:00:00Z", "2024-03-11T06:00:00Z")

	// Fall-back day. New York: 02:30 exists once (EST, 07:30 UTC); 01:30
	// exists twice and fires once, at the first (EDT, 05:30 UTC).
	checkTimes(t, "30 2 * * *", ny, "2024-11-02T12:00:00Z", "2024-11-03T07:30:00Z", "2024-11-04T07:30:00Z")
	checkTimes(t, "30 1 * * *", ny, "2024-11-02T12:00:00Z", "2024-11-03T05:30:00Z", "2024-11-04T06:30:00Z")
	// Berlin: 02:30 exists twice (CEST 00:30 UTC, CET 01:30 UTC): once.
	checkTimes(t, "30 2 * * *", berlin, "2024-10-26T12:00:00Z", "2024-10-27T00:30:00Z", "2024-10-28T01:30:00Z")

	// Interval-like (hour field "*"): real-time spacing. Spring forward: the
	// hour that does not exist is skipped; fall back: the repeated hour fires
	// twice.
	checkTimes(t, "30 * * * *", ny, "2024-03-10T05:00:00Z", "2024-03-10T05:30:00Z", "2024-03-10T06:30:00Z", "2024-03-10T07:30:00Z")
	checkTimes(t, "0,30 * * * *", ny, "2024-11-03T04:45:00Z",
		"2024-11-03T05:00:00Z", "2024-11-03T05:30:00Z", // 01:00, 01:30 EDT
		"2024-11-03T06:00:00Z", "2024-11-03T06:30:00Z", // 01:00, 01:30 EST
		"2024-11-03T07:00:00Z")
	checkTimes(t, "0 */1 * * *", berlin, "2024-10-26T23:30:00Z", "2024-10-27T00:00:00Z", "2024-10-27T01:00:00Z", "2024-10-27T02:00:00Z")
	// Seconds through the gap and the overlap.
	checkTimes(t, "58 59 1 * * *", ny, "2024-11-03T00:00:00Z", "2024-11-03T05:59:58Z", "2024-11-04T06:59:58Z")
}

// Next from many starting points is consistent: strictly later, and the
// next of a time just before a fire time is that fire time.
func TestCronNextConsistent(t *testing.T) {
	t.Parallel()
	ny := mustZone(t, "America/New_York")
	for _, expr := range []string{"30 2 * * *", "*/7 * * * *", "0 0 L * *", "13 1-3 * * sun"} {
		c, err := ParseCron(expr, ny)
		if err != nil {
			t.Fatal(err)
		}
		from := time.Date(2024, 3, 9, 0, 0, 0, 0, time.UTC)
		for range 200 {
			next, ok := c.Next(from)
			if !ok || !next.After(from) {
				t.Fatalf("%s: Next(%v) = %v, %v", expr, from, next, ok)
			}
			if again, _ := c.Next(next.Add(-time.Second)); !again.Equal(next) {
				t.Fatalf("%s: Next(%v - 1s) = %v, want %v", expr, next, again, next)
			}
			from = next
		}
	}
}

// BenchmarkCronNext measures Next for a dense, a daily and a rare
// expression across a DST change (no assertion on time).
func BenchmarkCronNext(b *testing.B) {
	ny, _ := time.LoadLocation("America/New_York")
	for _, e := range []string{"* * * * * *", "30 2 * * *", "0 0 29 2 mon&"} {
		c, err := ParseCron(e, ny)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(e, func(b *testing.B) {
			at := time.Date(2024, 11, 3, 5, 0, 0, 0, time.UTC)
			for range b.N {
				c.Next(at)
			}
		})
	}
}
