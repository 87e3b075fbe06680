package web_test

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/internal/wire"
	"github.com/resq-go/resq/web"
)

var docsScreenshot = flag.Bool("docs-screenshot", false,
	"rewrite docs/dashboard.png (and docs/dashboard-phone.png) from the browser test")

// findChromium returns the browser to drive: $CHROME, or Debian's chromium.
func findChromium() string {
	if p := os.Getenv("CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// moduleRoot is the repository root (the test runs in web/).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("cannot find the module root from %s", root)
	}
	return root
}

// TestBrowser drives a real headless Chromium through the dashboard, mounted
// under /resq: sign in, see a failed job, retry it, watch a worker run it
// (the overview refreshes itself), clear a queue through a confirm dialog,
// enqueue a delayed job now from the Delayed tab, and save a screenshot of
// every page.
func TestBrowser(t *testing.T) {
	chrome := findChromium()
	if chrome == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("Chromium is not installed, and CI=true: the browser test must run in CI. " +
				"Install it (Debian: apt-get install -y chromium) or set CHROME to its path.")
		}
		t.Skip("Chromium is not installed (Debian: apt-get install -y chromium); set CI=true to make this a failure")
	}
	root := moduleRoot(t)
	shots := filepath.Join(root, "test-artifacts", "screenshots")
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}

	hour := time.Now().Truncate(time.Hour)
	schedules := &fakeSchedules{entries: []web.ScheduleEntry{
		{Name: "nightly_report", Class: "ExportReport", Queue: "slow", Cron: "0 3 * * * Europe/Berlin", Description: "last month's figures",
			Source: "static", NextRun: hour.Add(27 * time.Hour), LastRun: hour.Add(-21 * time.Hour), Args: []byte(`[{"month":"2026-10"}]`)},
		{Name: "clear_cache", Class: "ClearCache", Queue: "low", Every: "1h", Source: "persistent", Removable: true,
			NextRun: hour.Add(time.Hour), LastRun: hour},
	}}
	f := setup(t, web.Config{Prefix: "/resq", Schedules: schedules}, false)
	f.seedDemo(t)

	// The worker: ChargeCard is declined until the test flips approve.
	var approve atomic.Bool
	ran := make(chan string, 16)
	release := make(chan struct{})
	defer close(release) // before the worker's cleanup stops it
	w, err := resq.NewWorker(f.conn, resq.WorkerConfig{Queues: []string{"critical", "slow"}, Concurrency: 3,
		PollInterval: 20 * time.Millisecond, Hostname: "app-1", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	resq.Handle(w, "ChargeCard", func(ctx context.Context, a charge) error {
		if !approve.Load() {
			return resq.Fail("CardDeclined", "card declined by the payment provider (order %d)", a.OrderID)
		}
		ran <- "ChargeCard"
		return nil
	})
	resq.Handle(w, "ExportReport", func(ctx context.Context, a report) error {
		select { // stays busy, so the Working page has something to show
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	testkit.RunWorker(t, w)
	if _, err := f.client.Enqueue(bg, "critical", "ChargeCard", charge{OrderID: 5005, AmountCents: 1999, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Enqueue(bg, "slow", "ExportReport", report{Month: "2026-10"}); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the declined charge to fail", func() bool { n, _ := f.admin.FailureCount(bg); return n == 1 })
	testkit.Eventually(t, "the report to start", func() bool { st, _ := f.admin.Stats(bg); return st.Working == 1 })

	// The browser.
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	// Any console error or exception (a CSP violation among them) fails the test.
	var consoleMu sync.Mutex
	var consoleErrs []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || strings.Contains(m.Text, "Content Security Policy") {
				consoleMu.Lock()
				consoleErrs = append(consoleErrs, string(m.Type)+": "+m.Text+" ("+m.URL+")")
				consoleMu.Unlock()
			}
		}
	}()
	// Confirm dialogs (data-confirm) are accepted.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	var confirms atomic.Int32
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			confirms.Add(1)
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()

	base := f.ts.URL + "/resq"
	// Each step gets 30 s, so a missing element fails fast.
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	text := func(sel string) string {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := chromedp.Run(sctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	shot := func(name string, extra ...string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		for _, p := range append([]string{filepath.Join(shots, name+".png")}, extra...) {
			if err := os.WriteFile(p, png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	docs := func(name string) []string {
		p := filepath.Join(root, "docs", name)
		if _, err := os.Stat(p); *docsScreenshot || os.IsNotExist(err) {
			return []string{p}
		}
		return nil
	}

	// Sign in: the overview sends us to the login form.
	do("open the overview", chromedp.Navigate(base+"/overview"), chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/resq/login?next=") {
		t.Fatalf("not sent to the login form: %s", loc)
	}
	shot("01-login")
	do("sign in",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), adminName),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), adminPass),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#live .cards`)),
	)
	if got := text(".who .user"); got != adminName {
		t.Errorf("signed in as %q", got)
	}
	shot("02-overview", docs("dashboard.png")...)

	// The failed job.
	do("open Failed", chromedp.Click(chromedp.CSS(`nav.tabs a[href="/resq/failed"]`)), chromedp.WaitVisible(chromedp.CSS(`.records .record`)))
	if got := text(".records .record .rhead"); !strings.Contains(got, "ChargeCard") {
		t.Fatalf("failed list shows %q", got)
	}
	mustContain(t, "failed record", text(".records .record .exc-line"), "CardDeclined", "order 5005")
	shot("03-failed")
	do("open the failure", chromedp.Click(chromedp.CSS(`.records .record a.idx`)), chromedp.WaitVisible(chromedp.CSS(`dl.kv`)))
	shot("04-failure")

	// Retry it; the worker now approves the charge and runs it.
	processed := func() int {
		st, _ := f.admin.Stats(bg)
		return int(st.Processed)
	}
	before := processed()
	approve.Store(true)
	do("retry", chromedp.Click(chromedp.CSS(`form[action="/resq/failed/requeue/0"] button`)), chromedp.WaitVisible(chromedp.CSS(`p.flash`)))
	mustContain(t, "flash", text("p.flash"), "requeued on critical")
	select {
	case <-ran:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not run the retried job")
	}
	mustContain(t, "retried record", text("dl.kv"), "Retried")

	// Watch it run: the overview refreshes itself (app.js) without a reload.
	do("overview", chromedp.Navigate(base+"/overview"), chromedp.WaitVisible(chromedp.CSS(`#live .cards`)))
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`window.__notReloaded = true`)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the retried job to be counted", func() bool { return processed() > before })
	want := strconv.Itoa(processed())
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](
		fmt.Sprintf(`window.__notReloaded === true && document.querySelector('#live .cards a:nth-child(2) .v').textContent.replace(/,/g, '') === %q`, want),
		chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("the overview did not refresh itself to processed=%s: %v", want, err)
	}
	if got := text("#live-status"); got != "live" {
		t.Errorf("live status %q", got)
	}

	// Every other page.
	busyID := ""
	ws, _ := f.admin.Workers(bg)
	for _, v := range ws {
		if v.Working != nil {
			busyID = v.ID
		}
	}
	pages := []struct{ name, path, wait string }{
		{"05-working", "/working", "table"},
		{"06-queues", "/queues", "table"},
		{"07-queue", "/queues/mail", "table"},
		{"08-workers", "/workers", "table"},
		{"09-worker", "/workers/" + url.PathEscape(busyID), "dl.kv"},
		{"10-stats", "/stats", "table"},
		{"11-stats-redis", "/stats/redis", "table"},
		{"12-stats-keys", "/stats/keys", "ul.keys"},
	}
	for _, p := range pages {
		do(p.name, chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait)))
		shot(p.name)
		if p.name == "09-worker" {
			mustContain(t, "worker page", text("main"), "app-1", "ExportReport")
		}
	}

	// Clear a queue through its confirm dialog.
	do("clear low", chromedp.Navigate(base+"/queues/low"),
		chromedp.Click(chromedp.CSS(`form[action="/resq/queues/low/clear"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.flash`)))
	if confirms.Load() != 1 {
		t.Errorf("%d confirm dialogs, want 1", confirms.Load())
	}
	if n, _ := f.admin.QueueSize(bg, "low"); n != 0 {
		t.Errorf("queue low holds %d jobs after clear", n)
	}
	do("audit", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS("table")))
	mustContain(t, "audit page", text("table"), "failure.retry", "queue.clear", "queue/low", adminName)
	shot("13-audit")

	// A delayed job: the admin finds it on the Delayed tab, opens its due
	// time and clicks "Enqueue now"; it lands in its queue.
	due := time.Now().Add(2 * time.Hour)
	if _, err := f.client.EnqueueAt(bg, due, "mail", "SendFollowUpEmail", welcome{UserID: 4242, Email: "follow-up@example.com"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.EnqueueAt(bg, due.Add(time.Hour), "low", "ResizeImage", map[string]int{"image_id": 9, "width": 320}); err != nil {
		t.Fatal(err)
	}
	mailBefore, _ := f.admin.QueueSize(bg, "mail")
	do("delayed", chromedp.Navigate(base+"/overview"), chromedp.WaitVisible(chromedp.CSS(`#live .cards`)),
		chromedp.Click(chromedp.CSS(`nav.tabs a[href="/resq/delayed"]`)), chromedp.WaitVisible(chromedp.CSS(`table.delayed`)))
	mustContain(t, "delayed tab", text("table.delayed"), "SendFollowUpEmail", "mail", "ResizeImage")
	shot("16-delayed")
	do("delayed at", chromedp.Click(chromedp.CSS(`table.delayed a.ts`)), chromedp.WaitVisible(chromedp.CSS(`.delayed-jobs .record`)))
	mustContain(t, "jobs at the due time", text(".delayed-jobs"), "SendFollowUpEmail", "follow-up@example.com")
	shot("17-delayed-at")
	do("enqueue now", chromedp.Click(chromedp.CSS(`.delayed-jobs form[action="/resq/delayed/queue_now"] button`)),
		chromedp.WaitVisible(chromedp.CSS(`p.flash`)))
	mustContain(t, "flash after enqueue now", text("p.flash"), "Enqueued SendFollowUpEmail on mail now.")
	if n, _ := f.admin.QueueSize(bg, "mail"); n != mailBefore+1 {
		t.Errorf("queue mail holds %d jobs after enqueue now, want %d", n, mailBefore+1)
	}
	if st, _ := f.admin.DelayedCount(bg); st.Jobs != 1 {
		t.Errorf("%d delayed jobs left, want 1", st.Jobs)
	}
	do("the job in its queue", chromedp.Navigate(base+"/queues/mail?start="+strconv.FormatInt(mailBefore/20*20, 10)),
		chromedp.WaitVisible(chromedp.CSS("table")))
	mustContain(t, "queue mail", text("table"), "follow-up@example.com")
	do("schedule", chromedp.Navigate(base+"/schedule"), chromedp.WaitVisible(chromedp.CSS(`table.schedule`)))
	mustContain(t, "schedule tab", text("table.schedule"), "nightly_report", "cron: 0 3 * * * Europe/Berlin", "every: 1h")
	shot("18-schedule")

	// Phone width.
	do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(base+"/overview"), chromedp.WaitVisible(chromedp.CSS(`#live .cards`)))
	shot("14-phone-overview", docs("dashboard-phone.png")...)
	if wide, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)); wide {
		t.Error("the overview scrolls sideways at phone width")
	}
	do("phone failed", chromedp.Navigate(base+"/failed"), chromedp.WaitVisible(chromedp.CSS(`.records`)))
	shot("15-phone-failed")
	do("phone delayed", chromedp.Navigate(base+"/delayed"), chromedp.WaitVisible(chromedp.CSS(`table.delayed`)))
	shot("19-phone-delayed")
	if wide, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth + 1`)); wide {
		t.Error("the Delayed tab scrolls sideways at phone width")
	}

	// Sign out.
	do("sign out", chromedp.Click(chromedp.CSS(`.who button`)), chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)))

	consoleMu.Lock()
	defer consoleMu.Unlock()
	for _, e := range consoleErrs {
		t.Errorf("browser console: %s", e)
	}
	t.Logf("screenshots in %s", shots)
}

type charge struct {
	OrderID     int    `json:"order_id"`
	AmountCents int    `json:"amount_cents"`
	Currency    string `json:"currency"`
}

type report struct {
	Month string `json:"month"`
}

type welcome struct {
	UserID int    `json:"user_id"`
	Email  string `json:"email"`
}

// seedDemo fills the namespace with what a running system has: waiting jobs
// on a few queues and an hour of processed/failed history for the chart.
func (f *fixture) seedDemo(t *testing.T) {
	t.Helper()
	for i := range 34 {
		if _, err := f.client.Enqueue(bg, "mail", "SendWelcomeEmail", welcome{UserID: 1000 + i, Email: fmt.Sprintf("user%d@example.com", 1000+i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 7 {
		if _, err := f.client.Enqueue(bg, "low", "ResizeImage", map[string]int{"image_id": 700 + i, "width": 640}); err != nil {
			t.Fatal(err)
		}
	}
	// History: the per-minute counters workers keep (resq:history:<minute>).
	keys := wire.NewKeys(f.ns)
	now := time.Now().Unix() / 60
	var processed, failed int64
	defer func() { // the all-time counters include the history
		f.srv.Do(t, "INCRBY", keys.StatProcessed(), strconv.FormatInt(processed+18230, 10))
		f.srv.Do(t, "INCRBY", keys.StatFailed(), strconv.FormatInt(failed+412, 10))
	}()
	for i := int64(1); i < 60; i++ {
		p := 40 + (i*37)%55 + 30*((i/10)%2)
		fl := (i * 7) % 5
		if i%17 == 0 {
			fl += 9
		}
		processed, failed = processed+p, failed+fl
		k := keys.History(now - i)
		f.srv.Do(t, "HSET", k, "processed", strconv.FormatInt(p, 10), "failed", strconv.FormatInt(fl, 10))
		f.srv.Do(t, "EXPIRE", k, "7200")
	}
}
