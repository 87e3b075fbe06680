package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// keyMaterial returns every secret, private and public key string in a
// keyring file, to check that no output shows one.
func keyMaterial(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Signing, Encryption struct {
			Keys []struct{ Secret, Private, Public string }
		}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range append(f.Signing.Keys, f.Encryption.Keys...) {
		for _, s := range []string{k.Secret, k.Private, k.Public} {
			if s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

type keysDoc struct {
	File string         `json:"file"`
	Keys []resq.KeyInfo `json:"keys"`
}

func (d keysDoc) primary(purpose string) string {
	for _, k := range d.Keys {
		if k.Primary && k.Purpose == purpose {
			return k.ID
		}
	}
	return ""
}

// The keys commands write keyrings with mode 0600, never overwrite one by
// accident, rewrite atomically, and print key ids, never key material.
func TestKeysFileCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	kr := filepath.Join(dir, "keyring.json")
	env := []string{"RESQ_NO_TITLE=1"}
	var outputs strings.Builder
	ok := func(args ...string) string {
		t.Helper()
		r := runWith(env, args...)
		outputs.WriteString(r.stdout + r.stderr)
		if r.code != 0 {
			t.Fatalf("resq %s: %v", strings.Join(args, " "), r)
		}
		return r.stdout
	}
	fail := func(code int, want string, args ...string) {
		t.Helper()
		r := runWith(env, args...)
		outputs.WriteString(r.stdout + r.stderr)
		if r.code != code || !strings.Contains(r.stderr, want) {
			t.Fatalf("resq %s: want exit %d with %q; got %v", strings.Join(args, " "), code, want, r)
		}
	}

	out := ok("keys", "new", "--out", kr)
	mustContain(t, "keys new", out, "wrote keyring "+kr+" (mode 0600)", "signing", "ed25519", "encryption", "aes-256-gcm", "resq keys public")
	if m := mode(t, kr); m != 0o600 {
		t.Fatalf("keyring mode %04o", m)
	}
	first, _ := os.ReadFile(kr)
	fail(2, "already exists", "keys", "new", "--out", kr)
	if now, _ := os.ReadFile(kr); string(now) != string(first) {
		t.Fatal("keys new overwrote a keyring without --force")
	}
	fail(2, "missing --out", "keys", "new")
	fail(2, `--type "rsa"`, "keys", "new", "--out", filepath.Join(dir, "x.json"), "--type", "rsa")

	var doc keysDoc
	if err := json.Unmarshal([]byte(ok("keys", "new", "--out", kr, "--force", "--type", "hmac-sha256", "--json")), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 2 || doc.Keys[0].Type != resq.KeyHMAC || !doc.Keys[0].Primary || mode(t, kr) != 0o600 {
		t.Fatalf("keys new --force --type hmac-sha256: %+v, mode %04o", doc, mode(t, kr))
	}
	ok("keys", "new", "--out", kr, "--force") // back to Ed25519
	if err := json.Unmarshal([]byte(ok("keys", "list", "--keyring", kr, "--json")), &doc); err != nil {
		t.Fatal(err)
	}
	oldSig, oldEnc := doc.primary("signing"), doc.primary("encryption")

	// Rotate: new primaries, old keys kept, still 0600, no temporary left.
	out = ok("keys", "rotate", "--keyring", kr)
	mustContain(t, "keys rotate", out, "old keys kept", oldSig, oldEnc, "resq keys reencrypt --keyring "+kr)
	if err := json.Unmarshal([]byte(ok("keys", "list", "--json"+"="+"true", "--keyring", kr)), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Keys) != 4 || doc.primary("signing") == oldSig || doc.primary("encryption") == oldEnc || mode(t, kr) != 0o600 {
		t.Fatalf("after rotate: %+v, mode %04o", doc, mode(t, kr))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("rotate left files behind: %v", entries)
	}
	// Through RESQ_KEYRING and a symlink: the link stays, the file changes.
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(kr, link); err != nil {
		t.Fatal(err)
	}
	r := runWith(append(env, "RESQ_KEYRING="+link), "keys", "rotate")
	if r.code != 0 {
		t.Fatalf("rotate through RESQ_KEYRING and a symlink: %v", r)
	}
	outputs.WriteString(r.stdout + r.stderr)
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v", err)
	}
	json.Unmarshal([]byte(ok("keys", "list", "--keyring", kr, "--json")), &doc)
	if len(doc.Keys) != 6 {
		t.Fatalf("after the second rotate: %d keys", len(doc.Keys))
	}

	// Public: no private key, mode 0600, cannot sign or be rotated.
	pub := filepath.Join(dir, "workers.json")
	out = ok("keys", "public", "--keyring", kr, "--out", pub)
	mustContain(t, "keys public", out, "cannot sign", "public key only", "shared secrets")
	data, _ := os.ReadFile(pub)
	if strings.Contains(string(data), `"private"`) || mode(t, pub) != 0o600 {
		t.Fatalf("workers' keyring (mode %04o): %s", mode(t, pub), data)
	}
	fail(2, "already exists", "keys", "public", "--keyring", kr, "--out", pub)
	fail(2, "is the keyring itself", "keys", "public", "--keyring", kr, "--out", kr, "--force")
	fail(2, "cannot sign", "keys", "rotate", "--keyring", pub)

	// Retire: not a primary, must exist. Redis is checked unless --force
	// (this environment has no Redis: the check fails and says so).
	fail(2, "no key nope", "keys", "retire", "--keyring", kr, "nope")
	fail(2, "is a primary key", "keys", "retire", "--keyring", kr, doc.primary("signing"))
	fail(1, "--force", "keys", "retire", "--redis", "redis://127.0.0.1:1/0", "--keyring", kr, oldSig)
	out = ok("keys", "retire", "--keyring", kr, oldSig, "--force")
	mustContain(t, "keys retire", out, "retired key "+oldSig)
	json.Unmarshal([]byte(ok("keys", "list", "--keyring", kr, "--json")), &doc)
	if len(doc.Keys) != 5 {
		t.Fatalf("after retire: %+v", doc.Keys)
	}

	// A keyring others can read is refused.
	os.Chmod(kr, 0o644)
	fail(2, "chmod 600", "keys", "list", "--keyring", kr)
	os.Chmod(kr, 0o600)
	fail(2, "does not exist", "keys", "list", "--keyring", filepath.Join(dir, "missing.json"))
	fail(2, "missing --keyring", "keys", "rotate")

	all := outputs.String()
	for _, path := range []string{kr, pub} {
		for _, m := range keyMaterial(t, path) {
			if strings.Contains(all, m) {
				t.Fatalf("key material of %s was printed", path)
			}
		}
	}
}

// Rotate, reencrypt, retire against Redis: queued and failed encrypted jobs
// move to the new keys, retiring a key still in use is refused, and a
// worker holding only the new keys runs the jobs.
func TestKeysReencryptAndRetire(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	kr := filepath.Join(dir, "keyring.json")
	f.ok("keys", "new", "--out", kr)
	var doc keysDoc
	json.Unmarshal([]byte(f.ok("keys", "list", "--keyring", kr, "--json")), &doc)
	oldSig, oldEnc := doc.primary("signing"), doc.primary("encryption")

	var e struct {
		ID        string
		Signed    bool
		Encrypted bool
	}
	f.okJSON(&e, "enqueue", "--keyring", kr, "--encrypt", "--queue", "pay", "Charge", `[{"card":"4111"}]`)
	if !e.Signed || !e.Encrypted {
		t.Fatalf("enqueue --json = %+v", e)
	}
	out := f.ok("enqueue", "--keyring", kr, "--queue", "pay", "Note", `["hello"]`)
	if !strings.HasSuffix(strings.TrimSpace(out), "(signed)") {
		t.Fatalf("enqueue output %q", out)
	}
	// A failure record of an encrypted job (its class has no handler).
	f.ok("enqueue", "--keyring", kr, "--encrypt", "--queue", "other", "Nobody", `[1]`)
	dir2 := t.TempDir()
	okScript := script(t, dir2, "ok.sh", `cat > "`+dir2+`/in-$RESQ_JOB_CLASS"`)
	b := f.start("work", "--keyring", kr, "--queues", "other", "--poll", "0.05", "--exec", "Other="+okScript)
	testkit.Eventually(t, "the failure", func() bool { return f.stats().Failed == 1 })
	b.cancel()
	b.wait(t, 10*time.Second)

	f.ok("keys", "rotate", "--keyring", kr)
	r := f.run("keys", "retire", "--keyring", kr, oldEnc)
	if r.code != 1 || !strings.Contains(r.stderr, "still used by 2") || !strings.Contains(r.stderr, "resq keys reencrypt") {
		t.Fatalf("retire of a key in use: %v", r)
	}
	var outb, errb syncBuffer
	code := run(context.Background(), []string{"keys", "reencrypt", "--keyring", kr},
		system{Stdout: &outb, Stderr: &errb, Env: f.env, StderrIsTerminal: true})
	if code != 0 {
		t.Fatalf("keys reencrypt: exit %d: %s", code, errb.String())
	}
	mustContain(t, "reencrypt progress", errb.String(), "\rre-encrypting 3/3")
	out = outb.String()
	mustContain(t, "reencrypt output", out, "scanned 3 queued jobs and failure records", "re-encrypted  2", "re-signed     3",
		"no job in", oldSig, oldEnc, "resq keys retire --keyring "+kr)
	var res struct {
		resq.ReencryptResult
		Retirable []string `json:"retirable"`
	}
	f.okJSON(&res, "keys", "reencrypt", "--keyring", kr, "--queue", "pay,other")
	if res.Scanned != 3 || res.Reencrypted != 0 || len(res.Retirable) != 2 {
		t.Fatalf("second reencrypt --json = %+v", res)
	}
	f.ok("keys", "retire", "--keyring", kr, oldEnc)
	f.ok("keys", "retire", "--keyring", kr, oldSig)
	pub := filepath.Join(dir, "workers.json")
	f.ok("keys", "public", "--keyring", kr, "--out", pub)
	f.ok("failed", "retry", "0")

	b = f.start("work", "--keyring", pub, "--queues", "pay,other", "--poll", "0.05",
		"--exec", "Charge="+okScript, "--exec", "Note="+okScript, "--exec", "Nobody="+okScript)
	testkit.Eventually(t, "3 more jobs", func() bool { return f.stats().Processed == 4 })
	b.cancel()
	b.wait(t, 10*time.Second)
	for class, want := range map[string]string{"Charge": `[{"card":"4111"}]`, "Note": `["hello"]`, "Nobody": `[1]`} {
		got, err := os.ReadFile(filepath.Join(dir2, "in-"+class))
		if err != nil || string(got) != want {
			t.Errorf("%s got %q, %v; want %q", class, got, err, want)
		}
	}
	if st := f.stats(); st.Failed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Signatures, the unsigned allow-list, replay protection and payload limits
// from the command line.
func TestWorkAndEnqueueSecurityFlags(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dir := t.TempDir()
	kr := filepath.Join(dir, "keyring.json")
	f.ok("keys", "new", "--out", kr, "--type", "hmac-sha256")
	okScript := script(t, dir, "ok.sh", `cat > /dev/null`)

	f.ok("enqueue", "--keyring", kr, "--queue", "secure", "Job", `[1]`)
	f.ok("enqueue", "--queue", "secure", "Job", `[2]`)       // unsigned: refused
	f.ok("enqueue", "--queue", "legacy_ruby", "Job", `[3]`)  // unsigned, allowed
	f.ok("enqueue", "--queue", "secure", "Job", `[1, 2, 3]`) // unsigned and too many args
	signed := f.srv.Do(t, "LINDEX", f.key("queue:secure"), "0")
	r := f.run("enqueue", "--queue", "q", "--max-payload", "16", "Job", `["a long argument"]`)
	if r.code != 1 || !strings.Contains(r.stderr, "limit 16 bytes") || !strings.Contains(r.stderr, "NOT enqueued") {
		t.Fatalf("enqueue over --max-payload: %v", r)
	}
	r = f.run("enqueue", "--queue", "q", "--max-depth", "2", "Job", `[[[1]]]`)
	if r.code != 1 || !strings.Contains(r.stderr, "nesting") {
		t.Fatalf("enqueue over --max-depth: %v", r)
	}

	b := f.start("work", "--keyring", kr, "--allow-unsigned", "legacy_*", "--replay-window", "1h", "--max-args", "2",
		"--queues", "secure,legacy_ruby", "--poll", "0.05", "--exec", "Job="+okScript)
	testkit.Eventually(t, "4 processed", func() bool { return f.stats().Processed == 4 })
	f.srv.Do(t, "RPUSH", f.key("queue:secure"), signed) // the signed job, replayed
	testkit.Eventually(t, "5 processed", func() bool { return f.stats().Processed == 5 })
	b.cancel()
	b.wait(t, 10*time.Second)
	mustContain(t, "work log", b.stderr.String(), "signatures=required", "allow_unsigned=legacy_*", "replay_window=1h0m0s", "keyring="+kr)

	var fails []resq.FailureView
	f.okJSON(&fails, "failed", "list")
	var got []string
	for _, fv := range fails {
		got = append(got, fv.Exception)
	}
	want := []string{resq.ExceptionSignature, resq.ExceptionSignature, resq.ExceptionReplay}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("failures %v, want %v\n%+v", got, want, fails)
	}
	if st := f.stats(); st.Processed != 5 || st.Failed != 3 {
		t.Fatalf("stats %+v", st)
	}

	// The arg limit applies once a job gets past the signature check.
	f.ok("enqueue", "--keyring", kr, "--queue", "secure", "Job", `[1, 2, 3]`)
	b = f.start("work", "--keyring", kr, "--max-args", "2", "--queues", "secure", "--poll", "0.05", "--exec", "Job="+okScript)
	testkit.Eventually(t, "6 processed", func() bool { return f.stats().Processed == 6 })
	b.cancel()
	b.wait(t, 10*time.Second)
	f.okJSON(&fails, "failed", "list", "--start", "3")
	if len(fails) != 1 || fails[0].Exception != resq.ExceptionPayloadLimit || !strings.Contains(fails[0].Error, "3 arguments, limit 2") {
		t.Fatalf("arg limit failure: %+v", fails)
	}
}

func TestSecurityFlagUsageErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := filepath.Join(dir, "ok.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	kr := filepath.Join(dir, "keys.json")
	if r := runWith(nil, "keys", "new", "--out", kr); r.code != 0 {
		t.Fatal(r)
	}
	pub := filepath.Join(dir, "pub.json")
	if r := runWith(nil, "keys", "public", "--keyring", kr, "--out", pub); r.code != 0 {
		t.Fatal(r)
	}
	env := []string{"REDIS_URL=redis://127.0.0.1:1/0", "RESQ_NO_TITLE=1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"enqueue", "--queue", "q", "--encrypt", "Job"}, "--encrypt needs --keyring"},
		{[]string{"enqueue", "--queue", "q", "--keyring", filepath.Join(dir, "none.json"), "Job"}, "does not exist"},
		{[]string{"enqueue", "--queue", "q", "--max-depth", "-1", "Job"}, "--max-depth must not be negative"},
		{[]string{"enqueue", "--queue", "q", "--max-payload", "3GiB", "Job"}, "out of range"},
		{[]string{"work", "--queues", "q", "--exec", "A=" + script, "--allow-unsigned", "q"}, "--allow-unsigned only matters"},
		{[]string{"work", "--queues", "q", "--exec", "A=" + script, "--max-args", "-2"}, "--max-args must not be negative"},
		{[]string{"work", "--queues", "q", "--exec", "A=" + script, "--replay-window", "soon"}, `"soon" is not a duration`},
		{[]string{"enqueue", "--queue", "q", "--keyring", pub, "Job"}, "cannot sign"},
		{[]string{"keys", "reencrypt"}, "missing --keyring"},
		{[]string{"keys", "reencrypt", "--keyring", pub}, "verify-only"},
		{[]string{"keys", "frobnicate"}, `unknown action "frobnicate" for 'resq keys'; use new, list, rotate, public, reencrypt or retire`},
		{[]string{"keys"}, "'resq keys' needs an action"},
	} {
		r := runWith(env, tc.args...)
		wantCode := 2
		if len(tc.args) > 2 && tc.args[1] == "reencrypt" {
			wantCode = 1 // the keyring is fine; the library refuses it
		}
		if r.code != wantCode || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("resq %q: want exit %d with %q, got %v", tc.args, wantCode, tc.want, r)
		}
	}
}
