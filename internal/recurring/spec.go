package recurring

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/resq-go/resq/internal/wire"
)

// LoadYAMLFile reads a schedule file (see LoadYAML).
func LoadYAMLFile(path string, opts ParseOptions) (map[string]*Schedule, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("schedule file: %w", err)
	}
	if st.Size() > MaxConfigBytes {
		return nil, fmt.Errorf("schedule file %s is %d bytes; the limit is %d", path, st.Size(), MaxConfigBytes)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("schedule file: %w", err)
	}
	s, err := LoadYAML(data, opts)
	if err != nil {
		return s, fmt.Errorf("schedule file %s: %w", path, err)
	}
	return s, nil
}

// Spec is a schedule config built in Go (the library's and the CLI's "set
// schedule"). JSON encodes it in resque-scheduler's format, key order
// class, queue, cron/every, args, description, rails_env.
type Spec struct {
	Class       string
	Queue       string
	Cron        string // cron wins when both are set, as in Ruby
	Every       string
	Args        json.RawMessage // any JSON value; normalised as §9.7 when it fires
	Description string
	RailsEnv    string
}

// JSON returns the config JSON for Store.SetPersistentSchedule, after
// checking that it parses as schedule name.
func (s Spec) JSON(name string, opts ParseOptions) ([]byte, error) {
	b := []byte{'{'}
	field := func(k string, v []byte) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = wire.AppendJSONString(b, k)
		b = append(b, ':')
		b = append(b, v...)
	}
	str := func(k, v string) {
		if v != "" {
			field(k, wire.AppendJSONString(nil, v))
		}
	}
	str("class", s.Class)
	str("queue", s.Queue)
	str("cron", s.Cron)
	str("every", s.Every)
	if len(s.Args) > 0 {
		if !json.Valid(s.Args) {
			return nil, &Error{Name: name, Field: "args", Problem: "is not valid JSON"}
		}
		field("args", s.Args)
	}
	str("description", s.Description)
	str("rails_env", s.RailsEnv)
	b = append(b, '}')
	if _, err := ParseJSON(name, b, opts); err != nil {
		return nil, err
	}
	return b, nil
}
