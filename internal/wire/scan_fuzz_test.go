package wire_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/resq-go/resq/internal/wire"
)

// The one-pass scanner accepts exactly the JSON objects that encoding/json
// accepts and CheckDuplicateKeys passes (within the depth limit).
func FuzzScanMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{`{"class":"A","args":[1,"x",{"k":[true,null,-1.5e3]}]}`, `{"a":1,"a":2}`, `{"a":{"b":1,"\u0062":2}}`,
		`[1]`, `{"a":"\ud800"}`, `{"a":01}`, `{"a":1,}`, ` {"a":"x"} `, `{"a":"\x01"}`, `{}`, `{"a":[[[[]]]]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := wire.ScanPayload(b, 64)
		if errors.Is(err, wire.ErrTooDeep) {
			return
		}
		ref := json.Valid(b) && bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("{")) && wire.CheckDuplicateKeys(b) == nil
		if (err == nil) != ref {
			t.Fatalf("ScanPayload(%q) = %v; encoding/json and the duplicate check say ok=%v", b, err, ref)
		}
	})
}

// SplitArray accepts exactly the JSON arrays that encoding/json accepts and
// the duplicate check passes, and returns the elements encoding/json finds.
func FuzzSplitArrayMatchesEncodingJSON(f *testing.F) {
	for _, s := range []string{`[]`, ` [ ] `, `[1,"x",{"k":[true,null,-1.5e3]}]`, `[{"a":1,"a":2}]`, `["\"]"]`, `[1,]`, `[1] x`,
		`{"a":1}`, `[01]`, `["\ud800"]`, `[[[[]]]]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := wire.SplitArray(b, 64)
		if errors.Is(err, wire.ErrTooDeep) {
			return
		}
		var want []json.RawMessage
		ok := json.Valid(b) && bytes.HasPrefix(bytes.TrimLeft(b, " \t\r\n"), []byte("[")) && wire.CheckDuplicateKeys(b) == nil &&
			json.Unmarshal(b, &want) == nil
		if (err == nil) != ok {
			t.Fatalf("SplitArray(%q) = %v; encoding/json and the duplicate check say ok=%v", b, err, ok)
		}
		if !ok {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("SplitArray(%q) = %d elements, encoding/json %d", b, len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(bytes.TrimSpace(got[i]), bytes.TrimSpace(want[i])) {
				t.Fatalf("SplitArray(%q)[%d] = %q, encoding/json %q", b, i, got[i], want[i])
			}
		}
	})
}
