package interop_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// buildResq builds the resq command into a temporary directory. The build
// runs with the test's own environment (toolchain, caches, GOFLAGS), which
// is why it does not go through internal/isolate.
func buildResq(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("the go command is needed to build cmd/resq: %v", err)
		}
	}
	bin := filepath.Join(t.TempDir(), "resq")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/resq-go/resq/cmd/resq")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/resq: %v\n%s", err, out)
	}
	return bin
}

// resqCmd runs the resq command and returns its stdout.
func resqCmd(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"HOME=" + os.Getenv("HOME"), "PATH=" + os.Getenv("PATH")}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("resq %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	return v
}

// Node signs with node:crypto alone, following docs/protocol.md: keys made
// by `resq keys new` (HMAC-SHA256 and Ed25519; Ed25519 workers get the
// verify-only keyring from `resq keys public`), jobs pushed by
// interop/node/sign-enqueue.js. A resq worker runs them with the right
// args (decrypted when encrypted); a node-signed job whose arg was altered
// in Redis, and one moved to another queue, are refused with a signature
// failure and never run.
func TestNodeSignedJobsRunOnResq(t *testing.T) {
	t.Parallel()
	bin := buildResq(t)
	for _, tc := range []struct {
		name, typ string
		encrypt   bool
	}{
		{"hmac-sha256", resq.KeyHMAC, false},
		{"ed25519", resq.KeyEd25519, false},
		{"ed25519 encrypted", resq.KeyEd25519, true},
		{"hmac-sha256 encrypted", resq.KeyHMAC, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := newPeer(t)
			ctx := context.Background()
			dir := t.TempDir()
			kr := filepath.Join(dir, "keyring.json")
			resqCmd(t, bin, "keys", "new", "--out", kr, "--type", tc.typ)
			workerKeys := kr
			if tc.typ == resq.KeyEd25519 {
				workerKeys = filepath.Join(dir, "workers.json")
				resqCmd(t, bin, "keys", "public", "--keyring", kr, "--out", workerKeys)
			}
			sign := func(queue, class, args string) {
				t.Helper()
				argv := []string{"--keyring", kr, "--queue", queue, "--class", class, "--args", args}
				if tc.encrypt {
					argv = append(argv, "--encrypt")
				}
				p.run("sign-enqueue.js", argv...)
			}
			const greetArgs = `[{"user_id":42,"name":"Zoë \"Z\" <z@example.com>","tags":["a","b"]},7,null,"\u2028 ✓"]`
			sign("signed", "Greet", greetArgs)
			sign("signed", "Tampered", `[{"amount":100}]`)
			sign("elsewhere", "Moved", `[1]`)

			// Alter the Tampered job in Redis: one byte of its args (or, when
			// encrypted, of its ciphertext).
			key := p.ns + ":queue:signed"
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(p.srv.Do(t, "RPOP", key)), &fields); err != nil {
				t.Fatal(err)
			}
			if tc.encrypt {
				var enc map[string]string
				json.Unmarshal(fields["enc"], &enc)
				ct, _ := base64.StdEncoding.DecodeString(enc["ct"])
				ct[0] ^= 1
				enc["ct"] = base64.StdEncoding.EncodeToString(ct)
				fields["enc"], _ = json.Marshal(enc)
			} else {
				if string(fields["args"]) != `[{"amount":100}]` {
					t.Fatalf("node wrote args %s", fields["args"])
				}
				fields["args"] = json.RawMessage(`[{"amount":900}]`)
			}
			altered, _ := json.Marshal(fields)
			p.srv.Do(t, "RPUSH", key, string(altered))
			// Move the job signed for "elsewhere" onto "signed".
			p.srv.Do(t, "RPUSH", key, p.srv.Do(t, "LPOP", p.ns+":queue:elsewhere"))

			k, err := resq.LoadKeyring(workerKeys)
			if err != nil {
				t.Fatal(err)
			}
			w := p.worker(resq.WorkerConfig{Queues: []string{"signed"}, Concurrency: 1, Keyring: k})
			var mu sync.Mutex
			ran := map[string]*resq.Job{}
			for _, class := range []string{"Greet", "Tampered", "Moved"} {
				w.HandleFunc(class, func(_ context.Context, j *resq.Job) error {
					mu.Lock()
					ran[j.Class] = j
					mu.Unlock()
					return nil
				})
			}
			stop := testkit.RunWorker(t, w)
			admin := resq.NewAdmin(p.conn)
			testkit.Eventually(t, "3 jobs processed", func() bool { st, _ := admin.Stats(ctx); return st.Processed == 3 })
			stop()

			mu.Lock()
			defer mu.Unlock()
			g := ran["Greet"]
			if len(ran) != 1 || g == nil {
				t.Fatalf("ran %v; want only Greet", ran)
			}
			if !reflect.DeepEqual(jsonValue(t, string(g.Args)), jsonValue(t, greetArgs)) || !g.Signed || g.Encrypted != tc.encrypt || g.Queue != "signed" || len(g.ID) != 32 {
				t.Fatalf("Greet ran with args %s signed %v encrypted %v queue %s id %q", g.Args, g.Signed, g.Encrypted, g.Queue, g.ID)
			}
			fs, err := admin.Failures(ctx, 0, 10)
			if err != nil || len(fs) != 2 {
				t.Fatalf("failures %+v, %v", fs, err)
			}
			for _, f := range fs {
				if f.Exception != resq.ExceptionSignature || !strings.Contains(f.Error, "signature") || !strings.Contains(f.Error, "does not match") {
					t.Errorf("%s: failure %s %q; want a signature failure", f.Job.Class, f.Exception, f.Error)
				}
			}
		})
	}
}
