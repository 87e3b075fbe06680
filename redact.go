package resq

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/resq-go/resq/internal/wire"
)

// Redacted replaces secret values wherever resq shows arguments.
const Redacted = "[REDACTED]"

// EncryptedArgs is what is shown instead of encrypted arguments.
const EncryptedArgs = "[encrypted]"

// defaultSecretWords mark an argument field as secret by name, whatever its
// class: a field whose lower-cased name contains one of them is redacted.
var defaultSecretWords = []string{"password", "passwd", "secret", "token", "apikey", "api_key",
	"private_key", "authorization", "credential", "card_number", "cvv", "ssn"}

// Redactor hides secret argument values. Fields are secret when their name
// contains a well-known word (password, token, …), when the argument type's
// struct field has the tag `resq:"secret"` (registered in Redis by Clients
// and Workers, so every process sees them), or when the whole args are
// encrypted. Admin views, the CLI and the dashboard all use it.
type Redactor struct {
	classFields map[string]map[string]bool
}

// Redactor loads the secret fields registered for each class.
func (a *Admin) Redactor(ctx context.Context) (*Redactor, error) {
	m, err := a.store.SecretFields(ctx)
	if err != nil {
		return nil, err
	}
	r := &Redactor{classFields: map[string]map[string]bool{}}
	for class, fields := range m {
		set := map[string]bool{}
		for _, f := range fields {
			set[f] = true
		}
		r.classFields[class] = set
	}
	return r, nil
}

func (r *Redactor) secret(class, field string) bool {
	lf := strings.ToLower(field)
	for _, w := range defaultSecretWords {
		if strings.Contains(lf, w) {
			return true
		}
	}
	return r != nil && r.classFields[class][field]
}

// Args returns args (a JSON array) with secret fields' values replaced by
// Redacted. Arguments that cannot be parsed are returned as a redacted
// placeholder.
func (r *Redactor) Args(class string, args json.RawMessage) json.RawMessage {
	if len(args) == 0 {
		return json.RawMessage("[]")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return json.RawMessage(`"` + Redacted + `"`)
	}
	if class == ActiveJobWrapperClass {
		class = activeJobClassOf(v, class) // secret fields are registered under the job_class
	}
	changed := false
	v = r.walk(class, v, &changed)
	if !changed {
		return args
	}
	out, err := wire.MarshalValue(v)
	if err != nil {
		return json.RawMessage(`"` + Redacted + `"`)
	}
	return out
}

func (r *Redactor) walk(class string, v any, changed *bool) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if r.secret(class, k) {
				x[k] = Redacted
				*changed = true
				continue
			}
			x[k] = r.walk(class, val, changed)
		}
	case []any:
		for i := range x {
			x[i] = r.walk(class, x[i], changed)
		}
	}
	return v
}

// secretValues returns the values of secret fields in args (all string and
// number leaves when the args were encrypted), for scrubbing error messages.
func (r *Redactor) secretValues(class string, args json.RawMessage, encrypted bool) []string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return nil
	}
	var out []string
	var walk func(v any, secret bool)
	walk = func(v any, secret bool) {
		switch x := v.(type) {
		case map[string]any:
			for k, val := range x {
				walk(val, secret || r.secret(class, k))
			}
		case []any:
			for _, e := range x {
				walk(e, secret)
			}
		case string:
			if secret && len(x) >= 4 {
				out = append(out, x)
			}
		case json.Number:
			if secret && len(x) >= 4 {
				out = append(out, x.String())
			}
		}
	}
	walk(v, encrypted)
	// Longest first, so a secret that contains another is replaced whole.
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// scrub replaces every occurrence of the secrets in s.
func scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, Redacted)
		}
	}
	return s
}

// secretFieldsOf returns the JSON names of fields tagged `resq:"secret"` in
// t (following nested structs, pointers, slices and maps).
func secretFieldsOf(t reflect.Type) []string {
	seen := map[reflect.Type]bool{}
	set := map[string]bool{}
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Name
			if tag, ok := f.Tag.Lookup("json"); ok {
				if n, _, _ := strings.Cut(tag, ","); n == "-" {
					continue
				} else if n != "" {
					name = n
				}
			}
			if f.Tag.Get("resq") == "secret" {
				set[name] = true
			}
			visit(f.Type)
		}
	}
	visit(t)
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// secretRegistry remembers which classes' secret fields were already
// written to Redis by this process.
type secretRegistry struct {
	mu   sync.Mutex
	done map[string]string
}

func (s *secretRegistry) register(ctx context.Context, store *wire.Store, class string, fields []string) error {
	if len(fields) == 0 {
		return nil
	}
	key := strings.Join(fields, "\x00")
	s.mu.Lock()
	if s.done == nil {
		s.done = map[string]string{}
	}
	if s.done[class] == key {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	if err := store.AddSecretFields(ctx, class, fields); err != nil {
		return err
	}
	s.mu.Lock()
	s.done[class] = key
	s.mu.Unlock()
	return nil
}
