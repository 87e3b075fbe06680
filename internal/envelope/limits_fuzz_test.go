package envelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// depthOf is the nesting depth of a decoded JSON value: 0 for a scalar, 1
// for an empty array or object.
func depthOf(v any) int {
	d := 0
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	case map[string]any:
		for _, e := range x {
			d = max(d, depthOf(e))
		}
		return d + 1
	}
	return 0
}

// FuzzCheckDepth: the byte scanner never panics on any input, and on valid
// JSON it refuses exactly the documents that encoding/json finds deeper
// than the limit (brackets inside strings, escaped quotes and backslashes
// included).
func FuzzCheckDepth(f *testing.F) {
	for _, s := range []string{
		`{}`, `[]`, `1`, `"x"`, `[[[]]]`, `{"a":{"b":{"c":[1,2,{"d":null}]}}}`,
		`{"a":"[[[[[[[["}`, `["\"[[[["]`, `["\\", [[[]]]]`, `["\\\"[", {}]`,
		`{"class":"Run","args":[` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `]}`,
		`[[[`, `]]]]][[[[[`, `"unterminated [[[`, `{"k\u005b":"v"}`, "[\"\xff[\"]",
	} {
		f.Add([]byte(s), uint8(3))
		f.Add([]byte(s), uint8(31))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint8) {
		lim := Limits{MaxDepth: int(limit%64) + 1}
		err := lim.CheckDepth(data)
		var le *LimitError
		if err != nil && (!errors.As(err, &le) || !errors.Is(err, ErrLimit) || le.Limit != "depth" || le.Value != lim.MaxDepth+1) {
			t.Fatalf("CheckDepth error %#v", err)
		}
		if !json.Valid(data) {
			return
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return
		}
		if d := depthOf(v); (d > lim.MaxDepth) != (err != nil) {
			t.Fatalf("depth %d, limit %d: CheckDepth said %v for %q", d, lim.MaxDepth, err, data)
		}
	})
}
