package resq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

type payloadFields struct {
	Class      string          `json:"class"`
	Args       json.RawMessage `json:"args"`
	ID         string          `json:"id"`
	EnqueuedAt json.RawMessage `json:"enqueued_at"`
	Enc        *struct {
		KID string `json:"kid"`
		CT  string `json:"ct"`
	} `json:"enc"`
	KID   string `json:"kid"`
	Sig   string `json:"sig"`
	Extra string `json:"extra"`
}

func decodeFields(t *testing.T, raw string) payloadFields {
	t.Helper()
	var p payloadFields
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	return p
}

func primaries(t *testing.T, k *resq.Keyring) (sig, enc string) {
	t.Helper()
	for _, key := range k.Keys() {
		if key.Primary && key.Purpose == "signing" {
			sig = key.ID
		}
		if key.Primary && key.Purpose == "encryption" {
			enc = key.ID
		}
	}
	if sig == "" || enc == "" {
		t.Fatalf("keyring has no primaries: %+v", k.Keys())
	}
	return sig, enc
}

// After a rotation, Reencrypt moves queued jobs and failure records onto
// the new keys (only their envelope changes), skips jobs whose signature
// does not verify, keeps unsigned jobs unsigned, and reports what still
// uses the old keys; once the old keys are retired, a worker runs the
// moved jobs with their plaintext args and a retried failure too.
func TestReencryptAfterRotation(t *testing.T) {
	for _, mode := range []string{"scripts", "plain"} {
		for _, typ := range []string{resq.KeyHMAC, resq.KeyEd25519} {
			t.Run(mode+"/"+typ, func(t *testing.T) {
				t.Parallel()
				var b *bundle
				if mode == "plain" {
					b = noScriptsBundle(t) // a Redis user without @scripting
				} else {
					b = setup(t)
				}
				testReencryptAfterRotation(t, b, typ)
			})
		}
	}
}

func testReencryptAfterRotation(t *testing.T, b *bundle, typ string) {
	ctx := context.Background()
	k1, data1 := keyring(t, typ)
	oldSig, oldEnc := primaries(t, k1)
	c1 := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: k1})
	mustEnqueue := func(p resq.EnqueueParams) *resq.Enqueued {
		t.Helper()
		e, err := c1.EnqueueWith(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	enc := mustEnqueue(resq.EnqueueParams{Queue: "pay", Class: "Charge", Args: []any{map[string]string{"card": "4111-secret"}}, Encrypt: true})
	mustEnqueue(resq.EnqueueParams{Queue: "pay", Class: "Signed", Args: []any{7}})
	b.client.Enqueue(ctx, "pay", "Plain", 8) // unsigned: stays unsigned
	// Moved: signed for "other", pushed onto "pay".
	mustEnqueue(resq.EnqueueParams{Queue: "other", Class: "Moved", Args: []any{9}})
	b.srv.Do(t, "RPUSH", b.key("queue:pay"), b.srv.Do(t, "LPOP", b.key("queue:other")))
	// A failure record of an encrypted job.
	mustEnqueue(resq.EnqueueParams{Queue: "bad", Class: "Fail", Args: []any{"x-secret"}, Encrypt: true})
	w := newWorker(t, b, resq.WorkerConfig{Queues: []string{"bad"}, Concurrency: 1, Keyring: k1})
	w.HandleFunc("Fail", func(context.Context, *resq.Job) error { return errors.New("boom") })
	drain(t, b, w, 1)
	// Another producer's extra field in an encrypted payload is kept.
	raw0 := b.srv.Do(t, "LINDEX", b.key("queue:pay"), "0")
	withExtra := strings.Replace(raw0, `"class":"Charge",`, `"class":"Charge","extra":"kept",`, 1)
	b.srv.Do(t, "LSET", b.key("queue:pay"), "0", withExtra)
	before := decodeFields(t, withExtra)

	usage, err := b.admin.KeyUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Charge (enc+sig), Signed, Moved, the failure (enc+sig).
	if usage[oldSig] != 4 || usage[oldEnc] != 2 {
		t.Fatalf("key usage before = %v", usage)
	}

	data2, err := resq.RotateKeyringFile(data1)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := resq.ParseKeyring(data2)
	if err != nil {
		t.Fatal(err)
	}
	newSig, newEnc := primaries(t, k2)
	var calls, lastDone, lastTotal int
	res, err := b.admin.Reencrypt(ctx, resq.ReencryptParams{Keyring: k2, ProgressFunc: func(done, total int) { calls++; lastDone, lastTotal = done, total }})
	if err != nil {
		t.Fatal(err)
	}
	want := resq.ReencryptResult{Scanned: 5, Reencrypted: 2, Resigned: 3, Skipped: 1, Remaining: map[string]int{oldSig: 1}}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("result %+v\nwant   %+v", res, want)
	}
	if calls < 5 || lastDone != 5 || lastTotal != 5 {
		t.Fatalf("progress: %d calls, last %d/%d", calls, lastDone, lastTotal)
	}

	after := decodeFields(t, b.srv.Do(t, "LINDEX", b.key("queue:pay"), "0"))
	if after.Class != before.Class || string(after.Args) != string(before.Args) || after.ID != before.ID ||
		string(after.EnqueuedAt) != string(before.EnqueuedAt) || after.Extra != "kept" || after.ID != enc.ID {
		t.Fatalf("reencrypt changed more than the envelope:\n%+v\n%+v", before, after)
	}
	if after.Enc == nil || after.Enc.KID != newEnc || after.Enc.CT == before.Enc.CT || after.KID != newSig {
		t.Fatalf("not moved to the new keys (%s, %s): %+v", newEnc, newSig, after)
	}
	if p := decodeFields(t, b.srv.Do(t, "LINDEX", b.key("queue:pay"), "2")); p.Class != "Plain" || p.Sig != "" || p.KID != "" {
		t.Fatalf("an unsigned job was signed: %+v", p)
	}
	if p := decodeFields(t, b.srv.Do(t, "LINDEX", b.key("queue:pay"), "3")); p.Class != "Moved" || p.KID != oldSig {
		t.Fatalf("a moved job was re-signed: %+v", p)
	}
	fs, _ := b.admin.Failures(ctx, 0, 10)
	if len(fs) != 1 || fs[0].Error != "boom" || fs[0].Queue != "bad" {
		t.Fatalf("failure record after reencrypt: %+v", fs)
	}
	if again, err := b.admin.Reencrypt(ctx, resq.ReencryptParams{Keyring: k2}); err != nil || again.Reencrypted+again.Resigned != 0 || again.Scanned != 5 {
		t.Fatalf("second run: %+v, %v", again, err)
	}

	// Retire the old keys; workers get the new keyring.
	data3, err := resq.RetireKey(data2, oldSig)
	if err == nil {
		data3, err = resq.RetireKey(data3, oldEnc)
	}
	if err != nil {
		t.Fatal(err)
	}
	if typ == resq.KeyEd25519 {
		if data3, err = resq.VerifyOnlyKeyringFile(data3); err != nil {
			t.Fatal(err)
		}
	}
	k3, err := resq.ParseKeyring(data3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.admin.RetryFailure(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ran := map[string]string{}
	w2 := newWorker(t, b, resq.WorkerConfig{Queues: []string{"pay", "bad"}, Concurrency: 1, Keyring: k3})
	for _, class := range []string{"Charge", "Signed", "Plain", "Moved", "Fail"} {
		w2.HandleFunc(class, func(_ context.Context, j *resq.Job) error {
			mu.Lock()
			ran[j.Class] = string(j.Args)
			mu.Unlock()
			return nil
		})
	}
	fails := drain(t, b, w2, 6)
	if len(ran) != 3 || ran["Charge"] != `[{"card":"4111-secret"}]` || ran["Signed"] != "[7]" || ran["Fail"] != `["x-secret"]` {
		t.Fatalf("ran %v", ran)
	}
	if fails["Plain"].Exception != resq.ExceptionSignature || fails["Moved"].Exception != resq.ExceptionSignature {
		t.Fatalf("failures %+v", fails)
	}
}

// Reencrypt while a worker takes the same jobs: every job runs exactly
// once, none fails, and nothing is left under the old keys.
func TestReencryptWhileWorking(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	k1, data1 := keyring(t, resq.KeyHMAC)
	c1 := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: k1, EncryptAll: true})
	const n = 400
	for i := 0; i < n; i++ {
		if _, err := c1.Enqueue(ctx, "q", "Job", i); err != nil {
			t.Fatal(err)
		}
	}
	data2, _ := resq.RotateKeyringFile(data1)
	k2, _ := resq.ParseKeyring(data2)
	var mu sync.Mutex
	seen := map[string]int{}
	var runs atomic.Int64
	w := newWorker(t, b, resq.WorkerConfig{Concurrency: 4, Keyring: k2})
	w.HandleFunc("Job", func(_ context.Context, j *resq.Job) error {
		mu.Lock()
		seen[string(j.Args)]++
		mu.Unlock()
		runs.Add(1)
		return nil
	})
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "some jobs run", func() bool { return runs.Load() > 10 })
	res, err := b.admin.Reencrypt(ctx, resq.ReencryptParams{Keyring: k2})
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "all jobs run", func() bool { return runs.Load() >= n })
	stop()
	if len(seen) != n || runs.Load() != n {
		t.Fatalf("%d distinct jobs ran %d times; want %d once each", len(seen), runs.Load(), n)
	}
	if nf, _ := b.admin.FailureCount(ctx); nf != 0 {
		fs, _ := b.admin.Failures(ctx, 0, 3)
		t.Fatalf("%d failures: %+v", nf, fs)
	}
	if res.Skipped != 0 || res.Reencrypted+res.Gone < 1 || res.Reencrypted != res.Resigned {
		t.Fatalf("result %+v", res)
	}
	t.Logf("concurrent reencrypt: %+v", res)
}
