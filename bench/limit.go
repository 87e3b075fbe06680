package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// limitSystem names the round-trip limit lines: redis-benchmark (Debian
// redis-tools) pushing with RPUSH from -c C connections, one command per
// round trip per connection, against the bench's own redis-server in the
// same run. It is not a system: the table prints it under the enqueue
// groups, and -json writes it as a measurement with this system name.
const limitSystem = "redis-benchmark"

// limitCommand is the command line of one limit measurement, for the table.
func limitCommand(clients int) string {
	return fmt.Sprintf("redis-benchmark -c %d rpush", clients)
}

var rpsPattern = regexp.MustCompile(`RPUSH: ([0-9.]+) requests per second`)

// measureLimit runs `redis-benchmark -c clients -n jobs -t rpush -q` against
// addr. Without redis-benchmark on PATH it returns a measurement whose Note
// says so (and no rate), so that the run goes on.
func measureLimit(admin *resp, addr string, clients, jobs, rep int) (measurement, error) {
	m := measurement{System: limitSystem, Test: "enqueue", Producers: clients, Jobs: jobs, Rep: rep, Reps: 1}
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		m.Note = "redis-benchmark not found on PATH (Debian: apt-get install redis-tools): no round-trip limit measured"
		return m, nil
	}
	if _, err := admin.do("FLUSHALL"); err != nil {
		return m, err
	}
	host, port, _ := strings.Cut(addr, ":")
	// redis-benchmark waits for ever on a server it cannot reach.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-c", strconv.Itoa(clients), "-n", strconv.Itoa(jobs), "-t", "rpush", "-q")
	cmd.SysProcAttr = childProcAttr()
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	el := time.Since(t0)
	if err != nil {
		return m, fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	// -q prints progress lines separated by \r, then the result line.
	match := rpsPattern.FindAllSubmatch(out, -1)
	if len(match) == 0 {
		return m, fmt.Errorf("%s: no 'RPUSH: N requests per second' in its output:\n%s", strings.Join(cmd.Args, " "), out)
	}
	rps, err := strconv.ParseFloat(string(match[len(match)-1][1]), 64)
	if err != nil || rps <= 0 {
		return m, fmt.Errorf("redis-benchmark printed rate %q", match[len(match)-1][1])
	}
	m.JobsDone, m.JobsPerS, m.Seconds = jobs, rps, el.Seconds()
	return m, nil
}

// limitLine is the line printed under an enqueue group: the limit for that
// group's producer count and resq's ratio to it.
func limitLine(limit measurement, g []measurement) string {
	if limit.Note != "" {
		return "limit: " + limit.Note
	}
	line := fmt.Sprintf("limit: %s %.0f req/s", limitCommand(limit.Producers), limit.JobsPerS)
	if r, ok := find(g, "resq"); ok && limit.JobsPerS > 0 {
		line += fmt.Sprintf("; resq / limit = %.2f×%s", r.JobsPerS/limit.JobsPerS, perRep(r.JobsPerSReps, limit.JobsPerSReps))
	}
	return line
}

// enqueueGoalLines are issue 15's enqueue goals: one producer at ≥ 0.8× the
// one-connection round-trip limit, 8 producers at ≥ 2× the best checked peer.
func enqueueGoalLines(results []measurement, verdict func(bool) string) []string {
	var lines []string
	group := func(p int) (g []measurement, limit *measurement) {
		for i, m := range results {
			if m.Test != "enqueue" || m.Producers != p {
				continue
			}
			if m.System == limitSystem {
				limit = &results[i]
				continue
			}
			g = append(g, m)
		}
		return g, limit
	}
	if g, limit := group(1); len(g) > 0 {
		r, ok := find(g, "resq")
		switch {
		case !ok:
		case limit == nil:
			lines = append(lines, "issue 15: enqueue, 1 producer ≥ 0.8× "+limitCommand(1)+": not measured")
		case limit.Note != "":
			lines = append(lines, "issue 15: enqueue, 1 producer ≥ 0.8× "+limitCommand(1)+": "+limit.Note)
		default:
			x := r.JobsPerS / limit.JobsPerS
			lines = append(lines, fmt.Sprintf("issue 15: enqueue, 1 producer ≥ 0.8× %s (%.0f req/s): resq %.2f× — %s", limitCommand(1), limit.JobsPerS, x, verdict(x >= 0.8)))
		}
	}
	if g, _ := group(8); len(g) > 0 {
		r, okR := find(g, "resq")
		b, okB := bestPeer(g, true)
		if okR && okB {
			x := r.JobsPerS / b.JobsPerS
			lines = append(lines, fmt.Sprintf("issue 15: enqueue, 8 producers ≥ 2× best checked peer (%s): resq %.2f× — %s", b.System, x, verdict(x >= 2)))
		}
	}
	return lines
}
