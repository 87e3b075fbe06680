package wire_test

import (
	"os"
	"os/exec"
	"testing"
	"time"
	_ "time/tzdata" // the zone tests must not depend on the host's zoneinfo

	"github.com/resq-go/resq/internal/wire"
)

// The spec's instant: 2024-01-15 10:23:45 UTC = 1705314225.
var specInstant = time.Date(2024, 1, 15, 10, 23, 45, 0, time.UTC)

func TestRunAtIsUTCWithZAndNoFraction(t *testing.T) {
	t.Parallel()
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range []time.Time{
		specInstant,
		specInstant.Add(987654321 * time.Nanosecond),
		specInstant.In(ny),
		specInstant.In(time.FixedZone("", 5*3600+1800)),
	} {
		if got := wire.RunAt(in); got != "2024-01-15T10:23:45Z" {
			t.Errorf("RunAt(%v) = %q, want 2024-01-15T10:23:45Z", in, got)
		}
	}
}

func TestTimeLayouts(t *testing.T) {
	t.Parallel()
	ny, _ := time.LoadLocation("America/New_York")
	in := specInstant.In(ny)
	cases := []struct{ layout, want string }{
		{wire.RunAtLayout, "2024-01-15T05:23:45Z"}, // callers convert to UTC first (RunAt does)
		{wire.StartedLayout, "2024-01-15 05:23:45 -0500"},
		{wire.HeartbeatLayout, "2024-01-15T05:23:45-05:00"},
		{wire.FailedAtLayout, "2024/01/15 05:23:45 EST"},
	}
	for _, c := range cases {
		if got := in.Format(c.layout); got != c.want {
			t.Errorf("Format(%q) = %q, want %q", c.layout, got, c.want)
		}
	}
	utc := specInstant
	for layout, want := range map[string]string{
		wire.StartedLayout:   "2024-01-15 10:23:45 +0000",
		wire.HeartbeatLayout: "2024-01-15T10:23:45+00:00",
		wire.FailedAtLayout:  "2024/01/15 10:23:45 UTC",
	} {
		if got := utc.Format(layout); got != want {
			t.Errorf("UTC Format(%q) = %q, want %q", layout, got, want)
		}
	}
}

// Started, Heartbeat and FailedAt use the process's local zone (§0.5). The
// zone is fixed at process start from TZ, so the checks run in child
// processes of this test binary (setting time.Local here would race with
// parallel tests).
func TestLocalZoneFormats(t *testing.T) {
	if zone := os.Getenv("RESQ_WIRE_TZ_CHILD"); zone != "" {
		checkLocalZoneFormats(t, zone)
		return
	}
	t.Parallel()
	for _, zone := range []string{"UTC", "America/New_York"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLocalZoneFormats$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "TZ="+zone, "RESQ_WIRE_TZ_CHILD="+zone)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("TZ=%s: %v\n%s", zone, err, out)
		}
	}
}

func checkLocalZoneFormats(t *testing.T, zone string) {
	want := map[string][3]string{ // zone -> Started, Heartbeat, FailedAt
		"UTC":              {"2024-01-15 10:23:45 +0000", "2024-01-15T10:23:45+00:00", "2024/01/15 10:23:45 UTC"},
		"America/New_York": {"2024-01-15 05:23:45 -0500", "2024-01-15T05:23:45-05:00", "2024/01/15 05:23:45 EST"},
	}[zone]
	if name, _ := specInstant.Local().Zone(); (zone == "UTC") != (name == "UTC") {
		t.Fatalf("TZ=%s was not applied (local zone %q)", zone, name)
	}
	in := specInstant.Add(700 * time.Millisecond) // fractions are dropped
	if got := wire.Started(in); got != want[0] {
		t.Errorf("Started = %q, want %q", got, want[0])
	}
	if got := wire.Heartbeat(in); got != want[1] {
		t.Errorf("Heartbeat = %q, want %q", got, want[1])
	}
	if got := wire.FailedAt(in); got != want[2] {
		t.Errorf("FailedAt = %q, want %q", got, want[2])
	}
	// TV-11's retried_at at 10:30:00.
	retried := time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)
	wantRetried := map[string]string{"UTC": "2024/01/15 10:30:00 UTC", "America/New_York": "2024/01/15 05:30:00 EST"}[zone]
	if got := wire.FailedAt(retried); got != wantRetried {
		t.Errorf("FailedAt(10:30) = %q, want %q", got, wantRetried)
	}
	if zone == "America/New_York" {
		summer := time.Date(2024, 7, 15, 10, 23, 45, 0, time.UTC)
		if got := wire.FailedAt(summer); got != "2024/07/15 06:23:45 EDT" {
			t.Errorf("FailedAt(summer) = %q", got)
		}
		if got := wire.Heartbeat(summer); got != "2024-07-15T06:23:45-04:00" {
			t.Errorf("Heartbeat(summer) = %q", got)
		}
		if got := wire.Started(summer); got != "2024-07-15 06:23:45 -0400" {
			t.Errorf("Started(summer) = %q", got)
		}
	}
	// Whatever the zone, every format reads back as the same instant.
	for _, s := range []string{wire.Started(in), wire.Heartbeat(in), wire.FailedAt(in), wire.RunAt(in)} {
		got, ok := wire.ParseTime(s)
		if !ok || !got.Equal(specInstant) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", s, got, ok, specInstant)
		}
	}
}

// §0.5: a Go reader must accept every format Ruby, node-resque and goworker
// write.
func TestParseTimeFormats(t *testing.T) {
	t.Parallel()
	at := specInstant
	cases := []struct {
		in   string
		want time.Time
	}{
		// run_at, heartbeats, RFC 3339 with and without fraction
		{"2024-01-15T10:23:45Z", at},
		{"2024-01-15T10:23:45+00:00", at},
		{"2024-01-15T05:23:45-05:00", at},
		{"2024-01-15T15:53:45+05:30", at},
		{"2024-01-15T10:23:45.123456789Z", at.Add(123456789)},
		{"2024-01-15T11:23:45.5+01:00", at.Add(500 * time.Millisecond)},
		// failed_at / retried_at, Redis backend
		{"2024/01/15 10:23:45 UTC", at},
		{"2024/01/15 05:23:45 EST", at},
		{"2024/07/15 06:23:45 EDT", time.Date(2024, 7, 15, 10, 23, 45, 0, time.UTC)},
		{"2024/01/15 14:23:45 +04", at}, // Ruby's %Z for a zone with no abbreviation
		// retried_at, multi-queue backend (no zone: UTC, as DateTime.parse)
		{"2024/01/15 10:30:00", time.Date(2024, 1, 15, 10, 30, 0, 0, time.UTC)},
		// worker:<id>:started, delayed:last_enqueued_at (Time#to_s)
		{"2024-01-15 10:23:45 +0000", at},
		{"2024-01-15 05:23:45 -0500", at},
		// node-resque: JavaScript Date#toString
		{"Mon Jan 15 2024 10:23:45 GMT+0000 (Coordinated Universal Time)", at},
		{"Mon Jan 15 2024 05:23:45 GMT-0500 (Eastern Standard Time)", at},
		{"Mon Jan 15 2024 15:53:45 GMT+0530 (India Standard Time)", at},
		// goworker: Go time.Time.String(), with and without monotonic reading
		{"2024-01-15 10:23:45.123456789 +0000 UTC m=+0.001", at.Add(123456789)},
		{"2024-01-15 05:23:45.5 -0500 EST m=+12.000000001", at.Add(500 * time.Millisecond)},
		{"2024-01-15 10:23:45 +0000 UTC", at},
		// node's worker:<id>:started: integer Unix seconds
		{"1705314225", at},
		{"  2024-01-15T10:23:45Z \n", at},
	}
	for _, c := range cases {
		got, ok := wire.ParseTime(c.in)
		if !ok {
			t.Errorf("ParseTime(%q) refused", c.in)
			continue
		}
		if !got.Equal(c.want) {
			t.Errorf("ParseTime(%q) = %v, want %v", c.in, got.UTC(), c.want.UTC())
		}
	}
}

func TestParseTimeRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "   ", "garbage", "2024-13-45T10:23:45Z", "yesterday at noon", "12ab"} {
		if got, ok := wire.ParseTime(in); ok {
			t.Errorf("ParseTime(%q) accepted: %v", in, got)
		}
	}
}
