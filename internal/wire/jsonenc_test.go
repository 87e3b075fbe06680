package wire_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/resq-go/resq/internal/wire"
)

// mailArg is TV-02's hash argument; a struct keeps Ruby's insertion order
// (a Go map would sort the keys).
type mailArg struct {
	To   string `json:"to"`
	Name string `json:"name"`
	HTML string `json:"html"`
}

// TV-02: the stored element must be byte-identical to Ruby's encoding.
func TestMarshalArgsTV02(t *testing.T) {
	t.Parallel()
	args, err := wire.MarshalArgs([]any{mailArg{To: "a/b@example.com", Name: "Zoë", HTML: "<b>&</b>"}, 1.5, nil, true})
	if err != nil {
		t.Fatal(err)
	}
	const wantArgs = `[{"to":"a/b@example.com","name":"Zoë","html":"<b>&</b>"},1.5,null,true]`
	if string(args) != wantArgs {
		t.Fatalf("MarshalArgs:\n got %s\nwant %s", args, wantArgs)
	}
	got := wire.RubyJob("Mailer", args)
	const want = `{"class":"Mailer","args":[{"to":"a/b@example.com","name":"Zoë","html":"<b>&</b>"},1.5,null,true]}`
	if string(got) != want {
		t.Fatalf("RubyJob:\n got %s\nwant %s", got, want)
	}
	if !bytes.Contains(got, []byte{'Z', 'o', 0xC3, 0xAB, '"'}) {
		t.Errorf("ë is not written as the raw UTF-8 bytes C3 AB: %q", got)
	}
	for _, bad := range []string{`\/`, `\u003c`, `\u003e`, `\u0026`, `\u00eb`} {
		if bytes.Contains(got, []byte(bad)) {
			t.Errorf("output contains %s: %s", bad, got)
		}
	}
}

func TestMarshalArgsEmpty(t *testing.T) {
	t.Parallel()
	for _, in := range [][]any{nil, {}} {
		got, err := wire.MarshalArgs(in)
		if err != nil || string(got) != "[]" {
			t.Errorf("MarshalArgs(%#v) = %s, %v; want []", in, got, err)
		}
	}
	if got := wire.RubyJob("Cleanup", nil); string(got) != `{"class":"Cleanup","args":[]}` {
		t.Errorf("RubyJob with no args = %s", got)
	}
}

// §0.4: U+2028 and U+2029 are written raw, like every other non-ASCII
// character; a literal backslash-u text is left alone.
func TestMarshalArgsLineSeparatorsRaw(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want string
	}{
		{"a\u2028b\u2029c", "[\"a\u2028b\u2029c\"]"},
		{`x\u2028`, `["x\\u2028"]`},                         // the six characters \u2028, not the rune
		{"\\\u2028", "[\"\\\\\u2028\"]"},                    // backslash followed by the rune
		{`\\u2029` + "\u2029", "[\"\\\\\\\\u2029\u2029\"]"}, // two backslashes, text, rune
	}
	for _, c := range cases {
		got, err := wire.MarshalArgs([]any{c.in})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != c.want {
			t.Errorf("MarshalArgs(%q):\n got %q\nwant %q", c.in, got, c.want)
		}
		if q := "[" + wire.QuoteString(c.in) + "]"; q != c.want {
			t.Errorf("QuoteString(%q):\n got %q\nwant %q", c.in, q, c.want)
		}
		var back []string
		if err := json.Unmarshal(got, &back); err != nil || len(back) != 1 || back[0] != c.in {
			t.Errorf("round trip of %q gave %q (%v)", c.in, back, err)
		}
	}
}

// §0.4: only '"', '\' and control characters are escaped; control characters
// use the short forms where JSON has them and \u00XX (lower-case hex)
// otherwise. DEL, '/', '<', '>', '&' and non-ASCII stay raw.
func TestEncodeEscapesOnlyQuotesBackslashAndControls(t *testing.T) {
	t.Parallel()
	in := "a\x00\x01\x1f\n\t\r\b\f\"\\\x7f/<>&é\u00a0\U0001F600"
	want := `"a\u0000\u0001\u001f\n\t\r\b\f\"\\` + "\x7f/<>&é\u00a0\U0001F600" + `"`
	if got := wire.QuoteString(in); got != want {
		t.Errorf("QuoteString:\n got %q\nwant %q", got, want)
	}
	got, err := wire.MarshalArgs([]any{in})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "["+want+"]" {
		t.Errorf("MarshalArgs:\n got %q\nwant %q", got, "["+want+"]")
	}
	v, err := wire.MarshalValue(map[string]any{"k": in})
	if err != nil {
		t.Fatal(err)
	}
	if string(v) != `{"k":`+want+`}` {
		t.Errorf("MarshalValue:\n got %q\nwant %q", v, `{"k":`+want+`}`)
	}
}

// Invalid UTF-8 becomes U+FFFD. Since §0.4 escapes only quotes, backslashes
// and control characters, the replacement character is written raw (3 bytes
// EF BF BD), by QuoteString and MarshalArgs alike.
func TestQuoteStringInvalidUTF8(t *testing.T) {
	t.Parallel()
	got := wire.QuoteString("a\xffb\xc3")
	if want := "\"a\uFFFDb\uFFFD\""; got != want {
		t.Errorf("QuoteString = %q, want %q", got, want)
	}
	if !utf8.ValidString(got) || !json.Valid([]byte(got)) {
		t.Errorf("QuoteString output is not valid UTF-8 JSON: %q", got)
	}
}

func TestMarshalArgsInvalidUTF8(t *testing.T) {
	t.Parallel()
	got, err := wire.MarshalArgs([]any{"a\xffb"})
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(got) || !json.Valid(got) {
		t.Fatalf("output is not valid UTF-8 JSON: %q", got)
	}
	var back []string
	if err := json.Unmarshal(got, &back); err != nil || back[0] != "a\uFFFDb" {
		t.Fatalf("decodes to %q (%v), want a\\uFFFDb", back, err)
	}
	// Same bytes as QuoteString: U+FFFD raw, not the escape \ufffd.
	if want := "[" + wire.QuoteString("a\xffb") + "]"; string(got) != want {
		t.Errorf("MarshalArgs = %q, want %q (U+FFFD must be written raw like any non-ASCII character, §0.4)", got, want)
	}
}

// Numbers: integers of any size survive when given as json.Number or raw
// JSON; raw JSON keeps Ruby's float text. Go floats lose the fraction (a
// documented difference).
func TestMarshalArgsNumbers(t *testing.T) {
	t.Parallel()
	got, err := wire.MarshalArgs([]any{
		json.Number("1180591620717411303424"),
		json.RawMessage(`1.0`),
		json.RawMessage(`1.0e+20`),
		int64(9007199254740993),
		44,
		-7,
	})
	if err != nil {
		t.Fatal(err)
	}
	const want = `[1180591620717411303424,1.0,1.0e+20,9007199254740993,44,-7]`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	got, err = wire.MarshalArgs([]any{1.0, 1e20, 1.5, 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if want := `[1,100000000000000000000,1.5,0.1]`; string(got) != want {
		t.Errorf("Go floats: got %s, want %s (documented Go formatting)", got, want)
	}
}

// Compact output with keys in struct order; nested values keep order too.
func TestMarshalArgsCompactOrdered(t *testing.T) {
	t.Parallel()
	type inner struct {
		Z int    `json:"z"`
		A string `json:"a"`
	}
	type outer struct {
		Second []inner `json:"second"`
		First  *inner  `json:"first"`
		Empty  []int   `json:"empty"`
	}
	got, err := wire.MarshalArgs([]any{outer{Second: []inner{{1, "x"}}, Empty: []int{}}, "s p a c e"})
	if err != nil {
		t.Fatal(err)
	}
	const want = `[{"second":[{"z":1,"a":"x"}],"first":null,"empty":[]},"s p a c e"]`
	if string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
