package resq_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// TestEnqueueParity: every args array the Client refuses is one a resq
// worker fails when it decodes the job (the same job pushed behind the
// client's back), with the worker's message in the client's error; every
// array the Client accepts, the worker runs. Nothing refused reaches Redis.
func TestEnqueueParity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	nested := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	many := "[" + strings.TrimSuffix(strings.Repeat("1,", 257), ",") + "]"
	cases := []struct {
		name, args string
		refused    bool
	}{
		{"duplicate key", `[{"a":1,"a":2}]`, true},
		{"nested duplicate key", `[1,{"x":[{"k":true,"k":false}]}]`, true},
		{"escaped duplicate key", `[{"a":1,"\u0061":2}]`, true},
		{"depth at the limit", nested(31), false}, // the payload object is level 1
		{"depth over the limit", nested(32), true},
		{"256 args", "[" + strings.TrimSuffix(strings.Repeat("1,", 256), ",") + "]", false},
		{"257 args", many, true},
		{"same key in two objects", `[{"a":1},{"a":2}]`, false},
	}
	var ran atomic.Int64
	for _, c := range cases {
		_, err := b.client.EnqueueWith(ctx, resq.EnqueueParams{Queue: "parity", Class: "Parity", RawArgs: json.RawMessage(c.args)})
		if (err != nil) != c.refused {
			t.Fatalf("%s: client error %v, want refused=%v", c.name, err, c.refused)
		}
		if c.refused && !errors.Is(err, resq.ErrInvalidArgs) && !errors.Is(err, resq.ErrPayloadLimit) {
			t.Errorf("%s: %v matches neither ErrInvalidArgs nor ErrPayloadLimit", c.name, err)
		}
		if n, _ := b.admin.QueueSize(ctx, "parity"); c.refused && n != 0 || !c.refused && n != 1 {
			t.Fatalf("%s: queue holds %d jobs", c.name, n)
		}
		if !c.refused {
			b.srv.Do(t, "DEL", b.key("queue:parity"))
		}
		// The same job, pushed raw: what does a worker make of it?
		b.srv.Do(t, "RPUSH", b.key("queue:parity"), `{"class":"Parity","args":`+c.args+`}`)
		w := newWorker(t, b, resq.WorkerConfig{Queues: []string{"parity"}, Concurrency: 1})
		w.HandleFunc("Parity", func(ctx context.Context, j *resq.Job) error { ran.Add(1); return nil })
		before := ran.Load()
		stop := testkit.RunWorker(t, w)
		testkit.Eventually(t, c.name+": job handled", func() bool {
			n, _ := b.admin.FailureCount(ctx)
			return n > 0 || ran.Load() > before
		})
		stop()
		fs, _ := b.admin.Failures(ctx, 0, 1)
		if !c.refused {
			if len(fs) != 0 || ran.Load() != before+1 {
				t.Fatalf("%s: accepted by the client but the worker did not run it: %+v", c.name, fs)
			}
			continue
		}
		if len(fs) != 1 {
			t.Fatalf("%s: refused by the client but the worker ran it", c.name)
		}
		reason := strings.TrimSuffix(fs[0].Error, "; the job was not run")
		if !strings.Contains(err.Error(), reason) {
			t.Errorf("%s: client says %q, worker says %q", c.name, err, reason)
		}
		if _, err := b.admin.ClearFailures(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Go values with a json.RawMessage inside are checked the same way.
	if _, err := b.client.Enqueue(ctx, "parity", "Parity", json.RawMessage(`{"a":1,"a":2}`)); !errors.Is(err, resq.ErrInvalidArgs) {
		t.Errorf("raw duplicate key inside Args: %v", err)
	}
	// Encrypted args: the plaintext is checked before it is sealed.
	k, _ := keyring(t, resq.KeyHMAC)
	ec := testkit.Client(t, b.conn, resq.ClientConfig{Keyring: k})
	if _, err := ec.EnqueueWith(ctx, resq.EnqueueParams{Queue: "parity", Class: "Parity", RawArgs: json.RawMessage(`[{"a":1,"a":2}]`), Encrypt: true}); !errors.Is(err, resq.ErrInvalidArgs) || !strings.Contains(err.Error(), `duplicate key "a"`) {
		t.Errorf("encrypted duplicate key: %v", err)
	}
	if n, _ := b.admin.QueueSize(ctx, "parity"); n != 0 {
		t.Fatalf("%d refused jobs reached Redis", n)
	}
}
