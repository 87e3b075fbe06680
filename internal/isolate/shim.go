package isolate

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The limit shim. Go cannot set rlimits or change credentials in a child
// between fork and exec, and prlimit(2) on a started child races with the
// child's own forks. So a job that needs rlimits is started as this very
// binary (/proc/self/exe) in "shim mode": before main, and before any of the
// program's own code, the shim sets the rlimits on itself, drops to a
// dedicated uid when asked, re-arms the parent-death signal, and execs the
// job's program in place (same pid, same process group, same cgroup).
//
// Shim mode is entered by an explicit call, RunShimIfRequested, that the
// program makes first thing in main (resq.RunShimIfRequested; cmd/resq and
// every test binary that starts jobs do), so that importing the library never
// exits a process. It is selected only by argv[0] == shimArg0 together with
// shimEnv=1, which the Sandbox sets for the child it starts and removes
// before the exec. A program that never makes the call never has this binary
// started as a shim: Probe then reports that no mechanism can set limits
// (Capabilities.Shim is false), and Check refuses limits that would need it.
const (
	shimEnv  = "RESQ_ISOLATE_SHIM"
	shimArg0 = "resq-limit-shim"
	// shimExitCode is the exit status of a shim that could not apply a limit
	// or exec the program; the reason is on stderr.
	shimExitCode = 127
	// shimProbe is the program name that makes the shim exit 0 at once (the
	// capability probe's self-test).
	shimProbe = "probe"
)

// shimEntry records that this program calls RunShimIfRequested, so that it
// may be re-executed as the shim. It is a fact about the program's main, set
// once at start-up, not configuration.
var shimEntry atomic.Bool

// RunShimIfRequested must be called first in main (and in TestMain) of a
// program that runs jobs under limits. When this process was started as the
// limit shim it applies the limits and execs the job's program, and does not
// return (it exits with status 127 and a reason on stderr when it cannot);
// otherwise it returns at once, having noted that the program can serve as
// the shim.
func RunShimIfRequested() {
	shimEntry.Store(true)
	// os.Args: shimArg0, spec, program path, the program's argv...
	if len(os.Args) >= 4 && os.Args[0] == shimArg0 && os.Getenv(shimEnv) == "1" {
		os.Exit(runShim(os.Args[1], os.Args[2], os.Args[3:]))
	}
}

// shimReady reports whether this program calls RunShimIfRequested.
func shimReady() bool { return shimEntry.Load() }

// shimSpec is what the shim applies before exec.
type shimSpec struct {
	Limits
	UID    int // 0: keep the current credentials
	Parent int // the worker's pid: the shim exits if it is gone
}

func (s shimSpec) encode() string {
	return fmt.Sprintf("data=%d,cpu=%d,nproc=%d,nofile=%d,uid=%d,parent=%d",
		s.Memory, int64(s.CPUTime.Seconds()+0.999), s.Procs, s.Files, s.UID, s.Parent)
}

func parseShimSpec(s string) (shimSpec, error) {
	var sp shimSpec
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil || n < 0 {
			return sp, fmt.Errorf("bad limit %q", kv)
		}
		switch k {
		case "data":
			sp.Memory = n
		case "cpu":
			sp.CPUTime = secondsDuration(n)
		case "nproc":
			sp.Procs = int(n)
		case "nofile":
			sp.Files = int(n)
		case "uid":
			sp.UID = int(n)
		case "parent":
			sp.Parent = int(n)
		default:
			return sp, fmt.Errorf("unknown limit %q", k)
		}
	}
	return sp, nil
}

// runShim applies spec and execs path with argv; it returns only on
// failure.
func runShim(spec, path string, argv []string) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "resq: limit shim: "+format+"\n", args...)
		return shimExitCode
	}
	sp, err := parseShimSpec(spec)
	if err != nil {
		return fail("%v", err)
	}
	if path == shimProbe {
		return 0
	}
	set := func(res int, cur, max uint64, what string) error {
		if err := unix.Setrlimit(res, &unix.Rlimit{Cur: cur, Max: max}); err != nil {
			return fmt.Errorf("setting %s: %w", what, err)
		}
		return nil
	}
	if sp.Memory > 0 {
		if err := set(unix.RLIMIT_DATA, uint64(sp.Memory), uint64(sp.Memory), "RLIMIT_DATA"); err != nil {
			return fail("%v", err)
		}
	}
	if sp.CPUTime > 0 {
		// SIGXCPU at the soft limit, SIGKILL one second later for a program
		// that catches SIGXCPU.
		secs := uint64(sp.CPUTime.Seconds())
		if err := set(unix.RLIMIT_CPU, secs, secs+1, "RLIMIT_CPU"); err != nil {
			return fail("%v", err)
		}
	}
	if sp.Procs > 0 {
		if err := set(unix.RLIMIT_NPROC, uint64(sp.Procs), uint64(sp.Procs), "RLIMIT_NPROC"); err != nil {
			return fail("%v", err)
		}
	}
	if sp.Files > 0 {
		if err := set(unix.RLIMIT_NOFILE, uint64(sp.Files), uint64(sp.Files), "RLIMIT_NOFILE"); err != nil {
			return fail("%v", err)
		}
	}
	if sp.UID > 0 {
		// Order matters: groups and gid while still root, then uid.
		if err := syscall.Setgroups(nil); err != nil {
			return fail("dropping supplementary groups: %v", err)
		}
		if err := syscall.Setresgid(sp.UID, sp.UID, sp.UID); err != nil {
			return fail("switching to gid %d: %v", sp.UID, err)
		}
		if err := syscall.Setresuid(sp.UID, sp.UID, sp.UID); err != nil {
			return fail("switching to uid %d: %v", sp.UID, err)
		}
		// A credential change clears the parent-death signal.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
			return fail("parent-death signal: %v", err)
		}
	}
	if path == shimKeeper {
		return runKeeper()
	}
	if path == shimAccess {
		if sp.UID == 0 || os.Getuid() == 0 {
			return fail("the access check needs a dedicated uid")
		}
		return runAccessChecks(argv[1:])
	}
	if path == shimKillAll {
		if sp.UID == 0 || os.Getuid() == 0 || os.Geteuid() == 0 {
			return fail("kill-all needs a dedicated uid") // never kill(-1) as root
		}
		// Every process of this uid but this one.
		_ = syscall.Kill(-1, syscall.SIGKILL)
		return 0
	}
	if sp.Parent > 0 && os.Getppid() != sp.Parent {
		return fail("the worker (pid %d) is gone", sp.Parent)
	}
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, shimEnv+"=") {
			env = append(env, kv)
		}
	}
	err = syscall.Exec(path, argv, env)
	return fail("exec %s: %v", path, err)
}

func secondsDuration(n int64) time.Duration { return time.Duration(n) * time.Second }

// shimArgv returns the argv that starts path with argv under spec.
func shimArgv(sp shimSpec, path string, argv []string) []string {
	return append([]string{shimArg0, sp.encode(), path}, argv...)
}
