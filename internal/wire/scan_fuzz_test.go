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
