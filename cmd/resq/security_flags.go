package main

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strings"

	"github.com/resq-go/resq"
)

// keyringFlag adds --keyring FILE, defaulting to $RESQ_KEYRING.
func (c *cli) keyringFlag(f *flagSet, p *string, usage string) {
	f.StringVar(p, "keyring", c.env["RESQ_KEYRING"], "keyring `FILE` made by 'resq keys new' "+usage+" (env RESQ_KEYRING)")
}

// loadKeyring reads the keyring at path for command cmd; nil when path is
// empty. A missing or invalid file is a usage error, as a bad --exec PATH
// is; the message never contains key material.
func loadKeyring(cmd, path string) (*resq.Keyring, error) {
	if path == "" {
		return nil, nil
	}
	k, err := resq.LoadKeyring(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, usagef(cmd, "--keyring %s does not exist (make one with: resq keys new --out %s)", path, path)
	}
	if err != nil {
		return nil, usagef(cmd, "--keyring %s: %v", path, err)
	}
	return k, nil
}

// limitFlags are the payload limits of enqueue and work.
type limitFlags struct {
	payload int64
	depth   int
	args    int
}

func (l *limitFlags) register(f *flagSet, who string) {
	newSize(f.FlagSet, &l.payload, "max-payload", 0, who+" payloads larger than `SIZE` (e.g. 1MiB; default 512KiB)")
	f.IntVar(&l.depth, "max-depth", 0, who+" payloads whose JSON nests deeper than `N` levels (default 32)")
	f.IntVar(&l.args, "max-args", 0, who+" jobs with more than `N` arguments (default 256)")
}

// limits checks the values; zero fields take the library's defaults.
func (l *limitFlags) limits(cmd string) (resq.Limits, error) {
	switch {
	case l.payload < 0 || l.payload > math.MaxInt32:
		return resq.Limits{}, usagef(cmd, "--max-payload %s is out of range (up to 2GiB)", formatSize(l.payload))
	case l.depth < 0:
		return resq.Limits{}, usagef(cmd, "--max-depth must not be negative")
	case l.args < 0:
		return resq.Limits{}, usagef(cmd, "--max-args must not be negative")
	}
	return resq.Limits{MaxPayloadBytes: int(l.payload), MaxDepth: l.depth, MaxArgs: l.args}, nil
}

// describeKeyring is the keyring summary written to logs: ids and what the
// keyring does, never secrets.
func describeKeyring(k *resq.Keyring) string {
	sign, enc := "", ""
	for _, key := range k.Keys() {
		if !key.Primary {
			continue
		}
		if key.Purpose == "signing" {
			sign = fmt.Sprintf("signs with %s (%s)", key.ID, key.Type)
		} else {
			enc = fmt.Sprintf("encrypts with %s", key.ID)
		}
	}
	var parts []string
	for _, p := range []string{sign, enc} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if k.CanVerify() {
		parts = append(parts, fmt.Sprintf("verifies %d signing key(s)", countKeys(k, "signing")))
	}
	if n := countKeys(k, "encryption"); n > 0 {
		parts = append(parts, fmt.Sprintf("decrypts %d encryption key(s)", n))
	}
	if len(parts) == 0 {
		return "empty"
	}
	return strings.Join(parts, ", ")
}

func countKeys(k *resq.Keyring, purpose string) int {
	n := 0
	for _, key := range k.Keys() {
		if key.Purpose == purpose {
			n++
		}
	}
	return n
}
