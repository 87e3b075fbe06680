package resq

import (
	"fmt"
	"sort"
	"strings"
)

// queueSpec is a worker's queue list, resolved the way Ruby Resque does
// (docs/protocol.md §4.8): entries in priority order, "!pattern" exclusions, and globs.
type queueSpec struct {
	include []string
	exclude []string
	dynamic bool
}

func parseQueues(entries []string) (queueSpec, error) {
	var s queueSpec
	for _, e := range entries {
		for _, part := range strings.Split(e, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			if strings.HasPrefix(part, "!") {
				s.exclude = append(s.exclude, part[1:])
				s.dynamic = true
				continue
			}
			if strings.ContainsAny(part, "*?{}[]") {
				s.dynamic = true
			}
			s.include = append(s.include, part)
		}
	}
	if len(s.include) == 0 {
		return s, fmt.Errorf("no queues to work: give at least one queue name or pattern (e.g. \"critical,default\" or \"*\")")
	}
	return s, nil
}

// idPart is the queue part of a worker id: inclusion entries as typed,
// exclusions removed.
func (s queueSpec) idPart() string { return strings.Join(s.include, ",") }

// resolve returns the queues to poll, in order, given the members of the
// queues set. In static mode it is the inclusion list itself.
func (s queueSpec) resolve(known []string) []string {
	if !s.dynamic {
		return s.include
	}
	sorted := append([]string(nil), known...)
	sort.Strings(sorted)
	seen := map[string]bool{}
	var out []string
	for _, pat := range s.include {
		for _, q := range sorted {
			if seen[q] || !fnmatch(pat, q) {
				continue
			}
			excluded := false
			for _, ex := range s.exclude {
				if fnmatch(ex, q) {
					excluded = true
					break
				}
			}
			if !excluded {
				seen[q] = true
				out = append(out, q)
			}
		}
	}
	return out
}

// matches reports whether queue is selected by the spec (an inclusion entry
// matches it as a glob and no exclusion does).
func (s queueSpec) matches(queue string) bool {
	for _, ex := range s.exclude {
		if fnmatch(ex, queue) {
			return false
		}
	}
	for _, pat := range s.include {
		if fnmatch(pat, queue) {
			return true
		}
	}
	return false
}

// fnmatch is Ruby's File.fnmatch? with no flags: '*' matches any run of
// characters (also '/'), '?' one character, [...] a class ([!x] and [^x]
// negate), '\' escapes; braces are literal; '*', '?' and classes do not match
// a leading '.'.
func fnmatch(pattern, name string) bool {
	if strings.HasPrefix(name, ".") && pattern != "" && pattern[0] != '.' && pattern[0] != '\\' {
		if pattern[0] == '*' || pattern[0] == '?' || pattern[0] == '[' {
			return false
		}
	}
	return match([]rune(pattern), []rune(name))
}

func match(p, n []rune) bool {
	for len(p) > 0 {
		switch p[0] {
		case '*':
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if len(p) == 0 {
				return true
			}
			for i := 0; i <= len(n); i++ {
				if match(p, n[i:]) {
					return true
				}
			}
			return false
		case '?':
			if len(n) == 0 {
				return false
			}
			p, n = p[1:], n[1:]
		case '[':
			if len(n) == 0 {
				return false
			}
			ok, rest, valid := matchClass(p, n[0])
			if !valid {
				if n[0] != '[' {
					return false
				}
				p, n = p[1:], n[1:]
				continue
			}
			if !ok {
				return false
			}
			p, n = rest, n[1:]
		case '\\':
			if len(p) > 1 {
				p = p[1:]
			}
			fallthrough
		default:
			if len(n) == 0 || p[0] != n[0] {
				return false
			}
			p, n = p[1:], n[1:]
		}
	}
	return len(n) == 0
}

// matchClass matches c against the class at the start of p ("[...]").
func matchClass(p []rune, c rune) (matched bool, rest []rune, valid bool) {
	i := 1
	negate := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		negate = true
		i++
	}
	first := true
	for i < len(p) && (p[i] != ']' || first) {
		first = false
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		hi := lo
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi = p[i+2]
			if hi == '\\' && i+3 < len(p) {
				hi = p[i+3]
				i++
			}
			i += 2
		}
		if lo <= c && c <= hi {
			matched = true
		}
		i++
	}
	if i >= len(p) {
		return false, nil, false
	}
	return matched != negate, p[i+1:], true
}
