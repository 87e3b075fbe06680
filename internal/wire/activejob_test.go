package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// The example of the spec's §3.4 (docs/protocol.md "ActiveJob jobs").
const specActiveJob = `{"class":"ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper","args":[{"job_class":"ArchiveJob","job_id":"5b1f0c3e-8c4e-4b8e-9d7a-0f3c2b1a9e77","provider_job_id":null,"queue_name":"file_serve","priority":null,"arguments":[44,"masterbrew"],"executions":0,"exception_executions":{},"locale":"en","timezone":"UTC","enqueued_at":"2024-01-15T10:23:45.123456789Z","scheduled_at":null}]}`

func TestActiveJobEncodeSpecVector(t *testing.T) {
	args, err := ActiveJobSerializeArgs(json.RawMessage(`[44,"masterbrew"]`))
	if err != nil {
		t.Fatal(err)
	}
	n := NewActiveJob{JobClass: "ArchiveJob", JobID: "5b1f0c3e-8c4e-4b8e-9d7a-0f3c2b1a9e77", QueueName: "file_serve",
		Arguments: args, EnqueuedAt: time.Date(2024, 1, 15, 5, 23, 45, 123456789, time.FixedZone("EST", -5*3600))}
	got := RubyJob(ActiveJobWrapperClass, n.EncodeArgs())
	if string(got) != specActiveJob {
		t.Fatalf("encoded\n%s\nwant\n%s", got, specActiveJob)
	}
	n.ScheduledAt = time.Unix(1705314600, 0)
	if s := string(n.EncodeArgs()); !strings.HasSuffix(s, `"scheduled_at":"2024-01-15T10:30:00.000000000Z"}]`) {
		t.Errorf("scheduled: %s", s)
	}
}

func TestActiveJobDecodeSpecVector(t *testing.T) {
	p, err := DecodePayload([]byte(specActiveJob))
	if err != nil {
		t.Fatal(err)
	}
	elems, err := SplitArray(p.Args, DefaultDecodeDepth)
	if err != nil {
		t.Fatal(err)
	}
	aj, err := DecodeActiveJob(elems)
	if err != nil {
		t.Fatal(err)
	}
	if aj.JobClass != "ArchiveJob" || aj.JobID != "5b1f0c3e-8c4e-4b8e-9d7a-0f3c2b1a9e77" || aj.QueueName != "file_serve" ||
		aj.Priority != nil || aj.Executions != 0 || aj.Locale != "en" || aj.Timezone != "UTC" || !aj.ScheduledAt.IsZero() ||
		!aj.EnqueuedAt.Equal(time.Date(2024, 1, 15, 10, 23, 45, 123456789, time.UTC)) || string(aj.Arguments) != `[44,"masterbrew"]` {
		t.Fatalf("decoded %+v", aj)
	}
	if c, id := PeekActiveJob(p.Args); c != "ArchiveJob" || id != "5b1f0c3e-8c4e-4b8e-9d7a-0f3c2b1a9e77" {
		t.Errorf("PeekActiveJob = %q, %q", c, id)
	}
	if c, id := PeekActiveJob(json.RawMessage(`[{"job_class":7,"job_id":"x"}]`)); c != "" || id != "x" {
		t.Errorf("PeekActiveJob of a bad hash = %q, %q", c, id)
	}
}

func TestActiveJobDecodeMalformed(t *testing.T) {
	cases := map[string]string{
		`[]`:                                 "exactly one element",
		`[1,2]`:                              "exactly one element",
		`["x"]`:                              "serialized job hash",
		`[{"arguments":[]}]`:                 "job_class is missing",
		`[{"job_class":7,"arguments":[]}]`:   "job_class is not a string",
		`[{"job_class":"A"}]`:                "arguments is missing",
		`[{"job_class":"A","arguments":{}}]`: "arguments is missing or not an array",
		`[{"job_class":"A","arguments":[],"executions":"1"}]`:          "executions is not an integer",
		`[{"job_class":"A","arguments":[],"enqueued_at":"today"}]`:     "enqueued_at is not an ISO 8601 time",
		`[{"job_class":"A","arguments":[],"exception_executions":[]}]`: "exception_executions",
	}
	for in, want := range cases {
		elems, err := SplitArray([]byte(in), DefaultDecodeDepth)
		if err != nil {
			t.Fatal(err)
		}
		_, err = DecodeActiveJob(elems)
		var ae *ActiveJobError
		if !errors.As(err, &ae) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", in, err, want)
		}
	}
	// Older Rails versions write fewer keys: still fine.
	elems, _ := SplitArray([]byte(`[{"job_class":"A","job_id":"x","queue_name":"q","arguments":[1]}]`), DefaultDecodeDepth)
	if aj, err := DecodeActiveJob(elems); err != nil || aj.JobClass != "A" {
		t.Errorf("Rails 5 hash: %+v, %v", aj, err)
	}
}

func TestActiveJobPlainArgs(t *testing.T) {
	cases := []struct{ in, want string }{
		{`[44,"masterbrew",null,true,1.5]`, `[44,"masterbrew",null,true,1.5]`},
		// symbol keys, a nested hash with string keys, order kept
		{`[{"user_id":7,"opts":{"force":true,"_aj_symbol_keys":[]},"_aj_symbol_keys":["user_id","opts"]}]`,
			`[{"user_id":7,"opts":{"force":true}}]`},
		{`[{"a":1,"_aj_ruby2_keywords":["a"]}]`, `[{"a":1}]`},
		{`[{"a":1,"_aj_hash_with_indifferent_access":true}]`, `[{"a":1}]`},
		{`[{"_aj_globalid":"gid://app/User/42"}]`, `["gid://app/User/42"]`},
		{`[{"_aj_serialized":"ActiveJob::Serializers::SymbolSerializer","value":"pending"}]`, `["pending"]`},
		{`[{"_aj_serialized":"ActiveJob::Serializers::ModuleSerializer","value":"Admin::User"}]`, `["Admin::User"]`},
		{`[{"_aj_serialized":"ActiveJob::Serializers::TimeWithZoneSerializer","value":"2024-01-15T10:23:45.123456789Z","time_zone":"UTC"}]`,
			`["2024-01-15T10:23:45.123456789Z"]`},
		{`[{"_aj_serialized":"ActiveJob::Serializers::TimeSerializer","value":"2024-01-15T05:23:45.000000000-05:00"}]`,
			`["2024-01-15T05:23:45.000000000-05:00"]`},
		{`[{"_aj_serialized":"ActiveJob::Serializers::DateTimeSerializer","value":"2024-01-15T10:23:45.000000000+00:00"}]`,
			`["2024-01-15T10:23:45.000000000+00:00"]`},
		{`[{"_aj_serialized":"ActiveJob::Serializers::DateSerializer","value":"2024-01-15"}]`, `["2024-01-15"]`},
		{`[{"_aj_serialized":"ActiveJob::Serializers::DurationSerializer","value":300,"parts":[[{"_aj_serialized":"ActiveJob::Serializers::SymbolSerializer","value":"minutes"},5]]}]`,
			`[300]`},
		{`[{"_aj_serialized":"ActiveJob::Serializers::BigDecimalSerializer","value":"0.1234567890123456789e2"}]`, `[0.1234567890123456789e2]`},
		// nested: a list of symbols inside a hash inside a list
		{`[[{"tags":[{"_aj_serialized":"ActiveJob::Serializers::SymbolSerializer","value":"a"}],"_aj_symbol_keys":["tags"]}]]`, `[[{"tags":["a"]}]]`},
		{`[{"html":"<b>&</b>","path":"a/b","_aj_symbol_keys":[]}]`, `[{"html":"<b>&</b>","path":"a/b"}]`},
	}
	for _, c := range cases {
		got, err := ActiveJobPlainArgs(json.RawMessage(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.in, got, c.want)
		}
	}
}

func TestActiveJobPlainArgsRefused(t *testing.T) {
	cases := map[string]string{
		`[{"_aj_serialized":"ActiveJob::Serializers::RangeSerializer","begin":1,"end":2,"exclude_end":false}]`: `arguments[0]: values of ActiveJob serializer "ActiveJob::Serializers::RangeSerializer" are not supported`,
		`[{"_aj_serialized":"MoneySerializer","cents":1}]`:                                                     `"MoneySerializer" are not supported`,
		`[{"_aj_serialized":"ActiveJob::Serializers::TimeSerializer","value":"yesterday"}]`:                    "not an ISO 8601 time",
		`[{"_aj_serialized":"ActiveJob::Serializers::BigDecimalSerializer","value":"Infinity"}]`:               "not a finite decimal",
		`[{"_aj_globalid":7}]`:                "not a gid:// string",
		`[1,{"a":[{"_aj_symbol_keys":"a"}]}]`: "arguments[1][member 0][0]: _aj_symbol_keys is not an array of strings",
		`{"a":1}`:                             "not an array",
		`[{"a":1,"a":2}]`:                     "repeats a key",
	}
	for in, want := range cases {
		_, err := ActiveJobPlainArgs(json.RawMessage(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", in, err, want)
		}
	}
}

func TestActiveJobSerializeArgs(t *testing.T) {
	got, err := ActiveJobSerializeArgs(json.RawMessage(`[1,"x",{"b":{"c":[{}]},"a":null},[]]`))
	if err != nil {
		t.Fatal(err)
	}
	want := `[1,"x",{"b":{"c":[{"_aj_symbol_keys":[]}],"_aj_symbol_keys":[]},"a":null,"_aj_symbol_keys":[]},[]]`
	if string(got) != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	// And back: the plain decoding undoes it.
	back, err := ActiveJobPlainArgs(got)
	if err != nil || string(back) != `[1,"x",{"b":{"c":[{}]},"a":null},[]]` {
		t.Errorf("round trip: %s, %v", back, err)
	}
	for _, k := range []string{"_aj_globalid", "_aj_serialized", "_aj_symbol_keys", "_aj_ruby2_keywords", "_aj_hash_with_indifferent_access"} {
		if _, err := ActiveJobSerializeArgs(json.RawMessage(`[{"x":{"` + k + `":1}}]`)); err == nil || !strings.Contains(err.Error(), "reserved by ActiveJob") {
			t.Errorf("key %s: %v", k, err)
		}
	}
}

// FuzzActiveJobPlainArgs: on any input the decoder returns a JSON array or
// an ActiveJobError, never panics, and plain output decodes to itself.
func FuzzActiveJobPlainArgs(f *testing.F) {
	for _, s := range []string{`[44,"masterbrew"]`, `[{"a":1,"_aj_symbol_keys":["a"]}]`, `[{"_aj_globalid":"gid://a/B/1"}]`,
		`[{"_aj_serialized":"ActiveJob::Serializers::BigDecimalSerializer","value":"0.1e1"}]`, `[[{"_aj_serialized":"X"}]]`, `[`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := ActiveJobPlainArgs(in)
		if err != nil {
			var ae *ActiveJobError
			if !errors.As(err, &ae) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if !json.Valid(out) || out[0] != '[' {
			t.Fatalf("output %q is not a JSON array", out)
		}
		// Plain JSON without ActiveJob's markers decodes to itself.
		if !strings.Contains(string(out), "_aj_") {
			if again, err := ActiveJobPlainArgs(out); err != nil || string(again) != string(out) {
				t.Fatalf("not a fixed point: %s -> %s, %v", out, again, err)
			}
		}
	})
}
