package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq/internal/testkit"
)

// resq web serves the dashboard on loopback without users, and refuses a
// public address without them.
func TestWebCommand(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.ok("enqueue", "--queue", "mail", "SendWelcome", `[{"user_id":1}]`)

	if r := f.run("web", "--listen", "0.0.0.0:0"); r.code != exitUsage || !strings.Contains(r.stderr, "users") {
		t.Fatalf("web on 0.0.0.0 without users: %v", r)
	}

	schedule := filepath.Join(t.TempDir(), "schedule.yml")
	if err := os.WriteFile(schedule, []byte("nightly_report:\n  cron: \"0 3 * * *\"\n  class: NightlyReport\n  queue: reports\n  description: the nightly report\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f.ok("schedule", "set", "clear_cache", "--json", `{"class":"ClearCache","every":"1h","queue":"low"}`)
	if r := f.run("web", "--listen", "127.0.0.1:0", "--schedule", filepath.Join(t.TempDir(), "missing.yml")); r.code != exitUsage || !strings.Contains(r.stderr, "--schedule") {
		t.Fatalf("web with a missing schedule file: %v", r)
	}

	b := f.start("web", "--listen", "127.0.0.1:0", "--schedule", schedule)
	re := regexp.MustCompile(`dashboard on (http://127\.0\.0\.1:\d+)/`)
	var base string
	testkit.Eventually(t, "dashboard address", func() bool {
		m := re.FindStringSubmatch(b.stderr.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})
	client := &http.Client{Timeout: 5 * time.Second}
	for path, want := range map[string]string{"/queues": "mail", "/queues/mail": "SendWelcome", "/metrics": `resq_queue_length{queue="mail"} 1`,
		"/schedule": "nightly_report", "/schedule?x": "clear_cache"} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("GET %s: %d, want %q in\n%.2000s", path, resp.StatusCode, want, body)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); path != "/metrics" && !strings.Contains(csp, "script-src 'self'") {
			t.Fatalf("GET %s: CSP %q", path, csp)
		}
	}
	b.signal(t, sigTerm)
	if code := b.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("web exit %d\n%s", code, b.stderr.String())
	}
}

// The demo serves the dashboard next to its worker.
func TestDemoServesDashboard(t *testing.T) {
	t.Parallel()
	f := setup(t)
	b := f.start("demo", "--jobs", "6", "--listen", "127.0.0.1:0", "--redis-listen", "127.0.0.1:0")
	re := regexp.MustCompile(`dashboard: (http://127\.0\.0\.1:\d+)/`)
	var base string
	testkit.Eventually(t, "demo dashboard", func() bool {
		m := re.FindStringSubmatch(b.stdout.String())
		if m != nil {
			base = m[1]
		}
		return m != nil
	})
	testkit.Eventually(t, "sample jobs done", func() bool {
		return strings.Contains(b.stdout.String(), "Keeping Redis, the worker and the dashboard running")
	})
	resp, err := http.Get(base + "/failed")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "DeleteEverything") {
		t.Fatalf("demo dashboard /failed: %d\n%.2000s", resp.StatusCode, body)
	}
	b.signal(t, sigTerm)
	if code := b.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("demo exit %d\n%s", code, b.stderr.String())
	}
}
