package recurring

import (
	"encoding/json"
	"testing"
	"time"
)

// FuzzParseCron: the parser never panics, and an accepted expression gives
// strictly increasing fire times.
func FuzzParseCron(f *testing.F) {
	for _, s := range []string{"30 2 * * *", "*/15 * * * * *", "0 9 * * fri#-1 Europe/Berlin", "0 0 L,-3 */2 mon&",
		"5/20 22-2 * jan-mar sat-sun +05:30", "@daily UTC", "0 0 29 2 *", "1,2,,3 * * * *", "* * * * 7-1"} {
		f.Add(s)
	}
	ny, _ := time.LoadLocation("America/New_York")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCron(s, ny)
		if err != nil {
			return
		}
		at := time.Date(2024, 3, 9, 23, 59, 0, 0, time.UTC)
		for range 5 {
			n, ok := c.Next(at)
			if !ok {
				return
			}
			if !n.After(at) {
				t.Fatalf("%q: Next(%v) = %v", s, at, n)
			}
			at = n
		}
	})
}

// FuzzParseConfig: any persistent config either fails with an error or
// gives a schedule whose args are a JSON array and whose stored config is a
// JSON object.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{`{"class":"A","every":"1h","queue":"q","args":{"a":1}}`, `{"cron":"0 * * * *","args":[1,"x",null]}`,
		`{"every":["30s",{"first_in":"2m"}],"args":"s","rails_env":"a b,c"}`, `[]`, `{"args":1e400}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseJSON("f", b, ParseOptions{Location: time.UTC})
		if err != nil {
			return
		}
		var args []json.RawMessage
		if err := json.Unmarshal(s.Args, &args); err != nil {
			t.Fatalf("args %s: %v", s.Args, err)
		}
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(s.Config, &cfg); err != nil {
			t.Fatalf("config %s: %v", s.Config, err)
		}
	})
}

// FuzzLoadYAML: any file either fails or gives schedules whose args are
// JSON arrays.
func FuzzLoadYAML(f *testing.F) {
	f.Add([]byte("a:\n  cron: \"0 * * * *\"\n  args: {x: 1.0, y: yes, z: 0x1f}\n"))
	f.Add([]byte("d: &d {queue: q}\nb:\n  <<: *d\n  every: [1h, {first_in: 2m}]\n  args: [1, ~, '2']\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, _ := LoadYAML(b, ParseOptions{Location: time.UTC})
		for name, sc := range s {
			var args []json.RawMessage
			if err := json.Unmarshal(sc.Args, &args); err != nil {
				t.Fatalf("%s: args %s: %v", name, sc.Args, err)
			}
		}
	})
}
