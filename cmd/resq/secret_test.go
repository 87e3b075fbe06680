package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// dumpDatabase renders every key of the test's Redis database with its
// value, whatever its type.
func dumpDatabase(t *testing.T, f *fixture) string {
	t.Helper()
	var sb strings.Builder
	for _, k := range strings.Split(f.srv.Do(t, "KEYS", "*"), "\n") {
		if k == "" {
			continue
		}
		typ := f.srv.Do(t, "TYPE", k)
		fmt.Fprintf(&sb, "%s (%s) = ", k, typ)
		switch typ {
		case "string":
			sb.WriteString(f.srv.Do(t, "GET", k))
		case "list":
			sb.WriteString(f.srv.Do(t, "LRANGE", k, "0", "-1"))
		case "set":
			sb.WriteString(f.srv.Do(t, "SMEMBERS", k))
		case "hash":
			sb.WriteString(f.srv.Do(t, "HGETALL", k))
		case "zset":
			sb.WriteString(f.srv.Do(t, "ZRANGE", k, "0", "-1", "WITHSCORES"))
		case "stream":
			sb.WriteString(f.srv.Do(t, "XRANGE", k, "-", "+"))
		default:
			t.Fatalf("key %s has type %s, which this dump does not read", k, typ)
		}
		sb.WriteString("\n")
	}
	return sb.String()
}

// A known secret goes into two encrypted jobs through the CLI: one
// succeeds, one fails with an --exec program that echoes its stdin (the
// plaintext) to stderr, which becomes the failure's error. The secret sits
// in a field whose name gives nothing away, so only encryption and
// scrubbing keep it out of sight. Every Redis key and value (while a job
// runs and after), every log line at debug level, and the output of every
// inspecting command, with and without --json, are searched: zero hits.
// The handler does get the plaintext.
func TestEncryptedSecretNeverLeaks(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	kr := filepath.Join(dir, "keyring.json")
	const secret = "pw-7Hq2-CLI-SECRET-9vX4"
	needles := []string{secret, "7Hq2-CLI", "SECRET-9vX4"}

	var outputs strings.Builder // stdout and stderr of every command
	ok := func(args ...string) string {
		t.Helper()
		r := f.run(args...)
		outputs.WriteString(r.stdout + r.stderr) // not the command line: it holds the secret

		if r.code != 0 {
			t.Fatalf("resq %s: %v", strings.Join(args, " "), r)
		}
		return r.stdout
	}
	views := func() {
		t.Helper()
		for _, args := range [][]string{{"queues"}, {"peek", "pay"}, {"failed", "list"}, {"workers"}, {"stats"}} {
			ok(append([]string{"--log-level", "debug"}, args...)...)
			ok(append([]string{"--log-level", "debug", "--json"}, args...)...)
		}
	}

	ok("keys", "new", "--out", kr)
	ok("--log-level", "debug", "enqueue", "--keyring", kr, "--encrypt", "--queue", "pay", "Charge", `[{"note":"`+secret+`","amount":5}]`)
	ok("--log-level", "debug", "enqueue", "--keyring", kr, "--encrypt", "--queue", "pay", "Echo", `[{"note":"`+secret+`"}]`)
	views() // queued

	gate, started := filepath.Join(dir, "go"), filepath.Join(dir, "charge-started")
	charge := script(t, dir, "charge.sh", `cat > "`+dir+`/charge-stdin.json"
touch "`+started+`"
while [ ! -f "`+gate+`" ]; do sleep 0.02; done`)
	echo := script(t, dir, "echo.sh", `echo "could not charge:" >&2
cat >&2
exit 1`)
	b := f.start("--log-level", "debug", "work", "--keyring", kr, "--queues", "pay", "--concurrency", "1", "--poll", "0.05",
		"--exec", "Charge="+charge, "--exec", "Echo="+echo)
	testkit.Eventually(t, "Charge running", func() bool { _, err := os.Stat(started); return err == nil })
	dump := dumpDatabase(t, f) // the running job's in-flight record, the queued Echo job
	views()                    // workers shows the running job
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "both jobs processed", func() bool { return f.stats().Processed == 2 })
	b.cancel()
	if code := b.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("work exit %d\n%s", code, b.stderr.String())
	}
	dump += dumpDatabase(t, f)
	views() // the failure record

	// The handler saw the plaintext.
	if in, err := os.ReadFile(filepath.Join(dir, "charge-stdin.json")); err != nil || !strings.Contains(string(in), secret) {
		t.Fatalf("the Charge program's stdin = %q, %v", in, err)
	}
	// The echoed plaintext in the failure is scrubbed, not dropped.
	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list")
	if len(fails) != 1 || fails[0].Exception != resq.ExceptionExecFailed || !fails[0].Job.Encrypted ||
		!strings.HasPrefix(fails[0].Error, "exit status 1: could not charge:") || !strings.Contains(fails[0].Error, `"note":"`+resq.Redacted+`"`) ||
		!strings.Contains(strings.Join(fails[0].Backtrace, "\n"), resq.Redacted) {
		t.Fatalf("failure record: %+v", fails)
	}
	t.Logf("the failure's error: %q", fails[0].Error)
	if !strings.Contains(dump, `"enc":{"kid":`) || !strings.Contains(dump, "worker:") {
		t.Fatalf("the dump holds no ciphertext or no in-flight record:\n%s", dump)
	}
	logs := b.stderr.String()
	mustContain(t, "work log", logs, "level=DEBUG", `msg="job done"`, `msg="job failed"`, "class=Echo")

	for what, text := range map[string]string{"Redis": dump, "CLI output": outputs.String(), "worker log": logs, "worker stdout": b.stdout.String()} {
		for _, n := range needles {
			if i := strings.Index(text, n); i >= 0 {
				t.Errorf("the secret is in the %s: …%s…", what, text[max(0, i-200):min(len(text), i+200)])
			}
		}
	}
	t.Logf("searched %d bytes of Redis dumps, %d of CLI output, %d of worker log: no secret", len(dump), outputs.Len(), len(logs))
}
