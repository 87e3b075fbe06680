package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSemverCompare(t *testing.T) {
	order := []string{"0.0.1", "0.3.7", "0.3.8-rc.1", "0.3.8-rc.2", "0.3.8-rc.10", "0.3.8", "0.10.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0"}
	for i := range order {
		for j := range order {
			a, err := parseSemver(order[i])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := parseSemver(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.compare(b); got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	for _, bad := range []string{"", "1", "1.2", "1.2.x", "01.2.3", "1.2.3-"} {
		if _, err := parseSemver(bad); err == nil {
			t.Errorf("parseSemver(%q) accepted", bad)
		}
	}
}

func TestLatestFix(t *testing.T) {
	mk := func(typ string, ev ...[2]string) osvRange {
		r := osvRange{Type: typ}
		for _, e := range ev {
			r.Events = append(r.Events, struct {
				Introduced string `json:"introduced,omitempty"`
				Fixed      string `json:"fixed,omitempty"`
			}{e[0], e[1]})
		}
		return r
	}
	cases := []struct {
		name   string
		ranges []osvRange
		want   string
	}{
		{"simple", []osvRange{mk("SEMVER", [2]string{"0", ""}, [2]string{"", "0.3.8"})}, "0.3.8"},
		{"latest of several", []osvRange{mk("SEMVER", [2]string{"0", ""}, [2]string{"", "1.2.0"}, [2]string{"1.3.0", ""}, [2]string{"", "1.3.5"})}, "1.3.5"},
		{"reintroduced", []osvRange{mk("SEMVER", [2]string{"0", ""}, [2]string{"", "1.2.0"}, [2]string{"1.4.0", ""})}, ""},
		{"no fix", []osvRange{mk("SEMVER", [2]string{"0", ""})}, ""},
		{"non-semver ignored", []osvRange{mk("GIT", [2]string{"0", ""}, [2]string{"", "abc"})}, ""},
		{"unparseable", []osvRange{mk("SEMVER", [2]string{"0", ""}, [2]string{"", "1.x"})}, ""},
	}
	for _, c := range cases {
		if got := latestFix(c.ranges); got != c.want {
			t.Errorf("%s: latestFix = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestBuild(t *testing.T) {
	src := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("GO-2000-0001.json", `{"id":"GO-2000-0001","modified":"0001-01-01T00:00:00Z","aliases":["CVE-1"],
		"affected":[{"package":{"name":"example.com/a","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}]},
		            {"package":{"name":"example.com/b","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"}]}]},
		            {"package":{"name":"example.com/c","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.0.0"}]}]},
		            {"package":{"name":"example.com/c","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"2.0.0"},{"fixed":"2.1.0"}]}]}]}`)
	write("GO-2000-0002.json", `{"id":"GO-2000-0002","modified":"2030-01-02T03:04:05Z",
		"affected":[{"package":{"name":"example.com/a","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.9.0"}]}]}]}`)
	write("README.md", "not a report")

	out := filepath.Join(t.TempDir(), "db")
	fallback := time.Date(2026, 11, 5, 23, 49, 57, 0, time.UTC)
	n, err := build(src, out, fallback)
	if err != nil || n != 2 {
		t.Fatalf("build = %d, %v", n, err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := read("index/db.json"), `{"modified":"2030-01-02T03:04:05Z"}`; got != want {
		t.Errorf("db.json = %s, want %s", got, want)
	}
	wantModules := `[{"path":"example.com/a","vulns":[{"id":"GO-2000-0001","modified":"2026-11-05T23:49:57Z","fixed":"1.2.3"},{"id":"GO-2000-0002","modified":"2030-01-02T03:04:05Z","fixed":"0.9.0"}]},{"path":"example.com/b","vulns":[{"id":"GO-2000-0001","modified":"2026-11-05T23:49:57Z"}]},{"path":"example.com/c","vulns":[{"id":"GO-2000-0001","modified":"2026-11-05T23:49:57Z","fixed":"2.1.0"}]}]`
	if got := read("index/modules.json"); got != wantModules {
		t.Errorf("modules.json =\n%s\nwant\n%s", got, wantModules)
	}
	var vulns []vulnMeta
	if err := json.Unmarshal([]byte(read("index/vulns.json")), &vulns); err != nil || len(vulns) != 2 || vulns[0].Aliases[0] != "CVE-1" || len(vulns[1].Aliases) != 0 {
		t.Errorf("vulns.json = %s (%v)", read("index/vulns.json"), err)
	}
	src1, _ := os.ReadFile(filepath.Join(src, "GO-2000-0001.json"))
	if read("ID/GO-2000-0001.json") != string(src1) {
		t.Error("ID/GO-2000-0001.json is not a byte copy of the report")
	}
	if _, err := os.Stat(out + ".tmp"); !os.IsNotExist(err) {
		t.Error("temporary directory left behind")
	}

	write("GO-2000-0003.json", `{"id":"GO-2000-9999"}`)
	if _, err := build(src, out, fallback); err == nil {
		t.Error("mismatched file name accepted")
	}
}
