// Command vulndb builds an offline Go vulnerability database for
// `govulncheck -db file://DIR` from a directory of OSV reports (such as
// data/osv in the golang.org/x/vulndb module).
//
// Usage:
//
//	go run . -src SRC_DIR -out OUT_DIR [-modified RFC3339]
//
// The output follows the documented database layout
// (https://go.dev/security/vuln/database):
//
//	OUT/index/db.json       {"modified": T}, T = newest entry modification
//	OUT/index/modules.json  [{"path": P, "vulns": [{"id","modified","fixed"}]}]
//	OUT/index/vulns.json    [{"id","modified","aliases"}]
//	OUT/ID/<ID>.json        each OSV report, copied byte for byte
//
// Reports in the vulndb repository carry a zero "modified" time (the real
// database fills it in when it is published); -modified supplies the time
// used instead for such entries (and for db.json), e.g. the commit time of
// the vulndb module version.
//
// "fixed" is the latest fixed version of a module's SEMVER ranges, left out
// when the vulnerability is re-introduced after it or when a version cannot
// be parsed: govulncheck uses it only to skip entries cheaply, so leaving it
// out is always safe.
//
// The database is written to OUT.tmp and renamed into place, so OUT is
// either complete or absent.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

type osvEntry struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases"`
	Affected []struct {
		Package struct {
			Name      string `json:"name"`
			Ecosystem string `json:"ecosystem"`
		} `json:"package"`
		Ranges []osvRange `json:"ranges"`
	} `json:"affected"`
}

type osvRange struct {
	Type   string `json:"type"`
	Events []struct {
		Introduced string `json:"introduced,omitempty"`
		Fixed      string `json:"fixed,omitempty"`
	} `json:"events"`
}

type dbMeta struct {
	Modified time.Time `json:"modified"`
}

type moduleMeta struct {
	Path  string       `json:"path"`
	Vulns []moduleVuln `json:"vulns"`
}

type moduleVuln struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Fixed    string    `json:"fixed,omitempty"`
}

type vulnMeta struct {
	ID       string    `json:"id"`
	Modified time.Time `json:"modified"`
	Aliases  []string  `json:"aliases"`
}

func main() {
	src := flag.String("src", "", "directory of OSV reports (<ID>.json)")
	out := flag.String("out", "", "output database directory")
	modified := flag.String("modified", "", "RFC 3339 time for entries whose modified time is zero")
	flag.Parse()
	if *src == "" || *out == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	var fallback time.Time
	if *modified != "" {
		t, err := time.Parse(time.RFC3339, *modified)
		if err != nil {
			fatalf("bad -modified: %v", err)
		}
		fallback = t.UTC()
	}
	n, err := build(*src, *out, fallback)
	if err != nil {
		fatalf("%v", err)
	}
	fmt.Printf("vulndb: wrote %d entries to %s\n", n, *out)
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "vulndb: "+format+"\n", args...)
	os.Exit(1)
}

// build writes the database for the reports in src to out and returns the
// number of entries.
func build(src, out string, fallback time.Time) (n int, err error) {
	files, err := filepath.Glob(filepath.Join(src, "*.json"))
	if err != nil {
		return 0, err
	}
	if len(files) == 0 {
		return 0, fmt.Errorf("no *.json reports in %s", src)
	}
	sort.Strings(files)

	tmp := out + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.MkdirAll(filepath.Join(tmp, "ID"), 0o755); err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Join(tmp, "index"), 0o755); err != nil {
		return 0, err
	}

	var db dbMeta
	modules := map[string]*moduleMeta{}
	vulns := []vulnMeta{}
	seen := map[string]bool{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		var e osvEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return 0, fmt.Errorf("%s: %v", f, err)
		}
		if e.ID == "" {
			return 0, fmt.Errorf("%s: report has no id", f)
		}
		if filepath.Base(f) != e.ID+".json" {
			return 0, fmt.Errorf("%s: file name does not match id %q", f, e.ID)
		}
		if seen[e.ID] {
			return 0, fmt.Errorf("%s: duplicate id %s", f, e.ID)
		}
		seen[e.ID] = true
		mod := e.Modified.UTC()
		if mod.IsZero() {
			mod = fallback
		}
		if mod.After(db.Modified) {
			db.Modified = mod
		}
		aliases := e.Aliases
		if aliases == nil {
			aliases = []string{}
		}
		vulns = append(vulns, vulnMeta{ID: e.ID, Modified: mod, Aliases: aliases})
		for _, a := range e.Affected {
			path := a.Package.Name
			if path == "" {
				return 0, fmt.Errorf("%s: affected package without a name", f)
			}
			m := modules[path]
			if m == nil {
				m = &moduleMeta{Path: path, Vulns: []moduleVuln{}}
				modules[path] = m
			}
			fixed := latestFix(a.Ranges)
			if last := len(m.Vulns) - 1; last >= 0 && m.Vulns[last].ID == e.ID {
				// Several affected blocks of one report for the same module:
				// one index row whose fix covers them all ("" if any has none).
				m.Vulns[last].Fixed = laterFix(m.Vulns[last].Fixed, fixed)
				continue
			}
			m.Vulns = append(m.Vulns, moduleVuln{ID: e.ID, Modified: mod, Fixed: fixed})
		}
		if err := os.WriteFile(filepath.Join(tmp, "ID", e.ID+".json"), raw, 0o644); err != nil {
			return 0, err
		}
	}

	mods := make([]*moduleMeta, 0, len(modules))
	for _, m := range modules {
		sort.SliceStable(m.Vulns, func(i, j int) bool { return m.Vulns[i].ID < m.Vulns[j].ID })
		mods = append(mods, m)
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Path < mods[j].Path })
	sort.Slice(vulns, func(i, j int) bool { return vulns[i].ID < vulns[j].ID })

	for name, v := range map[string]any{"db.json": db, "modules.json": mods, "vulns.json": vulns} {
		b, err := json.Marshal(v)
		if err != nil {
			return 0, err
		}
		if err := os.WriteFile(filepath.Join(tmp, "index", name), b, 0o644); err != nil {
			return 0, err
		}
	}
	if err := os.RemoveAll(out); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, out); err != nil {
		return 0, err
	}
	return len(vulns), nil
}

// latestFix returns the newest "fixed" version over the SEMVER ranges, or
// "" when there is none, when a later "introduced" re-opens the
// vulnerability, or when any version involved does not parse.
func latestFix(ranges []osvRange) string {
	latest := ""
	var latestV semver
	for _, r := range ranges {
		if r.Type != "SEMVER" {
			continue
		}
		for _, e := range r.Events {
			if e.Fixed == "" {
				continue
			}
			v, err := parseSemver(e.Fixed)
			if err != nil {
				return ""
			}
			if latest == "" || latestV.compare(v) < 0 {
				latest, latestV = e.Fixed, v
			}
		}
		for _, e := range r.Events {
			if e.Introduced == "" || e.Introduced == "0" {
				continue
			}
			v, err := parseSemver(e.Introduced)
			if err != nil {
				return ""
			}
			if latest == "" || latestV.compare(v) < 0 {
				latest = ""
				latestV = semver{}
				break
			}
		}
	}
	return latest
}

// laterFix combines the fixes of two affected blocks for one module: the
// vulnerability is fixed only in the later of the two, and not at all if
// either has no fix.
func laterFix(a, b string) string {
	if a == "" || b == "" {
		return ""
	}
	va, errA := parseSemver(a)
	vb, errB := parseSemver(b)
	if errA != nil || errB != nil {
		return ""
	}
	if va.compare(vb) < 0 {
		return b
	}
	return a
}

// semver is a parsed MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] version
// (OSV writes Go versions without the leading "v").
type semver struct {
	nums [3]uint64
	pre  []string
}

func parseSemver(s string) (semver, error) {
	var v semver
	orig := s
	s = strings.TrimPrefix(s, "v")
	if i := strings.IndexByte(s, '+'); i >= 0 {
		s = s[:i]
	}
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("bad version %q", orig)
	}
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil || (len(p) > 1 && p[0] == '0') {
			return v, fmt.Errorf("bad version %q", orig)
		}
		v.nums[i] = n
	}
	if hasPre {
		if pre == "" {
			return v, fmt.Errorf("bad version %q", orig)
		}
		v.pre = strings.Split(pre, ".")
		for _, id := range v.pre {
			if id == "" {
				return v, errors.New("empty prerelease identifier in " + orig)
			}
		}
	}
	return v, nil
}

// compare returns -1, 0 or +1 following semver precedence.
func (a semver) compare(b semver) int {
	for i := range a.nums {
		if a.nums[i] != b.nums[i] {
			if a.nums[i] < b.nums[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		if c := comparePre(a.pre[i], b.pre[i]); c != 0 {
			return c
		}
	}
	switch {
	case len(a.pre) < len(b.pre):
		return -1
	case len(a.pre) > len(b.pre):
		return 1
	}
	return 0
}

func comparePre(x, y string) int {
	xn, xerr := strconv.ParseUint(x, 10, 64)
	yn, yerr := strconv.ParseUint(y, 10, 64)
	switch {
	case xerr == nil && yerr == nil:
		switch {
		case xn < yn:
			return -1
		case xn > yn:
			return 1
		}
		return 0
	case xerr == nil:
		return -1 // numeric identifiers sort before alphanumeric ones
	case yerr == nil:
		return 1
	}
	return strings.Compare(x, y)
}
