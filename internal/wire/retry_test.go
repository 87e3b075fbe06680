package wire

import (
	"encoding/json"
	"testing"
)

// The attempt key of resque-retry for several argument shapes. Each joined
// string is what Ruby's args.join('-') gives (worked out by hand from
// Array#join, Float#to_s and Hash#inspect); each hash is
// `printf '%s' "<joined>" | sha1sum`.
func TestRetryKeyVectors(t *testing.T) {
	k := NewKeys("resque")
	for _, c := range []struct {
		args, joined, key string
		style             HashInspect
	}{
		{`["a b",1]`, "a b-1", "resque:resque-retry:Job:a4fafff2f24cf67d106cece9721717ce44831972", HashInspectRuby33},
		{`[1.0,1e20,-0.0,2.5]`, "1.0-1.0e+20--0.0-2.5", "resque:resque-retry:Job:da23b5288cdd65b83223acaf0c517e41bc932999", HashInspectRuby33},
		{`[null,true,false]`, "-true-false", "resque:resque-retry:Job:8a66e0041536d17e9692729cba6f2f770efd1e6c", HashInspectRuby33},
		{`[[1,[2,"x"]],[]]`, "1-2-x-", "resque:resque-retry:Job:aeaba781152dec9a4b8a6c8c7bee600483f6405b", HashInspectRuby33},
		{`[{"a":1,"b":[null,"s\"q"]}]`, `{"a"=>1, "b"=>[nil, "s\"q"]}`, "resque:resque-retry:Job:dc98e82fc953867237307ca4d4481dd65b354451", HashInspectRuby33},
		{`[{"a":1,"b":[null,"s\"q"]}]`, `{"a" => 1, "b" => [nil, "s\"q"]}`, "resque:resque-retry:Job:c8106e618fb3b8713373655de27af536050a5801", HashInspectRuby34},
		{`[12345678901234567890,0.0001,1e-5,1E2]`, "12345678901234567890-0.0001-1.0e-05-100.0", "resque:resque-retry:Job:0c15fbb492033085d7fe00876d210e3a6c7ac646", HashInspectRuby33},
		{`[]`, "", "resque:resque-retry:Job", HashInspectRuby33},
		{`[""]`, "", "resque:resque-retry:Job", HashInspectRuby33},
	} {
		joined, err := RubyJoin(json.RawMessage(c.args), c.style)
		if err != nil || joined != c.joined {
			t.Errorf("join %s = %q, %v; want %q", c.args, joined, err, c.joined)
		}
		id, err := RetryIdentifier(json.RawMessage(c.args), c.style)
		if got := k.RetryKey("Job", id); err != nil || got != c.key {
			t.Errorf("key %s = %s, %v; want %s", c.args, got, err, c.key)
		}
	}
	if got := k.RetryKey("My Job", "ab"); got != "resque:resque-retry:MyJob:ab" {
		t.Errorf("whitespace kept: %s", got)
	}
	if got := k.RetryFailureKey("resque:resque-retry:Job:ab"); got != "resque:failure-resque-retry:Job:ab" {
		t.Errorf("failure key %s", got)
	}
	if _, err := RetryIdentifier(json.RawMessage(`{"a":1}`), HashInspectRuby33); err == nil {
		t.Error("a non-array was accepted")
	}
}

// RetryItem keeps a resq payload's fields and bytes, with "queue" after
// "args", so DecodeDelayed gives the payload back; a Ruby job becomes
// Ruby's delayed item.
func TestRetryItem(t *testing.T) {
	resqRaw := []byte(`{"class":"C","args":[1,{"b":2,"a":1}],"id":"j1","enqueued_at":1700000000.5}`)
	p, err := DecodePayloadDepth(resqRaw, DefaultDecodeDepth)
	if err != nil {
		t.Fatal(err)
	}
	item := RetryItem(p, "q")
	if string(item) != `{"class":"C","args":[1,{"b":2,"a":1}],"queue":"q","id":"j1","enqueued_at":1700000000.5}` {
		t.Errorf("item %s", item)
	}
	if d := DecodeDelayed(item); string(d.Payload) != string(resqRaw) || d.Queue != "q" {
		t.Errorf("moved payload %s (queue %q), want %s", d.Payload, d.Queue, resqRaw)
	}
	ruby, err := DecodePayloadDepth([]byte(`{"class":"R","args":["x"]}`), DefaultDecodeDepth)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(RetryItem(ruby, "q")); got != `{"class":"R","args":["x"],"queue":"q"}` {
		t.Errorf("ruby item %s", got)
	}
	if got := string(RetryPayload(ruby)); got != `{"class":"R","args":["x"]}` {
		t.Errorf("ruby payload %s", got)
	}
}
