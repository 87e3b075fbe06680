package web_test

import (
	"fmt"
	"github.com/resq-go/resq/internal/testkit"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/web"
)

// A dashboard whose Redis user cannot write (a viewer ACL user) says on
// every page that the audit log is not being written, rather than only
// logging it.
func TestAuditUnwritableIsShown(t *testing.T) {
	t.Parallel()
	f := setup(t, web.Config{}, false)
	rules, err := resq.ACLRules(resq.ACLViewer, f.ns, true)
	if err != nil {
		t.Fatal(err)
	}
	user := "dash-viewer-" + f.ns
	f.srv.Do(t, append([]string{"ACL", "SETUSER", user, "on", ">pw"}, rules...)...)
	t.Cleanup(func() { f.srv.Try("ACL", "DELUSER", user) })
	conn, err := resq.Open(resq.ConnConfig{URL: fmt.Sprintf("redis://%s:pw@%s/%d", user, f.srv.Addr(), f.srv.DB()), Namespace: f.ns, Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h, err := web.New(conn, web.Config{Users: testUsers(t), Logger: testkit.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	f.ts = ts
	b := f.browser(t, "")
	b.login(viewerName, viewerPass) // the sign-in's audit entry is refused
	r := b.get("/overview")
	if r.StatusCode != 200 || !strings.Contains(r.body, "The audit log cannot be written") || !strings.Contains(r.body, "NOPERM") {
		t.Fatalf("overview does not say the audit log is down:\n%s", r.body)
	}
	if n := f.srv.Do(t, "EXISTS", f.key("resq:audit")); n != "0" {
		t.Fatalf("audit key exists")
	}
}
