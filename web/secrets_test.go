package web_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
	"github.com/resq-go/resq/web"
)

type login struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type note struct {
	Text string `json:"text"`
}

// TestSecretsNeverShown plants known secrets in encrypted args and in a
// password field, queued, running and failed, and searches every page.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	const plainSecret, encSecret, encFailSecret = "pw-SECRET-plain-1", "SECRET-encrypted-2", "SECRET-encrypted-3"
	kf, err := resq.NewKeyringFile(resq.KeyHMAC)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := resq.ParseKeyring(kf)
	if err != nil {
		t.Fatal(err)
	}
	enc := testkit.Client(t, f.conn, resq.ClientConfig{Keyring: kr, EncryptAll: true})
	if _, err := enc.Enqueue(bg, "vault", "Store", note{Text: encSecret}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.client.Enqueue(bg, "auth", "Login", login{User: "bob", Password: plainSecret}); err != nil {
		t.Fatal(err)
	}

	// Failures of both kinds, from a worker that can decrypt.
	w, err := resq.NewWorker(f.conn, resq.WorkerConfig{Queues: []string{"fail"}, Concurrency: 1, Keyring: kr,
		PollInterval: 10 * time.Millisecond, Hostname: "sec", Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("Login", func(ctx context.Context, job *resq.Job) error { return resq.Fail("Denied", "login refused") })
	w.HandleFunc("Store", func(ctx context.Context, job *resq.Job) error { return resq.Fail("Full", "vault full") })
	if _, err := f.client.Enqueue(bg, "fail", "Login", login{User: "bob", Password: plainSecret}); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Enqueue(bg, "fail", "Store", note{Text: encFailSecret}); err != nil {
		t.Fatal(err)
	}
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "two failures", func() bool { n, _ := f.admin.FailureCount(bg); return n == 2 })
	stop()

	b := f.browser(t, "")
	b.login(adminName, adminPass)
	var all strings.Builder
	for _, p := range []string{"/", "/overview.poll", "/working", "/queues", "/queues/vault", "/queues/auth", "/workers",
		"/failed", "/failed/0", "/failed/1", "/failed?class=Store", "/stats", "/stats/keys", "/audit", "/metrics"} {
		r := b.get(p)
		if r.StatusCode != 200 {
			t.Errorf("GET %s: %d", p, r.StatusCode)
		}
		all.WriteString(r.body)
	}
	pages := all.String()
	for _, s := range []string{plainSecret, encSecret, encFailSecret} {
		if strings.Contains(pages, s) {
			t.Errorf("a page shows the secret %q", s)
		}
	}
	mustContain(t, "pages", pages, "encrypted", resq.Redacted, "Login", "Store")
}
