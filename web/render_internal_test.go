package web

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
)

func TestRedactArgs(t *testing.T) {
	t.Parallel()
	long := `["` + strings.Repeat("é", 300) + `"]`
	cases := []struct {
		name  string
		job   resq.JobView
		limit int
		want  string
	}{
		{"compact", resq.JobView{Args: json.RawMessage(`[ 1, {"a" : "b"} ]`)}, 100, `[1,{"a":"b"}]`},
		{"empty", resq.JobView{}, 100, `[]`},
		{"encrypted by Admin", resq.JobView{Encrypted: true, Args: json.RawMessage(`"[encrypted]"`)}, 100, "encrypted"},
		// Admin marks an undecodable payload that carries ciphertext.
		{"invalid but encrypted", resq.JobView{Encrypted: true, Invalid: "bad", Raw: `{"enc":"zz"}`}, 100, "encrypted"},
		{"invalid: raw bytes never shown", resq.JobView{Invalid: "not JSON", Raw: "password=hunter2"}, 100, "invalid payload (16 bytes, not shown)"},
		{"cut on a rune boundary", resq.JobView{Args: json.RawMessage(long)}, 11, `["éééé… (604 bytes)`},
	}
	for _, c := range cases {
		got := redactArgs(c.job, c.limit)
		if got != c.want {
			t.Errorf("%s: redactArgs = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestSafeNext(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/failed?class=X": "/failed?class=X", "": "/", "failed": "/", "//evil.example": "/", "/\\evil.example": "/",
		"https://evil.example/": "/", "/login?next=/x": "/", "/ok\r\nSet-Cookie: x": "/", "/queues/a%2Fb": "/queues/a%2Fb",
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestChart(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Minute)
	hist := make([]resq.HistoryPoint, 60)
	for i := range hist {
		hist[i] = resq.HistoryPoint{Minute: now.Add(time.Duration(i-59) * time.Minute), Processed: int64(i), Failed: int64(i % 3)}
	}
	c := buildChart(hist)
	if c.Processed != 59*60/2 || c.Failed != 60 || c.Empty {
		t.Errorf("totals %d/%d empty=%v", c.Processed, c.Failed, c.Empty)
	}
	pts := strings.Fields(c.ProcessedLine)
	if len(pts) != 60 || pts[0] != "72,188" || !strings.HasPrefix(pts[59], "944,") {
		t.Errorf("points: first %q last %q (%d)", pts[0], pts[len(pts)-1], len(pts))
	}
	// peak 59 → axis top 100; y of 59 is 188 - 59*174/100 = 86
	if pts[59] != "944,86" || c.Grid[2].Label != "100" {
		t.Errorf("scale: last point %q, top label %q", pts[59], c.Grid[2].Label)
	}
	if len(c.Ticks) != 4 || c.Ticks[3].Anchor != "end" || c.Ticks[0].Anchor != "middle" {
		t.Errorf("ticks: %+v", c.Ticks)
	}
	if e := buildChart(make([]resq.HistoryPoint, 60)); !e.Empty || e.Grid[2].Label != "2" {
		t.Errorf("empty chart: %+v", e)
	}
	for in, want := range map[int64]int64{0: 2, 3: 5, 10: 10, 11: 20, 59: 100, 101: 200, 4999: 5000} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%d) = %d, want %d", in, got, want)
		}
	}
}
