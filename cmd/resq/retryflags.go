package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

// retryFlagHelp is the --retry flag's usage line.
const retryFlagHelp = "retry failed jobs of CLASS (or * for every class) by `CLASS=POLICY`, e.g. " +
	"'Mailer=limit:5,backoff:exponential,base:10s,max:1h,jitter:0.2' or '*=limit:3,delays:10s;1m;10m' (repeatable; see resq help work)"

// parseRetryFlags turns --retry CLASS=POLICY flags into a RetryConfig.
// POLICY is comma-separated KEY:VALUE items:
//
//	limit:N|forever   retries after the first run (default 1, as resque-retry; 6 with backoff:resque)
//	delay:D           constant wait before each retry (default 0: at once)
//	delays:D;D;…      wait before retry 1, 2, …; the last repeats (resque-retry's backoff_strategy)
//	backoff:constant|exponential|resque
//	base:D, max:D     exponential: base×2ⁿ, capped at max (base default 1s)
//	jitter:F          spread each wait by ±F (0 to 1)
//	fatal-exit:N;N    exit codes of the --exec program that are never retried
//	retry-exit:N;N    only these exit codes are retried
//	expire:D          the attempt counter expires D after the longest wait
func parseRetryFlags(flags []string) (resq.RetryConfig, error) {
	var cfg resq.RetryConfig
	for _, f := range flags {
		class, spec, ok := strings.Cut(f, "=")
		class = strings.TrimSpace(class)
		if !ok || class == "" || strings.TrimSpace(spec) == "" {
			return cfg, usagef("work", "--retry %q: want CLASS=POLICY, e.g. --retry 'Mailer=limit:5,delay:30s' or --retry '*=limit:3' for every class", f)
		}
		p, err := parseRetryPolicy(spec)
		if err != nil {
			return cfg, usagef("work", "--retry %s: %v", f, err)
		}
		if class == "*" {
			if cfg.Default != nil {
				return cfg, usagef("work", "--retry: the default policy (*) is given twice; keep one")
			}
			cfg.Default = &p
			continue
		}
		if _, dup := cfg.Classes[class]; dup {
			return cfg, usagef("work", "--retry: class %s is given twice; keep one policy per class", class)
		}
		if cfg.Classes == nil {
			cfg.Classes = map[string]resq.RetryPolicy{}
		}
		cfg.Classes[class] = p
	}
	return cfg, nil
}

func parseRetryPolicy(spec string) (resq.RetryPolicy, error) {
	p := resq.RetryPolicy{Limit: 1}
	limitSet := false
	backoff := ""
	seen := map[string]bool{}
	for _, item := range strings.Split(spec, ",") {
		key, val, ok := strings.Cut(strings.TrimSpace(item), ":")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || val == "" {
			return p, fmt.Errorf("%q: want KEY:VALUE (keys: limit, delay, delays, backoff, base, max, jitter, fatal-exit, retry-exit, expire)", item)
		}
		if seen[key] {
			return p, fmt.Errorf("%s is given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "limit":
			limitSet = true
			if val == "forever" {
				p.Limit = -1
				break
			}
			p.Limit, err = strconv.Atoi(val)
			if err != nil || p.Limit < 0 {
				return p, fmt.Errorf("limit:%s: want a number of retries (0 or more) or forever", val)
			}
		case "delay":
			var d time.Duration
			if d, err = retryDuration(key, val); err != nil {
				return p, err
			}
			p.Backoff.Delays = []time.Duration{d}
		case "delays":
			for _, v := range strings.Split(val, ";") {
				d, err := retryDuration(key, strings.TrimSpace(v))
				if err != nil {
					return p, err
				}
				p.Backoff.Delays = append(p.Backoff.Delays, d)
			}
		case "backoff":
			switch val {
			case "constant", "exponential", "resque":
				backoff = val
			default:
				return p, fmt.Errorf("backoff:%s: want constant, exponential or resque (resque-retry's 0, 1m, 10m, 1h, 3h, 6h)", val)
			}
		case "base":
			if p.Backoff.Base, err = retryDuration(key, val); err != nil {
				return p, err
			}
		case "max":
			if p.Backoff.Max, err = retryDuration(key, val); err != nil {
				return p, err
			}
		case "jitter":
			p.Backoff.Jitter, err = strconv.ParseFloat(val, 64)
			if err != nil || p.Backoff.Jitter < 0 || p.Backoff.Jitter > 1 {
				return p, fmt.Errorf("jitter:%s: want a fraction from 0 to 1 (0.2 spreads each wait by ±20%%)", val)
			}
		case "fatal-exit", "retry-exit":
			codes, err := exitCodes(key, val)
			if err != nil {
				return p, err
			}
			if key == "fatal-exit" {
				p.FatalExitCodes = codes
			} else {
				p.RetryExitCodes = codes
			}
		case "expire":
			if p.ExpireKeyAfter, err = retryDuration(key, val); err != nil {
				return p, err
			}
		default:
			return p, fmt.Errorf("unknown key %q (keys: limit, delay, delays, backoff, base, max, jitter, fatal-exit, retry-exit, expire)", key)
		}
	}
	hasList := seen["delay"] || seen["delays"]
	switch backoff {
	case "exponential":
		if hasList {
			return p, fmt.Errorf("backoff:exponential takes base and max, not delay/delays")
		}
		if p.Backoff.Base == 0 {
			p.Backoff.Base = time.Second
		}
	case "resque":
		if hasList || seen["base"] || seen["max"] {
			return p, fmt.Errorf("backoff:resque has its own delays; drop delay, delays, base and max")
		}
		p.Backoff.Delays = resq.ResqueBackoff().Delays
		if !limitSet {
			p.Limit = len(p.Backoff.Delays)
		}
	default:
		if seen["base"] || seen["max"] {
			return p, fmt.Errorf("base and max need backoff:exponential")
		}
		if backoff == "constant" && seen["delays"] {
			return p, fmt.Errorf("backoff:constant takes one delay:D, not delays")
		}
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}

func retryDuration(key, val string) (time.Duration, error) {
	d, err := parseDuration(val)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s:%s: want a duration such as 30s, 10m or 1h", key, val)
	}
	return d, nil
}

func exitCodes(key, val string) ([]int, error) {
	var out []int
	for _, v := range strings.Split(val, ";") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 1 || n > 255 {
			return nil, fmt.Errorf("%s:%s: want exit codes from 1 to 255 separated by ';', e.g. %s:2;3", key, val, key)
		}
		out = append(out, n)
	}
	return out, nil
}
