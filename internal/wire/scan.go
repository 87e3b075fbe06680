package wire

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// ErrTooDeep is wrapped by ScanPayload's error for JSON nested deeper than
// the limit.
var ErrTooDeep = errors.New("JSON nested too deep")

// topField is one member of the payload object: the raw key token (with its
// quotes) and the raw value.
type topField struct {
	key   []byte
	value []byte
}

// scanner checks JSON in one pass without decoding it: syntax, nesting depth
// and duplicate object keys. It replaces a depth scan, a duplicate-key token
// walk and a reflective decode into a map, which profiling showed to be a
// quarter of a worker's CPU per job.
type scanner struct {
	b        []byte
	i        int
	maxDepth int
	top      []topField
}

// ScanPayload checks raw in one pass (JSON syntax, nesting up to maxDepth,
// no duplicate keys in any object, a JSON object at the top) and returns the
// top-level members in order. The values alias raw.
func ScanPayload(raw []byte, maxDepth int) ([]topField, error) {
	s := scanner{b: raw, maxDepth: maxDepth, top: make([]topField, 0, 8)}
	s.ws()
	if s.i >= len(s.b) {
		return nil, &PayloadError{Reason: "not JSON (empty)"}
	}
	if s.b[s.i] != '{' {
		if err := s.value(0); err != nil {
			return nil, err
		}
		return nil, &PayloadError{Reason: "not a JSON object (a Resque job is {\"class\":…,\"args\":[…]})"}
	}
	if err := s.object(1, true); err != nil {
		return nil, err
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, s.syntax("data after the JSON object")
	}
	return s.top, nil
}

func (s *scanner) syntax(what string) error {
	return &PayloadError{Reason: fmt.Sprintf("not JSON (%s at byte %d)", what, s.i)}
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) value(depth int) error {
	s.ws()
	if s.i >= len(s.b) {
		return s.syntax("unexpected end")
	}
	switch c := s.b[s.i]; {
	case c == '{':
		return s.object(depth+1, false)
	case c == '[':
		return s.array(depth + 1)
	case c == '"':
		_, err := s.str()
		return err
	case c == 't':
		return s.lit("true")
	case c == 'f':
		return s.lit("false")
	case c == 'n':
		return s.lit("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	default:
		return s.syntax(fmt.Sprintf("invalid character %q", c))
	}
}

func (s *scanner) lit(w string) error {
	if len(s.b)-s.i < len(w) || string(s.b[s.i:s.i+len(w)]) != w {
		return s.syntax("invalid literal")
	}
	s.i += len(w)
	return nil
}

func (s *scanner) number() error {
	start := s.i
	if s.b[s.i] == '-' {
		s.i++
	}
	digits := func() int {
		n := 0
		for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
			s.i++
			n++
		}
		return n
	}
	if s.i < len(s.b) && s.b[s.i] == '0' {
		s.i++
	} else if digits() == 0 {
		return s.syntax("invalid number")
	}
	if s.i < len(s.b) && s.b[s.i] == '.' {
		s.i++
		if digits() == 0 {
			return s.syntax("invalid number")
		}
	}
	if s.i < len(s.b) && (s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i++
		if s.i < len(s.b) && (s.b[s.i] == '+' || s.b[s.i] == '-') {
			s.i++
		}
		if digits() == 0 {
			return s.syntax("invalid number")
		}
	}
	_ = start
	return nil
}

// str scans a string token and returns it raw (with quotes).
func (s *scanner) str() ([]byte, error) {
	start := s.i
	s.i++
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start:s.i], nil
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, s.syntax("unexpected end in string")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.b) {
					return nil, s.syntax("bad \\u escape")
				}
				for _, h := range s.b[s.i+2 : s.i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return nil, s.syntax("bad \\u escape")
					}
				}
				s.i += 6
			default:
				return nil, s.syntax("bad escape")
			}
		case c < 0x20:
			return nil, s.syntax("control character in string")
		default:
			s.i++
		}
	}
	return nil, s.syntax("unterminated string")
}

func (s *scanner) array(depth int) error {
	if depth > s.maxDepth {
		return fmt.Errorf("%w (limit %d)", ErrTooDeep, s.maxDepth)
	}
	s.i++ // [
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
		return nil
	}
	for {
		if err := s.value(depth); err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.syntax("unexpected end in array")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return s.syntax("expected , or ] in array")
		}
	}
}

func (s *scanner) object(depth int, top bool) error {
	if depth > s.maxDepth {
		return fmt.Errorf("%w (limit %d)", ErrTooDeep, s.maxDepth)
	}
	s.i++               // {
	var small [8][]byte // most objects have few keys: no allocation for them
	keys := small[:0]
	var seen map[string]bool // for objects with many keys
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == '}' {
		s.i++
		return nil
	}
	for {
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != '"' {
			return s.syntax("expected a string key")
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		dup := false
		if seen != nil {
			u := unquote(key)
			dup = seen[u]
			seen[u] = true
		} else {
			for _, k := range keys {
				if sameKey(k, key) {
					dup = true
					break
				}
			}
			keys = append(keys, key)
			if len(keys) > 16 {
				seen = make(map[string]bool, 64)
				for _, k := range keys {
					seen[unquote(k)] = true
				}
			}
		}
		if dup {
			return &PayloadError{Reason: fmt.Sprintf("duplicate key %s in a JSON object", truncate(string(key), 64))}
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return s.syntax("expected : after a key")
		}
		s.i++
		s.ws()
		vstart := s.i
		if err := s.value(depth); err != nil {
			return err
		}
		if top {
			s.top = append(s.top, topField{key: key, value: s.b[vstart:s.i]})
		}
		s.ws()
		if s.i >= len(s.b) {
			return s.syntax("unexpected end in object")
		}
		switch s.b[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return s.syntax("expected , or } in object")
		}
	}
}

// sameKey compares two raw key tokens as decoded strings. Different bytes
// without escapes are different strings only when both are valid UTF-8:
// encoding/json decodes every invalid byte to U+FFFD, so "\xff" and "\xb9"
// are one key to a handler's decoder, and a duplicate here.
func sameKey(a, b []byte) bool {
	if string(a) == string(b) {
		return true
	}
	if !hasBackslash(a) && !hasBackslash(b) && utf8.Valid(a) && utf8.Valid(b) {
		return false
	}
	return unquote(a) == unquote(b)
}

func hasBackslash(b []byte) bool {
	for _, c := range b {
		if c == '\\' {
			return true
		}
	}
	return false
}

// unquote decodes a raw JSON string token.
func unquote(tok []byte) string {
	if len(tok) >= 2 && !hasBackslash(tok) && utf8.Valid(tok) {
		return string(tok[1 : len(tok)-1])
	}
	var s string
	if json.Unmarshal(tok, &s) != nil {
		if u, err := strconv.Unquote(string(tok)); err == nil {
			return u
		}
	}
	return s
}

// SplitArray checks raw in one pass as ScanPayload does (JSON syntax,
// nesting up to maxDepth, no duplicate keys in any object), requires one
// JSON array, and returns its elements as sub-slices of raw.
func SplitArray(raw []byte, maxDepth int) ([]json.RawMessage, error) {
	s := scanner{b: raw, maxDepth: maxDepth}
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		return nil, &PayloadError{Reason: "not a JSON array"}
	}
	if maxDepth < 1 {
		return nil, fmt.Errorf("%w (limit %d)", ErrTooDeep, maxDepth)
	}
	s.i++
	var out []json.RawMessage
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == ']' {
		s.i++
	} else {
		for {
			s.ws()
			start := s.i
			if err := s.value(1); err != nil {
				return nil, err
			}
			out = append(out, json.RawMessage(s.b[start:s.i]))
			s.ws()
			if s.i >= len(s.b) {
				return nil, s.syntax("unexpected end in array")
			}
			if s.b[s.i] == ']' {
				s.i++
				break
			}
			if s.b[s.i] != ',' {
				return nil, s.syntax("expected , or ] in array")
			}
			s.i++
		}
	}
	s.ws()
	if s.i != len(s.b) {
		return nil, s.syntax("data after the JSON array")
	}
	return out, nil
}
