package main

import (
	"strings"
	"testing"
)

// TestEnqueueRefusesWhatWorkersRefuse: resq enqueue exits non-zero, with
// the worker's reason, for args every resq worker would fail on decoding,
// and nothing reaches the queue.
func TestEnqueueRefusesWhatWorkersRefuse(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, c := range []struct{ args, want string }{
		{`[{"a":1,"a":2}]`, `duplicate key "a" in a JSON object`},
		{strings.Repeat("[", 32) + strings.Repeat("]", 32), "JSON nesting deeper than the limit of 32 levels"},
		{"[" + strings.TrimSuffix(strings.Repeat("0,", 257), ",") + "]", "257 arguments, limit 256"},
	} {
		r := f.run("enqueue", "--queue", "q", "Foo", c.args)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "NOT") && !strings.Contains(r.stderr, "not") {
			t.Errorf("resq enqueue %.40s: %v\nwant a refusal containing %q", c.args, r, c.want)
		}
	}
	if n := f.srv.Do(t, "LLEN", f.key("queue:q")); n != "0" {
		t.Fatalf("queue q holds %v jobs", n)
	}
	f.ok("enqueue", "--queue", "q", "Foo", `[{"a":1},{"a":2}]`)
}
