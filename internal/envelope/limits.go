package envelope

import (
	"errors"
	"fmt"
)

// Limits bound what a payload may be before anything decodes it.
type Limits struct {
	MaxBytes int // payload size in bytes
	MaxDepth int // JSON nesting depth (the payload object is depth 1)
	MaxArgs  int // elements of the args array
}

// Defaults for Limits.
const (
	DefaultMaxBytes = 512 << 10
	DefaultMaxDepth = 32
	DefaultMaxArgs  = 256
)

// WithDefaults fills zero fields with the defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = DefaultMaxArgs
	}
	return l
}

// LimitError names the limit a payload broke.
type LimitError struct {
	Limit string // "size", "depth" or "args"
	Value int    // what the payload has (for depth: the depth reached, which stops at Max+1)
	Max   int
}

func (e *LimitError) Error() string {
	switch e.Limit {
	case "size":
		return fmt.Sprintf("payload is %s, limit %s", FormatBytes(e.Value), FormatBytes(e.Max))
	case "depth":
		return fmt.Sprintf("JSON nesting deeper than the limit of %d levels", e.Max)
	default:
		return fmt.Sprintf("%d arguments, limit %d", e.Value, e.Max)
	}
}

// ErrLimit is matched by every *LimitError with errors.Is.
var ErrLimit = errors.New("payload limit exceeded")

func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// FormatBytes renders a byte count as people read it (512 KiB, 16.0 MiB).
func FormatBytes(n int) string {
	switch {
	case n >= 1<<20:
		if n%(1<<20) == 0 {
			return fmt.Sprintf("%d MiB", n>>20)
		}
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		if n%(1<<10) == 0 {
			return fmt.Sprintf("%d KiB", n>>10)
		}
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// CheckSize refuses a payload larger than the limit.
func (l Limits) CheckSize(n int) error {
	if n > l.MaxBytes {
		return &LimitError{Limit: "size", Value: n, Max: l.MaxBytes}
	}
	return nil
}

// CheckDepth scans JSON bytes once, without decoding, and refuses nesting
// deeper than MaxDepth. It stops at the first byte past the limit, so a
// 200,000-deep payload costs no more than a 33-deep one.
func (l Limits) CheckDepth(b []byte) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range b {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
			if depth > l.MaxDepth {
				return &LimitError{Limit: "depth", Value: depth, Max: l.MaxDepth}
			}
		case '}', ']':
			depth--
		}
	}
	return nil
}

// CheckArgs refuses an args array with more than MaxArgs elements.
func (l Limits) CheckArgs(n int) error {
	if n > l.MaxArgs {
		return &LimitError{Limit: "args", Value: n, Max: l.MaxArgs}
	}
	return nil
}
