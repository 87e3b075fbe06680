package isolate

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuTimeOf returns the user+system CPU time pid has used, from
// /proc/<pid>/stat.
func cpuTimeOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is the state (field 3); utime and stime are fields 14, 15.
	if len(fields) < 13 {
		return 0, errors.New("malformed /proc stat")
	}
	ut, err1 := strconv.ParseInt(string(fields[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(fields[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed /proc stat")
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// processState returns the state letter of pid from /proc/<pid>/stat (R,
// S, D, T, Z for a zombie, X for dead…); ok is false when it cannot be read.
func processState(pid int) (state byte, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name is in parentheses and may contain spaces and ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, false
	}
	return b[i+2], true
}

// ProcessesWithEnv returns the pids of live (non-zombie) processes whose
// environment holds the exact entry ("KEY=VALUE"). Processes whose
// environment this process may not read are not seen. It reads every
// process's /proc entry, which is slow (milliseconds per hundred processes):
// it is for sweeps after a kill and for tests, not for every job.
func ProcessesWithEnv(entry string) []int {
	var out []int
	for _, m := range scanEnvs(func(kv []byte) bool { return string(kv) == entry }) {
		out = append(out, m.pid)
	}
	return out
}

// envMatch is a process and the environment entry that matched.
type envMatch struct {
	pid   int
	entry string
}

// processesWithEnvPrefix returns the live processes with an environment
// entry that starts with prefix, and that entry.
func processesWithEnvPrefix(prefix string) []envMatch {
	return scanEnvs(func(kv []byte) bool { return bytes.HasPrefix(kv, []byte(prefix)) })
}

// scanEnvs returns, for each live process other than this one, the first
// environment entry match accepts.
func scanEnvs(match func(kv []byte) bool) []envMatch {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	self := os.Getpid()
	var out []envMatch
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + n + "/environ")
		if err != nil || len(env) == 0 {
			continue // gone, not ours, or a zombie (empty environ)
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if match(kv) {
				out = append(out, envMatch{pid: pid, entry: string(kv)})
				break
			}
		}
	}
	return out
}

// KillProcessesWithEnv sends SIGKILL to every process whose environment
// holds entry, until none is left (processes forked during a sweep are
// caught by the next one) or a second has passed. It returns how many
// processes it killed.
func KillProcessesWithEnv(entry string) int { return killProcessesWithEnvs([]string{entry}) }

// killProcessesWithEnvs is KillProcessesWithEnv for any of several entries,
// in one scan per sweep.
func killProcessesWithEnvs(entries []string) int {
	want := make(map[string]bool, len(entries))
	for _, e := range entries {
		want[e] = true
	}
	killed := map[int]bool{}
	deadline := time.Now().Add(time.Second)
	for {
		ms := scanEnvs(func(kv []byte) bool { return want[string(kv)] })
		if len(ms) == 0 || time.Now().After(deadline) {
			return len(killed)
		}
		for _, m := range ms {
			if syscall.Kill(m.pid, syscall.SIGKILL) == nil {
				killed[m.pid] = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// groupAlive reports whether any process is left in process group pgid.
func groupAlive(pgid int) bool {
	err := syscall.Kill(-pgid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// RSS returns the resident set size of this process, from /proc/self/statm.
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(string(f[1]), 10, 64)
	return pages * int64(os.Getpagesize())
}

// ProcessCPU returns the user+system CPU time pid has used so far (for
// benchmarks that count a worker's children).
func ProcessCPU(pid int) (time.Duration, error) { return cpuTimeOf(pid) }
