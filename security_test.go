package resq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

func keyring(t *testing.T, typ string) (*resq.Keyring, []byte) {
	t.Helper()
	data, err := resq.NewKeyringFile(typ)
	if err != nil {
		t.Fatal(err)
	}
	k, err := resq.ParseKeyring(data)
	if err != nil {
		t.Fatal(err)
	}
	return k, data
}

// failuresByClass runs w until n jobs were processed and returns the
// failures keyed by job class.
func drain(t *testing.T, b *bundle, w *resq.Worker, n int64) map[string]resq.FailureView {
	t.Helper()
	ctx := context.Background()
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, fmt.Sprintf("%d processed", n), func() bool { st, _ := b.admin.Stats(ctx); return st.Processed >= n })
	stop()
	fs, err := b.admin.Failures(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]resq.FailureView{}
	for _, f := range fs {
		out[f.Job.Class] = f
	}
	return out
}

// Signing: a worker with verification keys runs signed jobs and refuses
// unsigned, forged, altered and moved ones with a "signature" failure; an
// allow-unsigned queue takes unsigned jobs.
func TestSignatures(t *testing.T) {
	for _, typ := range []string{resq.KeyHMAC, resq.KeyEd25519} {
		t.Run(typ, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := context.Background()
			k, data := keyring(t, typ)
			signer := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: k})
			if _, err := signer.Enqueue(ctx, "q", "Good", 1); err != nil {
				t.Fatal(err)
			}
			// Altered: change the args of a signed job in place.
			e, _ := signer.Enqueue(ctx, "q", "Altered", 1)
			raw := b.srv.Do(t, "RPOP", b.key("queue:q"))
			b.srv.Do(t, "RPUSH", b.key("queue:q"), strings.Replace(raw, `"args":[1]`, `"args":[2]`, 1))
			// Moved: a job signed for queue "other" pushed onto "q".
			signer.Enqueue(ctx, "other", "Moved", 1)
			b.srv.Do(t, "RPUSH", b.key("queue:q"), b.srv.Do(t, "LPOP", b.key("queue:other")))
			// Forged: a signature from another keyring with the same key id shape.
			other, _ := keyring(t, typ)
			testkit.Client(t, b.conn, resq.ClientConfig{Keyring: other}).Enqueue(ctx, "q", "Forged", 1)
			// Unsigned, on a queue that requires signatures and on one that allows them.
			b.client.Enqueue(ctx, "q", "Unsigned", 1)
			b.client.Enqueue(ctx, "legacy", "Legacy", 1)

			verify := k
			if typ == resq.KeyEd25519 { // workers hold public keys only
				vo, err := resq.VerifyOnlyKeyringFile(data)
				if err != nil {
					t.Fatal(err)
				}
				if strings.Contains(string(vo), `"private"`) {
					t.Fatal("verify-only keyring still holds a private key")
				}
				if verify, err = resq.ParseKeyring(vo); err != nil {
					t.Fatal(err)
				}
			}
			w := newWorker(t, b, resq.WorkerConfig{Queues: []string{"q", "legacy"}, Concurrency: 1, Keyring: verify, AllowUnsigned: []string{"legacy"}})
			var ran []string
			for _, c := range []string{"Good", "Altered", "Moved", "Forged", "Unsigned", "Legacy"} {
				w.HandleFunc(c, func(ctx context.Context, j *resq.Job) error { ran = append(ran, j.Class); return nil })
			}
			fs := drain(t, b, w, 6)
			if strings.Join(ran, ",") != "Good,Legacy" {
				t.Fatalf("ran %v; want only Good and Legacy", ran)
			}
			for _, c := range []string{"Altered", "Moved", "Forged", "Unsigned"} {
				f, ok := fs[c]
				if !ok || f.Exception != resq.ExceptionSignature || !strings.Contains(f.Error, "signature") {
					t.Errorf("%s: failure %+v; want a signature failure", c, f)
				}
			}
			if !strings.Contains(fs["Unsigned"].Error, "not signed") || !strings.Contains(fs["Forged"].Error, "does not hold") && !strings.Contains(fs["Forged"].Error, "does not match") {
				t.Errorf("unclear reasons: %q / %q", fs["Unsigned"].Error, fs["Forged"].Error)
			}
			_ = e
		})
	}
}

// A producer keyring cannot be loaded when others can read it.
func TestKeyringFileMode(t *testing.T) {
	t.Parallel()
	data, _ := resq.NewKeyringFile(resq.KeyHMAC)
	p := filepath.Join(t.TempDir(), "keys.json")
	os.WriteFile(p, data, 0o644)
	if _, err := resq.LoadKeyring(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("loading a world-readable keyring: %v", err)
	}
	os.Chmod(p, 0o600)
	if _, err := resq.LoadKeyring(p); err != nil {
		t.Fatal(err)
	}
}

type card struct {
	Number string `json:"number" resq:"secret"`
	Name   string `json:"name"`
}

// Encryption: the handler sees plaintext; queues, in-flight records and
// failure records hold ciphertext; admin views say "encrypted"; the error
// message is scrubbed of the secret. A known secret appears in no Redis key
// or value, and in no admin output.
func TestEncryptionKeepsSecretsOutOfRedis(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	k, _ := keyring(t, resq.KeyHMAC)
	const secret = "4111-1111-1111-1111-SECRET"
	c := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: k, EncryptAll: true})
	c.Enqueue(ctx, "pay", "Charge", card{Number: secret, Name: "ok"})
	c.Enqueue(ctx, "pay", "Charge", card{Number: secret, Name: "fail"})
	hold := make(chan struct{})
	var seen atomic.Value
	w := newWorker(t, b, resq.WorkerConfig{Queues: []string{"pay"}, Concurrency: 1, Keyring: k})
	resq.Handle(w, "Charge", func(ctx context.Context, a card) error {
		seen.Store(a.Number)
		if a.Name == "fail" {
			return fmt.Errorf("card %s declined", a.Number)
		}
		<-hold
		return nil
	})
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "first job running", func() bool { return seen.Load() != nil })
	// While the job runs, its in-flight record is in Redis: check it too.
	dump := dumpRedis(t, b)
	close(hold)
	testkit.Eventually(t, "2 processed", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == 2 })
	stop()
	if seen.Load() != secret {
		t.Fatalf("handler saw %v", seen.Load())
	}
	dump += dumpRedis(t, b)
	if strings.Contains(dump, secret) || strings.Contains(dump, "1111-1111") {
		t.Fatalf("the secret is in Redis:\n%s", dump)
	}
	if !strings.Contains(dump, `"enc":{"kid":`) {
		t.Fatalf("no ciphertext in Redis:\n%s", dump)
	}
	fs, _ := b.admin.Failures(ctx, 0, 10)
	if len(fs) != 1 || !strings.Contains(fs[0].Error, "card [REDACTED] declined") || !fs[0].Job.Encrypted {
		t.Fatalf("failure = %+v", fs)
	}
	out, _ := json.Marshal(fs)
	if strings.Contains(string(out), secret) || !strings.Contains(string(out), resq.EncryptedArgs) {
		t.Fatalf("admin output: %s", out)
	}
}

// Declared secret fields (struct tags, and well-known names) are redacted in
// admin views of queued jobs, and in error messages of failures.
func TestRedactionOfDeclaredSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	b.client.Enqueue(ctx, "q", "Charge", card{Number: "5500-0000-0000-0004", Name: "Ann"})
	b.client.Enqueue(ctx, "q", "Login", map[string]string{"user": "ann", "password": "hunter22"})
	jobs, err := b.admin.Peek(ctx, "q", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(jobs)
	if strings.Contains(string(out), "5500-0000") || strings.Contains(string(out), "hunter22") {
		t.Fatalf("secrets visible in peek: %s", out)
	}
	if !strings.Contains(string(out), `"name":"Ann"`) || !strings.Contains(string(out), `"user":"ann"`) {
		t.Fatalf("non-secret fields should stay visible: %s", out)
	}
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	resq.Handle(w, "Charge", func(ctx context.Context, a card) error { return errors.New("declined " + a.Number) })
	w.HandleFunc("Login", func(ctx context.Context, j *resq.Job) error { return errors.New("bad login with hunter22") })
	fs := drain(t, b, w, 2)
	if fs["Charge"].Error != "declined [REDACTED]" || fs["Login"].Error != "bad login with [REDACTED]" {
		t.Fatalf("errors not scrubbed: %q, %q", fs["Charge"].Error, fs["Login"].Error)
	}
}

// Hostile payloads pushed straight into Redis: nothing runs, each becomes a
// failure naming the limit or the problem, and the worker stays small.
func TestHostilePayloads(t *testing.T) {
	// Not parallel: the allocation check reads process-wide MemStats, which
	// parallel tests would inflate.
	b := setup(t)
	ctx := context.Background()
	huge := `{"class":"Run","args":["` + strings.Repeat("A", 16<<20) + `"]}`
	deep := `{"class":"Run","args":[` + strings.Repeat("[", 200000) + strings.Repeat("]", 200000) + `]}`
	many := `{"class":"Run","args":[` + strings.TrimSuffix(strings.Repeat("1,", 300), ",") + `]}`
	for _, p := range []string{
		huge, deep, many,
		`{"class":"Run","args":[1],"class":"Other"}`,
		`{"class":"Run; rm -rf /","args":[]}`,
		`{"class":"$(touch /tmp/pwned)","args":["; cat /etc/passwd"]}`,
		`{"class":"Run","args":"not an array"}`,
	} {
		b.srv.Do(t, "RPUSH", b.key("queue:q"), p)
	}
	var ran atomic.Int64
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1})
	w.HandleFunc("Run", func(ctx context.Context, j *resq.Job) error { ran.Add(1); return nil })
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "7 processed", func() bool { st, _ := b.admin.Stats(ctx); return st.Processed == 7 })
	elapsed := time.Since(start)
	stop()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if ran.Load() != 0 {
		t.Fatalf("%d hostile jobs ran", ran.Load())
	}
	fs, _ := b.admin.Failures(ctx, 0, 10)
	if len(fs) != 7 {
		t.Fatalf("%d failures, want 7", len(fs))
	}
	wants := []string{"payload is 16.0 MiB, limit 512 KiB", "nesting deeper than the limit of 32", "300 arguments, limit 256",
		`duplicate key "class"`, `no handler is registered for class "Run; rm -rf /"`, `no handler is registered for class "$(touch /tmp/pwned)"`, `"args" is not an array`}
	for i, f := range fs {
		if !strings.Contains(f.Error, wants[i]) {
			t.Errorf("failure %d: %s %q; want %q", i, f.Exception, f.Error, wants[i])
		}
	}
	if _, err := os.Stat("/tmp/pwned"); err == nil {
		t.Fatal("a class name was executed")
	}
	// The 16 MiB payload never reached the worker whole: its record keeps 1 KiB.
	if n := len(fs[0].Raw); n > 4096 {
		t.Fatalf("oversize failure record is %d bytes", n)
	}
	if grew := int64(after.TotalAlloc) - int64(before.TotalAlloc); grew > 8<<20 {
		t.Errorf("worker allocated %d MiB handling hostile payloads", grew>>20)
	}
	t.Logf("7 hostile payloads refused in %s", elapsed)
}

// The Client refuses what a worker would refuse.
func TestClientLimits(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.client.Enqueue(ctx, "q", "Big", strings.Repeat("x", 600<<10))
	if err == nil || !strings.Contains(err.Error(), "limit 512 KiB") || !errors.Is(err, resq.ErrPayloadLimit) {
		t.Fatalf("big enqueue: %v (want a refusal matching ErrPayloadLimit)", err)
	}
	_, err = b.client.EnqueueWith(ctx, resq.EnqueueParams{Queue: "q", Class: "Deep", RawArgs: json.RawMessage(strings.Repeat("[", 40) + strings.Repeat("]", 40))})
	if err == nil || !strings.Contains(err.Error(), "nesting") || !errors.Is(err, resq.ErrPayloadLimit) {
		t.Fatalf("deep enqueue: %v (want a refusal matching ErrPayloadLimit)", err)
	}
	tooMany := make([]any, 300)
	if _, err := b.client.Enqueue(ctx, "q", "Many", tooMany...); !errors.Is(err, resq.ErrPayloadLimit) {
		t.Fatalf("300 args: %v (want a refusal matching ErrPayloadLimit)", err)
	}
	if _, err := b.client.Enqueue(ctx, "q", "Small", 1); errors.Is(err, resq.ErrPayloadLimit) {
		t.Fatalf("a small job: %v", err)
	}
	if _, err := b.admin.ClearQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.EnqueueWith(ctx, resq.EnqueueParams{Queue: "q", Class: "X", Encrypt: true}); err == nil {
		t.Fatal("encrypt without a keyring should fail")
	}
	if n, _ := b.admin.QueueSize(ctx, "q"); n != 0 {
		t.Fatalf("%d jobs enqueued", n)
	}
}

// Replay protection: the same signed job pushed twice runs once; a retry
// from the failure list is not a replay.
func TestReplayWindow(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	k, _ := keyring(t, resq.KeyHMAC)
	c := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: k})
	c.Enqueue(ctx, "q", "Once")
	raw := b.srv.Do(t, "LINDEX", b.key("queue:q"), "0")
	var ran atomic.Int64
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 1, Keyring: k, ReplayWindow: time.Hour})
	w.HandleFunc("Once", func(ctx context.Context, j *resq.Job) error { ran.Add(1); return nil })
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "first run", func() bool { return ran.Load() == 1 })
	b.srv.Do(t, "RPUSH", b.key("queue:q"), raw) // the captured job, replayed
	testkit.Eventually(t, "replay refused", func() bool { n, _ := b.admin.FailureCount(ctx); return n == 1 })
	fs, _ := b.admin.Failures(ctx, 0, 1)
	if fs[0].Exception != resq.ExceptionReplay || ran.Load() != 1 {
		t.Fatalf("replay: %+v, ran %d", fs[0], ran.Load())
	}
	if _, err := b.admin.RetryFailure(ctx, 0); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "retried job ran", func() bool { return ran.Load() == 2 })
	stop()
}

// dumpRedis renders every key and value of the test's namespace.
func dumpRedis(t *testing.T, b *bundle) string {
	t.Helper()
	var sb strings.Builder
	for _, k := range strings.Split(b.srv.Do(t, "KEYS", b.ns+":*"), "\n") {
		if k == "" {
			continue
		}
		sb.WriteString(k + " = ")
		switch b.srv.Do(t, "TYPE", k) {
		case "string":
			sb.WriteString(b.srv.Do(t, "GET", k))
		case "list":
			sb.WriteString(b.srv.Do(t, "LRANGE", k, "0", "-1"))
		case "set":
			sb.WriteString(b.srv.Do(t, "SMEMBERS", k))
		case "hash":
			sb.WriteString(b.srv.Do(t, "HGETALL", k))
		}
		sb.WriteString("\n")
	}
	return sb.String()
}
