package resq

import (
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

// A Handle's pooled decoders give every job its own value: a decoder that
// decoded one job's args decodes the next from scratch, one that failed is
// not reused, and strictness (unknown fields, trailing data) holds on every
// reuse.
func TestDecodeArgsPoolReuse(t *testing.T) {
	type args struct {
		N int64  `json:"n"`
		S string `json:"s"`
	}
	pool := &sync.Pool{}
	for i, c := range []struct {
		in   string
		want args
		err  string
	}{
		{in: `[{"n":1,"s":"a"}]`, want: args{N: 1, S: "a"}},
		{in: `[{"n":2}]`, want: args{N: 2}}, // S is not left over from the job before
		{in: `[{"n":"x"}]`, err: "cannot be decoded"},
		{in: `[{"n":3,"extra":1}]`, err: "unknown field"},
		{in: `[ {"s":"b"} ]`, want: args{S: "b"}},
		{in: `[7]`, err: "cannot be decoded"},
		{in: `[{"n":4}]`, want: args{N: 4}},
	} {
		got, err := decodeArgsWith[args](pool, json.RawMessage(c.in), nil, false)
		switch {
		case c.err != "" && (err == nil || !errors.Is(err, ErrInvalidArgs) || !strings.Contains(err.Error(), c.err)):
			t.Errorf("job %d %s: error %v, want one containing %q", i, c.in, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("job %d %s: %+v, %v; want %+v", i, c.in, got, err, c.want)
		}
	}
	// Slices and numbers, which end at the end of the input.
	for i, in := range []string{`[1,2]`, `[3]`, `[]`} {
		got, err := decodeArgsWith[[]int](pool, json.RawMessage(in), nil, false)
		if err != nil || len(got) != []int{2, 1, 0}[i] {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
	for _, in := range []string{`[5]`, `[6]`} {
		got, err := decodeArgsWith[int](&sync.Pool{}, json.RawMessage(in), nil, false)
		if err != nil || string(in[1]) != string(rune('0'+got)) {
			t.Errorf("%s: %v, %v", in, got, err)
		}
	}
}
