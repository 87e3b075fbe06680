package wire_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/resq-go/resq/internal/envelope"
	"github.com/resq-go/resq/internal/wire"
)

func TestReplaceEnvelope(t *testing.T) {
	t.Parallel()
	env := envelope.Envelope{Sig: &envelope.Signature{KID: "s2", Value: []byte{1, 2, 3}}, Enc: &envelope.Ciphertext{KID: "e2", Nonce: []byte{4}, Data: []byte{5, 6}}}
	const enc2 = `"enc":{"kid":"e2","nonce":"BA==","ct":"BQY="}`
	const sig2 = `"kid":"s2","sig":"AQID"`
	cases := []struct {
		name, in, args string
		env            envelope.Envelope
		want           string
	}{
		{"resq payload: replaced in place",
			`{"class":"C","args":[],"id":"i","enqueued_at":1705314225.12,"enc":{"kid":"e1","nonce":"AA==","ct":"AA=="},"kid":"s1","sig":"AA==","x":1}`,
			`[]`, env,
			`{"class":"C","args":[],"id":"i","enqueued_at":1705314225.12,` + enc2 + `,` + sig2 + `,"x":1}`},
		{"other producers' order and fields kept",
			`{"sig":"AA==", "queue":"q" ,"class":"C","kid":"s1","args":[ 1 ],"enqueued_at":1.50}`,
			`[2]`, env,
			`{"sig":"AQID","queue":"q","class":"C","kid":"s2","args":[2],"enqueued_at":1.50,` + enc2 + `}`},
		{"envelope appended to a Ruby payload",
			`{"class":"C","args":[1]}`, `[1]`, envelope.Envelope{Sig: &envelope.Signature{KID: "s2", Value: []byte{1, 2, 3}}},
			`{"class":"C","args":[1],` + sig2 + `}`},
		{"envelope removed",
			`{"class":"C","args":[],"enc":{"kid":"e1","nonce":"AA==","ct":"AA=="},"kid":"s1","sig":"AA=="}`,
			`[3]`, envelope.Envelope{}, `{"class":"C","args":[3]}`},
		{"missing args added",
			`{"class":"C"}`, `[]`, envelope.Envelope{}, `{"class":"C","args":[]}`},
		{"unicode and escapes in other fields kept byte for byte",
			`{"class":"C\u00e9/é","args":[],"note":"a\"b\\c"}`, `[]`, envelope.Envelope{},
			`{"class":"C\u00e9/é","args":[],"note":"a\"b\\c"}`},
	}
	for _, c := range cases {
		got, err := wire.ReplaceEnvelope([]byte(c.in), json.RawMessage(c.args), c.env)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, got, c.want)
			continue
		}
		p, err := wire.DecodePayload(got)
		if err != nil {
			t.Errorf("%s: result does not decode: %v", c.name, err)
			continue
		}
		if string(p.Args) != c.args || !sameEnvelope(p.Envelope, c.env) {
			t.Errorf("%s: decoded %+v", c.name, p)
		}
	}
	for _, bad := range []struct{ in, args, want string }{
		{`[1]`, `[]`, "not a JSON object"},
		{`{"class":"C","sig":"AA==","sig":"AQ=="}`, `[]`, `two "sig" fields`},
		{`{"class":"C","args":[],"args":[1]}`, `[]`, `two "args" fields`},
		{`{"class":"C"`, `[]`, "replace envelope"},
		{`{"class":"C"}`, `{}`, "must be a JSON array"},
		{`{"class":"C"}`, `[1`, "must be a JSON array"},
	} {
		if _, err := wire.ReplaceEnvelope([]byte(bad.in), json.RawMessage(bad.args), env); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ReplaceEnvelope(%s, %s) = %v; want an error with %q", bad.in, bad.args, err, bad.want)
		}
	}
}

// ReplaceQueued and ReplaceFailure are compare-and-set on the exact bytes:
// at the hinted index, else wherever the element moved, else nothing.
func TestReplaceInList(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	srv.Do(t, "RPUSH", "resque:queue:q", "a", "b", "c", "b")
	if at, ok, err := s.ReplaceQueued(bg, "q", 1, []byte("b"), []byte("B1")); err != nil || !ok || at != 1 {
		t.Fatalf("replace at the hint: %d %v %v", at, ok, err)
	}
	expect(t, srv, "a\nB1\nc\nb", "LRANGE", "resque:queue:q", "0", "-1")
	srv.Do(t, "LPOP", "resque:queue:q") // a worker took "a": everything moved up
	if at, ok, err := s.ReplaceQueued(bg, "q", 2, []byte("c"), []byte("C")); err != nil || !ok || at != 1 {
		t.Fatalf("replace after a pop: %d %v %v", at, ok, err)
	}
	if at, ok, err := s.ReplaceQueued(bg, "q", 3, []byte("b"), []byte("B2")); err != nil || !ok || at != 2 {
		t.Fatalf("replace past the end: %d %v %v", at, ok, err)
	}
	expect(t, srv, "B1\nC\nB2", "LRANGE", "resque:queue:q", "0", "-1")
	if _, ok, err := s.ReplaceQueued(bg, "q", 0, []byte("a"), []byte("A")); err != nil || ok {
		t.Fatalf("replace of a job that is gone: %v %v", ok, err)
	}
	expect(t, srv, "B1\nC\nB2", "LRANGE", "resque:queue:q", "0", "-1")
	if _, ok, err := s.ReplaceQueued(bg, "missing", -1, []byte("a"), []byte("A")); err != nil || ok {
		t.Fatalf("replace in a missing queue: %v %v", ok, err)
	}
	expect(t, srv, "0", "EXISTS", "resque:queue:missing")

	srv.Do(t, "RPUSH", "resque:failed", "f0", "f1")
	if _, ok, err := s.ReplaceFailure(bg, 1, []byte("f1"), []byte("F1")); err != nil || !ok {
		t.Fatalf("replace failure: %v %v", ok, err)
	}
	if _, ok, err := s.ReplaceFailure(bg, 0, []byte("f1"), []byte("X")); err != nil || ok {
		t.Fatalf("replace of a changed failure: %v %v", ok, err)
	}
	expect(t, srv, "f0\nF1", "LRANGE", "resque:failed", "0", "-1")
}

func TestPickedUpPayloads(t *testing.T) {
	t.Parallel()
	s, srv := newStore(t)
	if got, err := s.PickedUpPayloads(bg); err != nil || len(got) != 0 {
		t.Fatalf("no pickups: %q, %v", got, err)
	}
	srv.Do(t, "RPUSH", "resque:queue:q", "j1")
	srv.Do(t, "RPUSH", "resque:queue:r", "j2")
	for _, q := range []string{"q", "r"} {
		if moved, err := s.BlockingPickup(bg, "h:1", q, 0); err != nil || !moved {
			t.Fatalf("pickup from %s: %v %v", q, moved, err)
		}
	}
	got, err := s.PickedUpPayloads(bg)
	if err != nil || len(got) != 2 || string(got[0])+string(got[1]) != "j1j2" && string(got[0])+string(got[1]) != "j2j1" {
		t.Fatalf("picked up: %q, %v", got, err)
	}
}
