package wire

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
)

// Retries keep resque-retry's keys (docs/protocol.md, "Retries"):
//
//	<ns>:resque-retry:<class>[:<sha1 of the args joined by "-">]   attempt counter
//	<ns>:failure-resque-retry:<same suffix>                         last failure while retrying
//
// The counter holds -1 before the first run and is INCRed at the start of
// every run, so it reads the attempt number (0 on the first run). A retry
// itself is a delayed item (or, with no delay, a queue push) written in the
// ack's MULTI.

// RetryKey returns resque-retry's attempt counter key for class and an
// identifier (RetryIdentifier; "" adds no third part). Whitespace is
// removed from the whole relative key, as Ruby's gsub(/\s/, ”) does.
func (k Keys) RetryKey(class, identifier string) string {
	rel := "resque-retry:" + class
	if identifier != "" {
		rel += ":" + identifier
	}
	return k.ns + stripRubySpace(rel)
}

// RetryFailureKey returns MultipleWithRetrySuppression's key for the last
// failure of the job whose counter is retryKey (a full key from RetryKey).
func (k Keys) RetryFailureKey(retryKey string) string {
	return k.ns + "failure-" + strings.TrimPrefix(retryKey, k.ns)
}

// stripRubySpace removes the characters of Ruby's /\s/: space, \t, \n, \v,
// \f, \r.
func stripRubySpace(s string) string {
	if !strings.ContainsAny(s, " \t\n\v\f\r") {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\n', '\v', '\f', '\r':
			return -1
		}
		return r
	}, s)
}

// HashInspect selects how a hash argument is written by Ruby's Hash#inspect,
// which resque-retry's identifier uses through Array#join.
type HashInspect int

const (
	// HashInspectRuby33 is `{"a"=>1}` (Ruby up to 3.3).
	HashInspectRuby33 HashInspect = iota
	// HashInspectRuby34 is `{"a" => 1}` (Ruby 3.4 and later).
	HashInspectRuby34
)

// RetryIdentifier returns resque-retry's retry_identifier for a JSON args
// array: Ruby's args.join('-') (nested arrays flattened, every element's
// to_s, a hash's to_s being its inspect) hashed with SHA-1, hex; "" when the
// joined string is empty (Ruby's nil). Numbers follow Ruby's JSON parser: a
// number with '.', 'e' or 'E' is a Float (written as Float#to_s), others
// are Integers.
func RetryIdentifier(args json.RawMessage, style HashInspect) (string, error) {
	joined, err := RubyJoin(args, style)
	if err != nil || joined == "" {
		return "", err
	}
	sum := sha1.Sum([]byte(joined))
	return hex.EncodeToString(sum[:]), nil
}

// RubyJoin returns Ruby's args.join('-') for a JSON args array: the string
// RetryIdentifier hashes.
func RubyJoin(args json.RawMessage, style HashInspect) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	v, err := readRubyValue(dec)
	if err != nil {
		return "", fmt.Errorf("retry identifier: %w", err)
	}
	if v.kind != '[' {
		return "", fmt.Errorf("retry identifier: args are not a JSON array")
	}
	return string(rubyJoin(nil, v.elems, style)), nil
}

// rubyValue is a JSON value with its object keys in order (Ruby's hashes
// keep insertion order, and inspect follows it).
type rubyValue struct {
	kind  byte // 'n' null, 'b' bool, 's' string, '0' number, '[' array, '{' object
	s     string
	b     bool
	keys  []string
	elems []rubyValue // array elements, or object values
}

func readRubyValue(dec *json.Decoder) (rubyValue, error) {
	t, err := dec.Token()
	if err != nil {
		return rubyValue{}, err
	}
	switch x := t.(type) {
	case nil:
		return rubyValue{kind: 'n'}, nil
	case bool:
		return rubyValue{kind: 'b', b: x}, nil
	case string:
		return rubyValue{kind: 's', s: x}, nil
	case json.Number:
		return rubyValue{kind: '0', s: string(x)}, nil
	case json.Delim:
		v := rubyValue{kind: byte(x)}
		for dec.More() {
			if x == '{' {
				k, err := dec.Token()
				if err != nil {
					return v, err
				}
				ks, _ := k.(string)
				v.keys = append(v.keys, ks)
			}
			e, err := readRubyValue(dec)
			if err != nil {
				return v, err
			}
			v.elems = append(v.elems, e)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return v, err
		}
		return v, nil
	}
	return rubyValue{}, fmt.Errorf("unexpected JSON token %v", t)
}

func rubyJoin(b []byte, a []rubyValue, style HashInspect) []byte {
	for i, e := range a {
		if i > 0 {
			b = append(b, '-')
		}
		switch e.kind {
		case '[':
			b = rubyJoin(b, e.elems, style) // Array#join flattens
		case 'n':
			// nil.to_s is ""
		case 's':
			b = append(b, e.s...)
		default:
			b = rubyInspect(b, e, style)
		}
	}
	return b
}

// rubyInspect appends Ruby's inspect of a value (to_s for numbers and
// booleans is the same).
func rubyInspect(b []byte, v rubyValue, style HashInspect) []byte {
	switch v.kind {
	case 'n':
		return append(b, "nil"...)
	case 'b':
		return strconv.AppendBool(b, v.b)
	case 's':
		return appendRubyStringInspect(b, v.s)
	case '0':
		if !strings.ContainsAny(v.s, ".eE") {
			if v.s == "-0" {
				return append(b, '0')
			}
			return append(b, v.s...)
		}
		f, err := strconv.ParseFloat(v.s, 64)
		if err != nil { // out of range: Ruby's Infinity
			if strings.HasPrefix(v.s, "-") {
				return append(b, "-Infinity"...)
			}
			return append(b, "Infinity"...)
		}
		out, _ := AppendRubyFloat(b, f)
		return out
	case '[':
		b = append(b, '[')
		for i, e := range v.elems {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = rubyInspect(b, e, style)
		}
		return append(b, ']')
	case '{':
		b = append(b, '{')
		for i, e := range v.elems {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendRubyStringInspect(b, v.keys[i])
			if style == HashInspectRuby34 {
				b = append(b, " => "...)
			} else {
				b = append(b, "=>"...)
			}
			b = rubyInspect(b, e, style)
		}
		return append(b, '}')
	}
	return b
}

// appendRubyStringInspect appends String#inspect of a UTF-8 string.
func appendRubyStringInspect(b []byte, s string) []byte {
	b = append(b, '"')
	for i, r := range s {
		switch r {
		case '"':
			b = append(b, `\"`...)
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		case '\r':
			b = append(b, `\r`...)
		case '\t':
			b = append(b, `\t`...)
		case '\f':
			b = append(b, `\f`...)
		case '\v':
			b = append(b, `\v`...)
		case '\b':
			b = append(b, `\b`...)
		case '\a':
			b = append(b, `\a`...)
		case 0x1b:
			b = append(b, `\e`...)
		case '#':
			if i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '$' || s[i+1] == '@') {
				b = append(b, `\#`...)
			} else {
				b = append(b, '#')
			}
		default:
			if r < 0x20 || r == 0x7f {
				b = append(b, fmt.Sprintf(`\u%04X`, r)...)
			} else if r == utf8.RuneError {
				b = append(b, `\uFFFD`...)
			} else {
				b = utf8.AppendRune(b, r)
			}
		}
	}
	return append(b, '"')
}

// BeginAttempt counts one run of a job with a retry policy as resque-retry's
// before_perform does (SETNX key -1, INCR key) in one round trip (a MULTI),
// and when expire is positive sets the key's TTL (expire_retry_key_after).
// It returns the attempt number: 0 on the first run.
func (s *Store) BeginAttempt(ctx context.Context, key string, expire time.Duration) (int64, error) {
	var incr *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.SetNX(ctx, key, -1, 0)
		incr = p.Incr(ctx, key)
		if expire > 0 {
			p.Expire(ctx, key, expire)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("counting the attempt in %s: %w", key, err)
	}
	return incr.Val(), nil
}

// Retry is a failed job's next attempt, written by the ack instead of a
// failure record (Ack.Retry), in the same MULTI that clears the in-flight
// record: a worker that dies before the ack leaves the job in its record
// for the dead-worker check, one that dies after has written the retry.
type Retry struct {
	// TS is the due second: the item goes to the delayed queue
	// (delayed:<TS>, timestamps:<item>, delayed_queue_schedule, as
	// PushDelayed). 0 pushes Item to Queue at once (resque-retry's delay 0).
	TS int64
	// Item is the delayed item (RetryItem), or for TS 0 the payload.
	Item  []byte
	Queue string
	// FailureKey, when set, receives Failure for FailureTTL
	// (MultipleWithRetrySuppression's failure-resque-retry record).
	FailureKey string
	Failure    []byte
	FailureTTL time.Duration
}

// retryCommands queues a retry's commands inside the ack's MULTI. The wake
// is published unconditionally (inside a MULTI the schedule's head cannot
// be compared); a scheduler that wakes for nothing re-reads the schedule.
func (s *Store) retryCommands(ctx context.Context, p redis.Pipeliner, r *Retry) {
	if r.TS > 0 {
		ts := strconv.FormatInt(r.TS, 10)
		p.RPush(ctx, s.Keys.Delayed(r.TS), r.Item)
		p.SAdd(ctx, s.Keys.Timestamps(r.Item), DelayedMember(r.TS))
		p.ZAdd(ctx, s.Keys.DelayedSchedule(), redis.Z{Score: float64(r.TS), Member: ts})
		p.Publish(ctx, s.Keys.DelayedWake(), ts)
	} else {
		p.SAdd(ctx, s.Keys.Queues(), r.Queue)
		p.RPush(ctx, s.Keys.Queue(r.Queue), r.Item)
	}
	if r.FailureKey != "" {
		p.Set(ctx, r.FailureKey, r.Failure, max(r.FailureTTL, time.Second))
	}
}

// RetryItem returns the delayed item that retries a job of p on queue. A
// job carrying resq's fields (id, enqueued_at, sig, enc) keeps every field
// and value byte for byte, with "queue" after "args": the move gives back
// the same payload, so a signature still verifies and the id is the same.
// A Ruby or node-resque job becomes Ruby's {"class","args","queue"}, what
// resque-retry's Resque.enqueue_in writes.
func RetryItem(p Payload, queue string) []byte {
	_, hasID := p.Field("id")
	if !hasID && p.Envelope.Sig == nil && p.Envelope.Enc == nil {
		return RubyDelayedItem(p.Class, p.Args, queue)
	}
	b := []byte{'{'}
	for _, f := range p.fields {
		k := unquote(f.key)
		if k == "queue" {
			continue
		}
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = append(b, f.key...)
		b = append(b, ':')
		b = append(b, f.value...)
		if k == "args" {
			b = append(b, `,"queue":`...)
			b = appendString(b, queue)
		}
	}
	if _, ok := p.Field("args"); !ok {
		b = append(b, `,"queue":`...)
		b = appendString(b, queue)
	}
	return append(b, '}')
}

// RetryPayload returns the payload that retries a job of p at once (delay
// 0): its own bytes when it carries resq's fields, else Ruby's
// {"class","args"} as Resque.enqueue writes it.
func RetryPayload(p Payload) []byte {
	_, hasID := p.Field("id")
	if !hasID && p.Envelope.Sig == nil && p.Envelope.Enc == nil {
		return RubyJob(p.Class, p.Args)
	}
	return p.Raw
}
