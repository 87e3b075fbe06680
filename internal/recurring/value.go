package recurring

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/resq-go/resq/internal/wire"
)

// value is a decoded config value that keeps what the job JSON needs:
// object key order, and the JSON text as Ruby would write it.
type value struct {
	kind kind
	str  string // kindString
	arr  []value
	obj  []member
	raw  json.RawMessage // the value as JSON (Ruby's bytes)
}

type member struct {
	key string
	val value
}

type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k kind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "a list", "a map"}[k]
}

func (v value) get(key string) (value, bool) {
	for _, m := range v.obj {
		if m.key == key {
			return m.val, true
		}
	}
	return value{}, false
}

// maxDepth bounds nesting in configs, as the payload decoder does.
const maxDepth = 64

// maxYAMLNodes bounds the values of a schedule file after aliases are
// followed, so an alias bomb fails instead of eating memory.
const maxYAMLNodes = 1 << 18

// decodeJSON reads one JSON value keeping key order and number text.
// Duplicate keys are refused.
func decodeJSON(data []byte) (value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readJSON(dec, 0)
	if err != nil {
		return v, err
	}
	if _, err := dec.Token(); err == nil {
		return v, errors.New("extra data after the JSON value")
	}
	return v, nil
}

func readJSON(dec *json.Decoder, depth int) (value, error) {
	if depth > maxDepth {
		return value{}, fmt.Errorf("nested deeper than %d levels", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return value{}, err
	}
	switch t := tok.(type) {
	case nil:
		return value{kind: kindNull, raw: json.RawMessage("null")}, nil
	case bool:
		return value{kind: kindBool, raw: json.RawMessage(strconv.FormatBool(t))}, nil
	case json.Number:
		return value{kind: kindNumber, str: t.String(), raw: json.RawMessage(t.String())}, nil
	case string:
		return value{kind: kindString, str: t, raw: wire.AppendJSONString(nil, t)}, nil
	case json.Delim:
		switch t {
		case '[':
			v := value{kind: kindArray}
			for dec.More() {
				e, err := readJSON(dec, depth+1)
				if err != nil {
					return v, err
				}
				v.arr = append(v.arr, e)
			}
			if _, err := dec.Token(); err != nil {
				return v, err
			}
			v.raw = encodeArray(v.arr)
			return v, nil
		case '{':
			v := value{kind: kindObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return v, err
				}
				k, _ := kt.(string)
				if _, dup := v.get(k); dup {
					return v, fmt.Errorf("duplicate key %q", k)
				}
				e, err := readJSON(dec, depth+1)
				if err != nil {
					return v, err
				}
				v.obj = append(v.obj, member{k, e})
			}
			if _, err := dec.Token(); err != nil {
				return v, err
			}
			v.raw = encodeObject(v.obj)
			return v, nil
		}
	}
	return value{}, fmt.Errorf("unexpected JSON token %v", tok)
}

func encodeArray(a []value) json.RawMessage {
	b := []byte{'['}
	for i, e := range a {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.raw...)
	}
	return append(b, ']')
}

func encodeObject(o []member) json.RawMessage {
	b := []byte{'{'}
	for i, m := range o {
		if i > 0 {
			b = append(b, ',')
		}
		b = wire.AppendJSONString(b, m.key)
		b = append(b, ':')
		b = append(b, m.val.raw...)
	}
	return append(b, '}')
}

// fromYAML converts a YAML node the way Ruby's Psych loads it (YAML 1.1
// scalars: yes/no/on/off are booleans, ~ and empty are nil, 0x1f and 1_000
// are integers) and then the json gem writes it. Anchors and aliases are
// followed; merge keys (<<) are applied.
func fromYAML(n *yaml.Node, depth int, budget *int) (value, error) {
	if *budget--; *budget < 0 {
		return value{}, fmt.Errorf("more than %d values (after following aliases); split the file or drop aliases", maxYAMLNodes)
	}
	if depth > maxDepth {
		return value{}, fmt.Errorf("line %d: nested deeper than %d levels", n.Line, maxDepth)
	}
	switch n.Kind {
	case 0: // an empty document
		return value{kind: kindNull, raw: json.RawMessage("null")}, nil
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return value{kind: kindNull, raw: json.RawMessage("null")}, nil
		}
		return fromYAML(n.Content[0], depth, budget)
	case yaml.AliasNode:
		return fromYAML(n.Alias, depth+1, budget)
	case yaml.SequenceNode:
		v := value{kind: kindArray}
		for _, c := range n.Content {
			e, err := fromYAML(c, depth+1, budget)
			if err != nil {
				return v, err
			}
			v.arr = append(v.arr, e)
		}
		v.raw = encodeArray(v.arr)
		return v, nil
	case yaml.MappingNode:
		v := value{kind: kindObject}
		set := func(k string, e value) {
			for i := range v.obj {
				if v.obj[i].key == k {
					v.obj[i].val = e
					return
				}
			}
			v.obj = append(v.obj, member{k, e})
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			if kn.Kind == yaml.ScalarNode && kn.Tag == "!!merge" {
				m, err := fromYAML(vn, depth+1, budget)
				if err != nil {
					return v, err
				}
				var maps []value
				if m.kind == kindArray {
					maps = m.arr
				} else {
					maps = []value{m}
				}
				for _, mm := range maps {
					for _, e := range mm.obj {
						if _, has := v.get(e.key); !has {
							v.obj = append(v.obj, e)
						}
					}
				}
				continue
			}
			k, err := fromYAML(kn, depth+1, budget)
			if err != nil {
				return v, err
			}
			key := k.str
			if k.kind != kindString {
				key = string(k.raw) // Ruby's json writes a non-string key with to_s
				if k.kind == kindNull {
					key = ""
				}
			}
			e, err := fromYAML(vn, depth+1, budget)
			if err != nil {
				return v, err
			}
			set(key, e)
		}
		v.raw = encodeObject(v.obj)
		return v, nil
	case yaml.ScalarNode:
		return yamlScalar(n)
	}
	return value{}, fmt.Errorf("line %d: unsupported YAML node", n.Line)
}

func yamlScalar(n *yaml.Node) (value, error) {
	str := func(s string) value { return value{kind: kindString, str: s, raw: wire.AppendJSONString(nil, s)} }
	s := n.Value
	if n.Style&yaml.TaggedStyle != 0 { // an explicit tag wins
		switch n.Tag {
		case "!!str", "!!binary", "!!timestamp":
			return str(s), nil
		case "!!null":
			return value{kind: kindNull, raw: json.RawMessage("null")}, nil
		}
	}
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return str(s), nil
	}
	switch strings.ToLower(s) {
	case "", "~", "null":
		return value{kind: kindNull, raw: json.RawMessage("null")}, nil
	case "true", "yes", "on":
		return value{kind: kindBool, raw: json.RawMessage("true")}, nil
	case "false", "no", "off":
		return value{kind: kindBool, raw: json.RawMessage("false")}, nil
	case ".inf", "+.inf", "-.inf", ".nan":
		return value{}, fmt.Errorf("line %d: %s cannot be written as JSON (Ruby's json refuses it too)", n.Line, s)
	}
	clean := strings.ReplaceAll(s, "_", "")
	if isYAMLInt(clean) {
		base, digits, neg := 10, clean, false
		if digits[0] == '-' || digits[0] == '+' {
			neg, digits = digits[0] == '-', digits[1:]
		}
		switch {
		case strings.HasPrefix(digits, "0x"):
			base, digits = 16, digits[2:]
		case strings.HasPrefix(digits, "0b"):
			base, digits = 2, digits[2:]
		case strings.HasPrefix(digits, "0o"):
			base, digits = 8, digits[2:]
		case len(digits) > 1 && digits[0] == '0':
			base, digits = 8, digits[1:] // YAML 1.1 octal, as Psych
		}
		if u, err := strconv.ParseUint(digits, base, 64); err == nil {
			t := strconv.FormatUint(u, 10)
			if neg && u != 0 {
				t = "-" + t
			}
			return value{kind: kindNumber, str: t, raw: json.RawMessage(t)}, nil
		}
		if base == 10 { // bigger than 64 bits: Ruby keeps it exactly
			t := strings.TrimLeft(digits, "0")
			if neg {
				t = "-" + t
			}
			return value{kind: kindNumber, str: t, raw: json.RawMessage(t)}, nil
		}
	}
	if isYAMLFloat(clean) {
		f, err := strconv.ParseFloat(clean, 64)
		if err == nil && !math.IsInf(f, 0) {
			b, err := wire.AppendRubyFloat(nil, f)
			if err == nil {
				return value{kind: kindNumber, str: string(b), raw: b}, nil
			}
		}
	}
	return str(s), nil
}

func isYAMLInt(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0b") || strings.HasPrefix(s, "0o") {
		return len(s) > 2
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isYAMLFloat(s string) bool {
	if s == "" || !strings.ContainsAny(s, ".eE") {
		return false
	}
	digits := 0
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' || c == 'e' || c == 'E':
		case (c == '-' || c == '+') && (i == 0 || s[i-1] == 'e' || s[i-1] == 'E'):
		default:
			return false
		}
	}
	return digits > 0
}
