package web_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/resq-go/resq/web"
)

func TestLoadUsers(t *testing.T) {
	t.Parallel()
	a, v := hashes()[adminName], hashes()[viewerName]
	// htpasswd -B writes $2y$; Go's bcrypt writes $2a$; both are bcrypt.
	y := "$2y$" + strings.TrimPrefix(v, "$2a$")
	file := "# users of the resq dashboard\n# resq-admins: " + adminName + "\n\n" +
		adminName + ":" + a + "\r\n" + viewerName + ":" + y + "\n"
	path := filepath.Join(t.TempDir(), "users.htpasswd")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := web.LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if u.Len() != 2 || strings.Join(u.Names(), ",") != adminName+","+viewerName {
		t.Fatalf("users: %v", u.Names())
	}
	if x, _ := u.Lookup(adminName); x.Role != web.RoleAdmin {
		t.Errorf("%s is %v, want admin", adminName, x.Role)
	}
	if x, _ := u.Lookup(viewerName); x.Role != web.RoleViewer {
		t.Errorf("%s is %v, want viewer", viewerName, x.Role)
	}

	// The $2y$ entry signs in.
	f := setup(t, web.Config{Users: u}, false)
	b := f.browser(t, "")
	b.login(viewerName, viewerPass)

	bad := []struct{ file, want string }{
		{"bob:$apr1$abc$defghijklmnopqrstuvwx\n", "Apache MD5"},
		{"bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", "SHA-1"},
		{"bob:rqXexS6ZhobKA\n", "crypt or plain text"},
		{"bob:$6$salt$hash\n", "SHA-crypt"},
		{"bob:$2y$05$short\n", "malformed bcrypt"},
		{"bob:" + a + "\nbob:" + a + "\n", "twice"},
		{"# resq-admins: carol\nbob:" + a + "\n", `"carol"`},
		{"just a line\n", "expected name:hash"},
		{"# only comments\n", "no users"},
		{":" + a + "\n", "empty user name"},
	}
	for _, c := range bad {
		_, err := web.ParseUsers(strings.NewReader(c.file))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseUsers(%q) = %v, want an error with %q", c.file, err, c.want)
		}
	}
	if _, err := web.LoadUsers(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("LoadUsers of a missing file succeeded")
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	h, err := web.HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret")) != nil {
		t.Error("hash does not verify")
	}
	if c, _ := bcrypt.Cost([]byte(h)); c != web.DefaultBcryptCost {
		t.Errorf("cost %d", c)
	}
	var u web.Users
	if err := u.Add("zed", h, web.RoleAdmin); err != nil {
		t.Errorf("Add with HashPassword's output: %v", err)
	}
	if _, err := web.HashPassword(""); err == nil {
		t.Error("empty password accepted")
	}
	if _, err := web.HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Error("a password longer than bcrypt reads was accepted")
	}
}
