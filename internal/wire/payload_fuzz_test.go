package wire_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/resq-go/resq/internal/envelope"
	"github.com/resq-go/resq/internal/wire"
)

// FuzzDecodePayload: DecodePayload and CheckDuplicateKeys never panic on
// any bytes, and a payload they both accept survives being written again:
// by NewPayload.Encode (what a Client writes) and by ReplaceEnvelope (what
// re-encryption writes), decoding to the same class, args, id, envelope
// and, for ReplaceEnvelope, the same other fields byte for byte.
func FuzzDecodePayload(f *testing.F) {
	for _, s := range []string{
		`{"class":"SendWelcome","args":[{"user_id":42}],"id":"9f0c4c2e0b6a4a8f9d2e6f1a3b5c7d9e","enqueued_at":1705314225.123}`,
		`{"class":"X","args":[],"enc":{"kid":"e1","nonce":"AAECAwQFBgcICQoL","ct":"3q2+7w=="},"kid":"s1","sig":"AQID"}`,
		`{"class":"FailHard","queue":"low","args":["x"]}`,
		`{"class":"X"}`, `{"class":"X","args":null}`, `{"class":"X","args":"no"}`, `{"class":1}`, `{"class":""}`,
		`{"class":"Run","args":[1],"class":"Other"}`, `{"class":"C","cl\u0061ss":"D"}`, `{"a":{"b":1,"b":2},"class":"C"}`,
		`{"class":"X","sig":"not base64!","kid":"s"}`, `{"class":"X","sig":null}`, `{"class":"X","enc":null}`,
		`{"class":"X","enc":{"kid":"","nonce":"","ct":""}}`, `{"class":"X","kid":"s1"}`, `{"class":"X","id":7,"enqueued_at":"soon"}`,
		"{\"class\":\"\xff\xfe\",\"args\":[\"\xc3\"]}", `{"class":"X","args":[1e999, 123456789012345678901234567890]}`,
		`[1,2]`, `null`, `"x"`, `{`, ``, `{} {}`, ` {"class":"X"} `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := wire.DecodePayload(b)
		dupErr := wire.CheckDuplicateKeys(b)
		if err != nil || dupErr != nil {
			return
		}
		if p.Class == "" || len(p.Args) == 0 || p.Args[0] != '[' {
			t.Fatalf("accepted payload with class %q args %q", p.Class, p.Args)
		}

		same := func(how string, q wire.Payload) {
			t.Helper()
			if q.Class != p.Class || !bytes.Equal(q.Args, p.Args) || q.ID != p.ID || !sameEnvelope(q.Envelope, p.Envelope) {
				t.Fatalf("%s changed the payload:\n in  %q -> %+v\n out %q -> %+v", how, b, p, q.Raw, q)
			}
		}

		enc := wire.NewPayload{Class: p.Class, Args: p.Args, ID: p.ID, Envelope: p.Envelope}.Encode()
		q, err := wire.DecodePayload(enc)
		if err != nil {
			t.Fatalf("re-encoded payload %q does not decode: %v", enc, err)
		}
		if err := wire.CheckDuplicateKeys(enc); err != nil {
			t.Fatalf("re-encoded payload %q: %v", enc, err)
		}
		same("Encode", q)

		rep, err := wire.ReplaceEnvelope(b, p.Args, p.Envelope)
		if err != nil {
			t.Fatalf("ReplaceEnvelope(%q): %v", b, err)
		}
		r, err := wire.DecodePayload(rep)
		if err != nil {
			t.Fatalf("ReplaceEnvelope output %q does not decode: %v", rep, err)
		}
		if err := wire.CheckDuplicateKeys(rep); err != nil {
			t.Fatalf("ReplaceEnvelope output %q: %v", rep, err)
		}
		same("ReplaceEnvelope", r)
		if r.EnqueuedAtRaw != p.EnqueuedAtRaw {
			t.Fatalf("ReplaceEnvelope changed enqueued_at %q to %q", p.EnqueuedAtRaw, r.EnqueuedAtRaw)
		}
		pf, rf := p.Fields(), r.Fields()
		for name, v := range pf {
			switch name {
			case "args", "enc", "kid", "sig":
				continue
			}
			if w, ok := rf[name]; !ok || !bytes.Equal(w, v) {
				t.Fatalf("ReplaceEnvelope changed field %q: %q -> %q", name, v, w)
			}
		}
		for name := range rf {
			if _, ok := pf[name]; !ok && name != "args" && name != "enc" && name != "kid" && name != "sig" {
				t.Fatalf("ReplaceEnvelope added field %q", name)
			}
		}
		if !json.Valid(rep) {
			t.Fatalf("ReplaceEnvelope wrote invalid JSON %q", rep)
		}
	})
}

func sameEnvelope(a, b envelope.Envelope) bool {
	if (a.Sig == nil) != (b.Sig == nil) || a.Sig != nil && (a.Sig.KID != b.Sig.KID || !bytes.Equal(a.Sig.Value, b.Sig.Value)) ||
		(a.Enc == nil) != (b.Enc == nil) {
		return false
	}
	return a.Enc == nil || a.Enc.KID == b.Enc.KID && bytes.Equal(a.Enc.Nonce, b.Enc.Nonce) && bytes.Equal(a.Enc.Data, b.Enc.Data)
}
