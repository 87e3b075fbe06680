package redistest

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestStartAndDo(t *testing.T) {
	t.Parallel()
	s := Start(t)

	host, port, ok := strings.Cut(s.Addr(), ":")
	if !ok || host != "127.0.0.1" {
		t.Fatalf("Addr = %q, want 127.0.0.1:PORT", s.Addr())
	}
	if p, _ := strconv.Atoi(port); p == 6379 || p != s.Port() || p <= 0 {
		t.Fatalf("port = %q (Port() = %d), want a private port", port, s.Port())
	}
	if want := "redis://" + s.Addr() + "/0"; s.URL() != want {
		t.Fatalf("URL = %q, want %q", s.URL(), want)
	}

	cases := []struct {
		args []string
		want string
	}{
		{[]string{"PING"}, "PONG"},
		{[]string{"SET", "k", "hello world\r\nwith CRLF"}, "OK"},
		{[]string{"GET", "k"}, "hello world\r\nwith CRLF"},
		{[]string{"GET", "missing"}, "(nil)"},
		{[]string{"RPUSH", "l", "a", "b", "c"}, "3"},
		{[]string{"LRANGE", "l", "0", "-1"}, "a\nb\nc"},
		{[]string{"LRANGE", "nolist", "0", "-1"}, ""},
		{[]string{"SET", "empty", ""}, "OK"},
		{[]string{"GET", "empty"}, ""},
		{[]string{"EVAL", "return {1, {'x', 'y'}, false, 'z'}", "0"}, "1\nx\ny\n(nil)\nz"},
	}
	for _, c := range cases {
		if got := s.Do(t, c.args...); got != c.want {
			t.Errorf("Do(%q) = %q, want %q", c.args, got, c.want)
		}
	}

	// Error replies: Try returns *ReplyError; Do would fail the test.
	_, err := s.Try("LPUSH", "k", "x") // k is a string
	var re *ReplyError
	if !errors.As(err, &re) || !strings.HasPrefix(re.Msg, "WRONGTYPE") {
		t.Fatalf("Try(LPUSH on string) err = %v, want WRONGTYPE ReplyError", err)
	}
	ft := &fakeTB{TB: t}
	ft.run(func() { s.Do(ft, "LPUSH", "k", "x") })
	if !ft.failed || !strings.Contains(ft.msg, "WRONGTYPE") {
		t.Fatalf("Do on error reply: failed=%v msg=%q, want a test failure naming WRONGTYPE", ft.failed, ft.msg)
	}
	// Error inside an array is rendered, not returned.
	got := s.Do(t, "EVAL", "return {1, redis.error_reply('INNER bad')}", "0")
	if got != "1\n(error) INNER bad" {
		t.Fatalf("nested error rendered as %q", got)
	}
}

func TestKillMakesUnreachable(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if !s.Running() || s.PID() == 0 {
		t.Fatal("server not running after Start")
	}
	s.Kill(t)
	if s.Running() {
		t.Fatal("Running() after Kill")
	}
	if out, err := s.Try("PING"); err == nil {
		t.Fatalf("PING after Kill answered %q; want connection error", out)
	}
	s.Kill(t) // idempotent
	s.Stop(t) // idempotent
}

func TestAppendOnlySurvivesKillAndStop(t *testing.T) {
	t.Parallel()
	s := StartWith(t, Options{AppendOnly: true})
	addr, dir := s.Addr(), s.Dir()
	if got := s.Do(t, "CONFIG", "GET", "appendonly"); got != "appendonly\nyes" {
		t.Fatalf("appendonly config = %q", got)
	}
	s.Do(t, "SET", "a", "1")
	s.Do(t, "RPUSH", "q", "j1", "j2")

	s.Kill(t)
	s.Restart(t)
	if s.Addr() != addr || s.Dir() != dir {
		t.Fatalf("Restart moved the server: %s %s -> %s %s", addr, dir, s.Addr(), s.Dir())
	}
	if got := s.Do(t, "GET", "a"); got != "1" {
		t.Fatalf("after Kill+Restart GET a = %q, want 1", got)
	}
	if got := s.Do(t, "LRANGE", "q", "0", "-1"); got != "j1\nj2" {
		t.Fatalf("after Kill+Restart LRANGE q = %q", got)
	}

	s.Do(t, "SET", "b", "2")
	s.Stop(t)
	if _, err := s.Try("PING"); err == nil {
		t.Fatal("PING answered after Stop")
	}
	s.Restart(t)
	if got := s.Do(t, "MGET", "a", "b"); got != "1\n2" {
		t.Fatalf("after Stop+Restart MGET = %q, want 1\\n2", got)
	}
}

func TestRestartWithoutPersistenceIsEmpty(t *testing.T) {
	t.Parallel()
	s := Start(t)
	s.Do(t, "SET", "a", "1")
	s.Stop(t)
	s.Restart(t)
	if got := s.Do(t, "GET", "a"); got != "(nil)" {
		t.Fatalf("GET a after restart without AOF = %q, want (nil)", got)
	}
	if got := s.Do(t, "DBSIZE"); got != "0" {
		t.Fatalf("DBSIZE = %q", got)
	}
}

func TestRestartWhileRunningFails(t *testing.T) {
	t.Parallel()
	s := Start(t)
	ft := &fakeTB{TB: t}
	ft.run(func() { s.Restart(ft) })
	if !ft.failed || !strings.Contains(ft.msg, "Stop or Kill") {
		t.Fatalf("Restart while running: failed=%v msg=%q", ft.failed, ft.msg)
	}
	if s.Do(t, "PING") != "PONG" {
		t.Fatal("server disturbed by refused Restart")
	}
}

func TestExtraArgs(t *testing.T) {
	t.Parallel()
	s := StartWith(t, Options{Args: []string{"--maxmemory", "12mb"}})
	if got := s.Do(t, "CONFIG", "GET", "maxmemory"); got != "maxmemory\n12582912" {
		t.Fatalf("maxmemory = %q", got)
	}
}

func TestBadArgsFailWithLog(t *testing.T) {
	t.Parallel()
	ft := &fakeTB{TB: t}
	ft.run(func() { StartWith(ft, Options{Args: []string{"--no-such-option", "1"}}) })
	if !ft.failed {
		t.Fatal("StartWith with a bad option did not fail")
	}
	if !strings.Contains(ft.msg, "redis-server log") || !strings.Contains(ft.msg, "no-such-option") {
		t.Fatalf("failure message lacks the log tail:\n%s", ft.msg)
	}
}

func TestCleanupKillsAndRemovesDir(t *testing.T) {
	t.Parallel()
	var s *Server
	t.Run("inner", func(t *testing.T) {
		s = StartWith(t, Options{AppendOnly: true})
		s.Do(t, "SET", "x", "y")
	})
	if _, err := s.Try("PING"); err == nil {
		t.Fatal("server still answers after its test ended")
	}
	if _, err := os.Stat(s.Dir()); !os.IsNotExist(err) {
		t.Fatalf("dir %s still exists after cleanup (stat err %v)", s.Dir(), err)
	}
}

func TestManyInParallel(t *testing.T) {
	t.Parallel()
	const n = 8
	var mu sync.Mutex
	ports := map[int]bool{}
	for i := 0; i < n; i++ {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			s := Start(t)
			s.Do(t, "SET", "id", fmt.Sprint(i))
			if got := s.Do(t, "GET", "id"); got != fmt.Sprint(i) {
				t.Errorf("server %d GET id = %q (servers not isolated)", i, got)
			}
			mu.Lock()
			if ports[s.Port()] {
				t.Errorf("port %d handed out twice", s.Port())
			}
			ports[s.Port()] = true
			mu.Unlock()
		})
	}
}

func TestMissingRedisServerFails(t *testing.T) {
	// Not parallel: changes PATH.
	t.Setenv("PATH", t.TempDir())
	ft := &fakeTB{TB: t}
	ft.run(func() { Start(ft) })
	if !ft.failed || !strings.Contains(ft.msg, "redis-server not found") {
		t.Fatalf("Start without redis-server: failed=%v msg=%q", ft.failed, ft.msg)
	}
}

func TestPool(t *testing.T) {
	t.Parallel()
	p := NewPool(Options{})
	defer p.Close()

	a := p.Get(t)
	b := p.Get(t)
	if a.Addr() != b.Addr() {
		t.Fatalf("pool handed out different servers: %s %s", a.Addr(), b.Addr())
	}
	if a.DB() == b.DB() || a.DB() == 0 {
		t.Fatalf("pool databases a=%d b=%d, want distinct non-zero", a.DB(), b.DB())
	}
	if want := fmt.Sprintf("redis://%s/%d", a.Addr(), a.DB()); a.URL() != want {
		t.Fatalf("URL = %q, want %q", a.URL(), want)
	}
	a.Do(t, "SET", "k", "from-a")
	if got := b.Do(t, "GET", "k"); got != "(nil)" {
		t.Fatalf("pooled handles not isolated: b sees %q", got)
	}

	var dbA int
	t.Run("release", func(t *testing.T) {
		c := p.Get(t)
		dbA = c.DB()
		c.Do(t, "SET", "leftover", "1")
	})
	t.Run("reuse", func(t *testing.T) {
		c := p.Get(t)
		if c.DB() != dbA {
			t.Logf("db %d not reused (got %d)", dbA, c.DB())
		}
		if got := c.Do(t, "DBSIZE"); got != "0" {
			t.Fatalf("reused database not empty: DBSIZE %s", got)
		}
	})

	ft := &fakeTB{TB: t}
	ft.run(func() { a.Kill(ft) })
	if !ft.failed || !strings.Contains(ft.msg, "pooled") {
		t.Fatalf("Kill on pooled handle: failed=%v msg=%q", ft.failed, ft.msg)
	}
	if a.Do(t, "PING") != "PONG" {
		t.Fatal("pooled server gone")
	}

	dir := a.Dir()
	p.Close()
	if _, err := a.Try("PING"); err == nil {
		t.Fatal("pool server answers after Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("pool dir %s remains after Close", dir)
	}
}

// fakeTB records Fatalf instead of ending the real test.
type fakeTB struct {
	testing.TB
	failed bool
	msg    string
}

type fatalSentinel struct{}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = true
	f.msg = fmt.Sprintf(format, args...)
	panic(fatalSentinel{})
}

func (f *fakeTB) run(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatalSentinel); !ok {
				panic(r)
			}
		}
	}()
	fn()
}
