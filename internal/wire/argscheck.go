package wire

import (
	"encoding/json"
	"errors"

	"github.com/resq-go/resq/internal/envelope"
)

// CheckArgs applies to a job's args array, before it is pushed, the decode
// checks a resq worker applies to the job once fetched, so that a producer
// refuses what every worker would fail (docs/protocol.md, "Job payload"): the same
// one-pass scanner (JSON syntax, duplicate object keys, nesting depth) and
// the same arity limit, with the same messages. It returns the number of
// elements.
//
// Plain args are checked where the worker checks them, inside the payload
// object (ScanPayload over the payload, depth 1, so the args array is at
// depth 2); encrypted args (the plaintext) are checked as the worker checks
// them after decryption, the array at depth 1. The payload's size is checked
// on the encoded payload (envelope.Limits.CheckSize), as the worker does.
func CheckArgs(args []byte, lim envelope.Limits, encrypted bool) (int, error) {
	lim = lim.WithDefaults()
	depth := lim.MaxDepth - 1 // the payload object is depth 1
	if encrypted {
		depth = lim.MaxDepth
	}
	var elems []json.RawMessage
	var err error
	if depth < 1 {
		err = ErrTooDeep
	} else {
		elems, err = SplitArray(args, depth)
	}
	switch {
	case errors.Is(err, ErrTooDeep):
		return 0, &envelope.LimitError{Limit: "depth", Value: lim.MaxDepth + 1, Max: lim.MaxDepth}
	case err != nil:
		return 0, err
	}
	if err := lim.CheckArgs(len(elems)); err != nil {
		return 0, err
	}
	return len(elems), nil
}
