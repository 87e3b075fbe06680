package web

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Role is what a signed-in user may do.
type Role int

const (
	// RoleViewer may read every page but change nothing.
	RoleViewer Role = iota + 1
	// RoleAdmin may also retry, remove and clear (every POST action).
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleAdmin:
		return "admin"
	default:
		return fmt.Sprintf("Role(%d)", int(r))
	}
}

// DefaultBcryptCost is the cost HashPassword uses. htpasswd -B uses 5 unless
// told otherwise (-C); any cost from 4 to 31 is accepted in a users file.
const DefaultBcryptCost = 12

// AdminsDirective starts the comment line of a users file that names the
// admins: "# resq-admins: alice, bob". Users not named there are viewers.
// htpasswd keeps comment lines when it updates a file.
const AdminsDirective = "resq-admins:"

// User is one account of the dashboard.
type User struct {
	Name string
	Role Role
	hash []byte
}

// Users are the accounts allowed to sign in. The zero value holds none;
// a dashboard without users asks for no login and answers only on loopback
// host names (see Config.Users and CheckListen).
type Users struct {
	m map[string]*User
}

// Len is the number of users.
func (u Users) Len() int { return len(u.m) }

// Names returns the user names, sorted.
func (u Users) Names() []string {
	out := make([]string, 0, len(u.m))
	for n := range u.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the user called name.
func (u Users) Lookup(name string) (User, bool) {
	p, ok := u.m[name]
	if !ok {
		return User{}, false
	}
	return *p, true
}

// Add adds a user with a bcrypt hash ("$2y$…", "$2a$…" or "$2b$…", as
// htpasswd -B or HashPassword write) and a role.
func (u *Users) Add(name, hash string, role Role) error {
	if err := checkUserName(name); err != nil {
		return err
	}
	if role != RoleViewer && role != RoleAdmin {
		return fmt.Errorf("user %q: unknown role %v (use RoleViewer or RoleAdmin)", name, role)
	}
	if err := checkBcrypt(hash); err != nil {
		return fmt.Errorf("user %q: %w", name, err)
	}
	if _, dup := u.m[name]; dup {
		return fmt.Errorf("user %q is listed twice", name)
	}
	if u.m == nil {
		u.m = map[string]*User{}
	}
	u.m[name] = &User{Name: name, Role: role, hash: []byte(hash)}
	return nil
}

// SetRole changes the role of an existing user (for example from a
// command-line --admins list).
func (u Users) SetRole(name string, role Role) error {
	p, ok := u.m[name]
	if !ok {
		return fmt.Errorf("no user %q", name)
	}
	if role != RoleViewer && role != RoleAdmin {
		return fmt.Errorf("user %q: unknown role %v", name, role)
	}
	p.Role = role
	return nil
}

// maxCost is the highest bcrypt cost among the users (DefaultBcryptCost when
// there are none), used for the dummy hash that unknown names are checked
// against so that they take as long as known ones.
func (u Users) maxCost() int {
	c := 0
	for _, p := range u.m {
		if n, err := bcrypt.Cost(p.hash); err == nil && n > c {
			c = n
		}
	}
	if c == 0 {
		c = DefaultBcryptCost
	}
	return c
}

// HashPassword returns a bcrypt hash of password ("$2a$…", cost
// DefaultBcryptCost) for a users-file line "name:HASH". bcrypt reads at most
// 72 bytes; longer passwords are refused.
func HashPassword(password string) (string, error) {
	if password == "" {
		return "", errors.New("the password is empty")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), DefaultBcryptCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// LoadUsers reads an htpasswd file with bcrypt entries, as written by
// `htpasswd -B -c FILE alice`:
//
//	# resq-admins: alice
//	alice:$2y$05$…
//	bob:$2y$05$…
//
// Every line is "name:hash", a blank line, or a comment starting with "#".
// A comment "# resq-admins: NAME, NAME…" (it may appear more than once)
// makes those users admins; everyone else is a viewer. Hashes other than
// bcrypt ($apr1$ MD5, {SHA}, crypt, plain text) are refused, as are names
// the directive lists but the file lacks.
func LoadUsers(path string) (Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return Users{}, fmt.Errorf("users file: %w", err)
	}
	defer f.Close()
	u, err := ParseUsers(f)
	if err != nil {
		return Users{}, fmt.Errorf("users file %s: %w", path, err)
	}
	return u, nil
}

// ParseUsers reads the users-file format of LoadUsers from r.
func ParseUsers(r io.Reader) (Users, error) {
	var u Users
	var admins []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(text)
		if trimmed == "" {
			continue
		}
		if strings.HasPrefix(trimmed, "#") {
			c := strings.TrimSpace(strings.TrimPrefix(trimmed, "#"))
			if len(c) >= len(AdminsDirective) && strings.EqualFold(c[:len(AdminsDirective)], AdminsDirective) {
				for _, n := range strings.Split(c[len(AdminsDirective):], ",") {
					if n = strings.TrimSpace(n); n != "" {
						admins = append(admins, n)
					}
				}
			}
			continue
		}
		name, hash, ok := strings.Cut(text, ":")
		if !ok {
			return Users{}, fmt.Errorf("line %d: expected name:hash", line)
		}
		if err := u.Add(name, hash, RoleViewer); err != nil {
			return Users{}, fmt.Errorf("line %d: %w", line, err)
		}
	}
	if err := sc.Err(); err != nil {
		return Users{}, err
	}
	for _, n := range admins {
		if err := u.SetRole(n, RoleAdmin); err != nil {
			return Users{}, fmt.Errorf("# %s names %q, who has no line in the file", AdminsDirective, n)
		}
	}
	if u.Len() == 0 {
		return Users{}, errors.New("no users in the file (add one with: htpasswd -B FILE NAME)")
	}
	return u, nil
}

func checkUserName(name string) error {
	if name == "" {
		return errors.New("empty user name")
	}
	if strings.ContainsAny(name, ":\n\r") {
		return fmt.Errorf("user name %q holds ':' or a line break", name)
	}
	if len(name) > 255 {
		return errors.New("user name longer than 255 bytes")
	}
	return nil
}

// checkBcrypt accepts only bcrypt hashes and names the kind of anything else.
func checkBcrypt(hash string) error {
	kind := ""
	switch {
	case strings.HasPrefix(hash, "$2y$"), strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil || len(hash) != 60 {
			return fmt.Errorf("malformed bcrypt hash (%v); recreate it with htpasswd -B", errOr(err, "wrong length"))
		}
		return nil
	case strings.HasPrefix(hash, "$apr1$"):
		kind = "Apache MD5 ($apr1$)"
	case strings.HasPrefix(hash, "{SHA}"):
		kind = "SHA-1 ({SHA})"
	case strings.HasPrefix(hash, "$1$"):
		kind = "MD5-crypt ($1$)"
	case strings.HasPrefix(hash, "$5$"), strings.HasPrefix(hash, "$6$"):
		kind = "SHA-crypt ($5$/$6$)"
	case strings.HasPrefix(hash, "$"):
		kind = "an unknown scheme"
	case hash == "":
		kind = "empty"
	default:
		kind = "crypt or plain text"
	}
	return fmt.Errorf("password hash is %s, not bcrypt: only bcrypt entries are accepted; recreate it with htpasswd -B", kind)
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}
