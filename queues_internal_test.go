package resq

import (
	"reflect"
	"strings"
	"testing"
)

// TV-19: queues = {critical, high, low, test_one, test_two, .hidden}.
func TestQueueResolutionTV19(t *testing.T) {
	t.Parallel()
	known := []string{"test_two", ".hidden", "low", "critical", "test_one", "high"} // SMEMBERS order is arbitrary
	cases := []struct {
		configured string
		idPart     string
		dynamic    bool
		want       []string
	}{
		{"critical,*,!low", "critical,*", true, []string{"critical", "high", "test_one", "test_two"}},
		{"test_*", "test_*", true, []string{"test_one", "test_two"}},
		{"*,!test_*", "*", true, []string{"critical", "high", "low"}},
		{"high,low", "high,low", false, []string{"high", "low"}},
		{"{high,low}", "{high,low}", true, nil},
	}
	for _, c := range cases {
		s, err := parseQueues([]string{c.configured})
		if err != nil {
			t.Errorf("parseQueues(%q): %v", c.configured, err)
			continue
		}
		if got := s.idPart(); got != c.idPart {
			t.Errorf("%q: id part %q, want %q", c.configured, got, c.idPart)
		}
		if s.dynamic != c.dynamic {
			t.Errorf("%q: dynamic = %v, want %v", c.configured, s.dynamic, c.dynamic)
		}
		if got := s.resolve(known); !reflect.DeepEqual(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("%q: polling order %q, want %q", c.configured, got, c.want)
		}
	}
	// Static queues are polled even when they are not in queues.
	s, _ := parseQueues([]string{"high,low"})
	if got := s.resolve(nil); !reflect.DeepEqual(got, []string{"high", "low"}) {
		t.Errorf("static with empty queues set: %q", got)
	}
}

// docs/protocol.md §4.8's examples and edge cases of the dynamic mode.
func TestQueueResolutionRules(t *testing.T) {
	t.Parallel()
	known := []string{"critical", "high", "low", "test_one", "test_two"}
	cases := []struct {
		entries []string
		idPart  string
		want    []string
	}{
		{[]string{"critical,*,!low"}, "critical,*", []string{"critical", "high", "test_one", "test_two"}},
		{[]string{"test_*"}, "test_*", []string{"test_one", "test_two"}},
		{[]string{"*,!test_*"}, "*", []string{"critical", "high", "low"}},
		// where an exclusion is written does not matter
		{[]string{"!low", "critical", "*"}, "critical,*", []string{"critical", "high", "test_one", "test_two"}},
		// duplicates keep their first position
		{[]string{"low,*"}, "low,*", []string{"low", "critical", "high", "test_one", "test_two"}},
		{[]string{"test_*,*,test_one"}, "test_*,*,test_one", []string{"test_one", "test_two", "critical", "high", "low"}},
		// in dynamic mode a literal not in queues is not polled
		{[]string{"nope,test_?ne"}, "nope,test_?ne", []string{"test_one"}},
		// entries trimmed, empty ones dropped, several slice elements
		{[]string{" high , ", " ,low", "!x "}, "high,low", []string{"high", "low"}},
		// exclusion of everything
		{[]string{"*,!*"}, "*", nil},
		// character classes
		{[]string{"[ch]*"}, "[ch]*", []string{"critical", "high"}},
		{[]string{"*,![!t]*"}, "*", []string{"test_one", "test_two"}},
	}
	for _, c := range cases {
		s, err := parseQueues(c.entries)
		if err != nil {
			t.Errorf("parseQueues(%q): %v", c.entries, err)
			continue
		}
		if got := s.idPart(); got != c.idPart {
			t.Errorf("%q: id part %q, want %q", c.entries, got, c.idPart)
		}
		if got := s.resolve(known); !reflect.DeepEqual(got, c.want) && !(len(got) == 0 && len(c.want) == 0) {
			t.Errorf("%q: polling order %q, want %q", c.entries, got, c.want)
		}
	}
	// A static list with no glob characters is not dynamic; any of *?{}[] or
	// an exclusion makes it dynamic.
	for entry, dynamic := range map[string]bool{
		"a,b": false, "a:b,c-d": false, "a*": true, "a?": true, "{a}": true, "a}": true, "[a]": true, "a]": true, "a,!b": true,
	} {
		s, err := parseQueues([]string{entry})
		if err != nil || s.dynamic != dynamic {
			t.Errorf("parseQueues(%q).dynamic = %v (%v), want %v", entry, s.dynamic, err, dynamic)
		}
	}
}

func TestParseQueuesErrors(t *testing.T) {
	t.Parallel()
	for _, entries := range [][]string{nil, {}, {""}, {" , ,"}, {"!low"}, {"!a,!b", " "}} {
		if s, err := parseQueues(entries); err == nil {
			t.Errorf("parseQueues(%q) = %+v, want an error (Resque::NoQueueError)", entries, s)
		}
	}
}

// Ruby's File.fnmatch? with no flags.
func TestFnmatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "high", true},
		{"*", "", true},
		{"*", "a/b", true}, // no FNM_PATHNAME: '*' crosses '/'
		{"*", "a.b", true},
		{"*", ".hidden", false}, // leading '.' needs an explicit '.'
		{"?hidden", ".hidden", false},
		{"[.]hidden", ".hidden", false},
		{"*hidden", ".hidden", false},
		{".*", ".hidden", true},
		{".hidden", ".hidden", true},
		{`\.hidden`, ".hidden", true},
		{"*.b", "a.b", true},
		{"test_*", "test_one", true},
		{"test_*", "test_", true},
		{"test_*", "test", false},
		{"*_one", "test_one", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"**", "abc", true},
		{"?", "a", true},
		{"?", "é", true}, // one character, not one byte
		{"?", "ab", false},
		{"?", "", false},
		{"a?c", "abc", true},
		{"[a-c]", "b", true},
		{"[a-c]", "d", false},
		{"[a-c]x", "cx", true},
		{"[abc]", "c", true},
		{"[!a]", "a", false},
		{"[!a]", "b", true},
		{"[^a]", "b", true},
		{"[^a]", "a", false},
		{"[]a]", "]", true},
		{"[]a]", "a", true},
		{`\*`, "*", true},
		{`\*`, "a", false},
		{`a\?`, "a?", true},
		{`a\?`, "ab", false},
		{`\[a]`, "[a]", true},
		{"{a,b}", "a", false}, // braces are literal
		{"{a,b}", "{a,b}", true},
		{"{high,low}", "high", false},
		{"high", "high", true},
		{"high", "highx", false},
		{"high", "hig", false},
		{"queue:*", "queue:foo:bar", true},
		{"", "", true},
		{"", "a", false},
	}
	for _, c := range cases {
		if got := fnmatch(c.pattern, c.name); got != c.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", c.pattern, c.name, got, c.want)
		}
	}
}

func TestWorkerIDs(t *testing.T) {
	t.Parallel()
	if got := workerIDs("web1", 4242, "file_serve,warm_cache", 1); !reflect.DeepEqual(got, []string{"web1:4242:file_serve,warm_cache"}) {
		t.Errorf("one slot: %q", got)
	}
	want := []string{"web1:4242:file_serve,warm_cache:1", "web1:4242:file_serve,warm_cache:2", "web1:4242:file_serve,warm_cache:3"}
	if got := workerIDs("web1", 4242, "file_serve,warm_cache", 3); !reflect.DeepEqual(got, want) {
		t.Errorf("three slots: %q", got)
	}
	if got := workerIDs("h", 1, "*", 2); !reflect.DeepEqual(got, []string{"h:1:*:1", "h:1:*:2"}) {
		t.Errorf("star: %q", got)
	}
	// Every id has at least two colons, a non-empty third part
	// (docs/protocol.md §4.1) and the bare pid as its second part (§4.15).
	for _, id := range append(want, workerIDs("h", 77, "q", 1)...) {
		parts := strings.SplitN(id, ":", 3)
		if len(parts) != 3 || parts[2] == "" || (parts[1] != "4242" && parts[1] != "77") {
			t.Errorf("%q is not host:pid:queues", id)
		}
	}
}
