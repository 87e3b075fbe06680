package isolate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Program is one job program whose reach CheckPrograms checks.
type Program struct {
	Name   string // how the caller names it in messages ("--exec Resize=/usr/local/bin/resize")
	Path   string // the executable (a name without "/" is looked up in $PATH)
	Limits Limits
}

// UsesDedicatedUID reports whether a job with limits l runs under a uid of
// its own here: a process limit without cgroup v2, as root.
func (c Capabilities) UsesDedicatedUID(l Limits) bool {
	return l.Procs > 0 && !c.CgroupV2 && c.DedicatedUIDs
}

// CheckPrograms checks, before a worker takes any job, that every program
// can be started by the uid its jobs will run under. Only a job under a
// dedicated uid (see UsesDedicatedUID) runs as another user than the
// worker; for those it checks, as such a uid, that the program is
// executable (every directory on its path searchable), that a script's
// interpreter is executable and the script readable, and that the worker's
// working directory, where jobs start, can be entered. It probes the host
// (Probe) only when a program has a process limit and this process is root.
func CheckPrograms(progs []Program) error {
	var need []Program
	for _, p := range progs {
		if p.Limits.Procs > 0 && os.Geteuid() == 0 {
			if !strings.Contains(p.Path, "/") {
				lp, err := exec.LookPath(p.Path)
				if err != nil {
					return fmt.Errorf("%s: %w", p.Name, err)
				}
				p.Path = lp
			}
			if abs, err := filepath.Abs(p.Path); err == nil {
				p.Path = abs
			}
			need = append(need, p)
		}
	}
	if len(need) == 0 {
		return nil
	}
	caps := Probe()
	dir, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("the worker's working directory: %w", err)
	}
	return caps.checkPrograms(need, dir)
}

func (c Capabilities) checkPrograms(progs []Program, dir string) error {
	var errs []error
	dirChecked := false
	for _, p := range progs {
		if !c.UsesDedicatedUID(p.Limits) {
			continue
		}
		if !c.Shim {
			return c.Check(p.Limits) // refuses: nothing could start such a job
		}
		checks := []string{"x" + p.Path}
		if interp := interpreter(p.Path); interp != "" {
			checks = append(checks, "r"+p.Path, "x"+interp)
		}
		if !dirChecked {
			checks = append(checks, "d"+dir)
			dirChecked = true
		}
		if err := accessAsDedicatedUID(checks); err != nil {
			errs = append(errs, fmt.Errorf("%s: each job runs under a dedicated uid (a process limit without cgroup v2, as root), and %w", p.Name, err))
		}
	}
	return errors.Join(errs...)
}

// interpreter returns the program named by a script's "#!" line, or "".
func interpreter(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	rest, ok := strings.CutPrefix(line, "#!")
	if !ok {
		return ""
	}
	if fs := strings.Fields(rest); len(fs) > 0 {
		return fs[0]
	}
	return ""
}

// shimAccess is the program name that makes the shim, under its dedicated
// uid, check each argument: "x/path" executable, "r/path" readable, "d/dir"
// a directory it can enter. It prints one reason per failure and exits 1.
const shimAccess = "access"

// accessAsDedicatedUID runs the access checks as a fresh dedicated uid.
func accessAsDedicatedUID(checks []string) error {
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = shimArgv(shimSpec{UID: dedicatedUID()}, shimAccess, append([]string{shimAccess}, checks...))
	cmd.Env = []string{shimEnv + "=1"}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.ExitCode() == 1:
		return errors.New(strings.TrimSpace(string(out)))
	default:
		return fmt.Errorf("the access check could not run (%v): %s", err, bytes.TrimSpace(out))
	}
}

// runAccessChecks is the shim side of accessAsDedicatedUID.
func runAccessChecks(checks []string) int {
	failed := false
	reported := map[string]bool{} // one reason per path
	for _, c := range checks {
		if len(c) < 2 || reported[c[1:]] {
			continue
		}
		kind, path := c[0], c[1:]
		if msg := accessReason(kind, path); msg != "" {
			fmt.Println(msg)
			failed, reported[path] = true, true
		}
	}
	if failed {
		return 1
	}
	return 0
}

// accessReason says, for the running uid, why path cannot be used as kind
// asks and what to do, or "" when it can.
func accessReason(kind byte, path string) string {
	mode, what, fix := uint32(unix.X_OK), "execute", "chmod o+x "+path
	switch kind {
	case 'r':
		mode, what, fix = unix.R_OK, "read the script", "chmod o+r "+path
	case 'd':
		what, fix = "enter the worker's working directory (where jobs start)", "start the worker from a directory every user can enter (cd /, or WorkingDirectory=/ in systemd)"
	}
	err := unix.Faccessat(unix.AT_FDCWD, path, mode, 0)
	if err == nil {
		return ""
	}
	err = fmt.Errorf("%w%s", err, modeOf(path))
	uid := os.Getuid()
	// The first directory on the way that this uid cannot search.
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		if unix.Faccessat(unix.AT_FDCWD, d, unix.X_OK, 0) == nil {
			break
		}
		if kind != 'd' {
			fix = "chmod o+x " + d + " (and every directory above it), or install the program in a directory such as /usr/local/bin"
		}
		err = fmt.Errorf("directory %s%s is not searchable by other users", d, modeOf(d))
		if d == "/" || d == "." {
			break
		}
	}
	return fmt.Sprintf("uid %d cannot %s %s: %v; %s", uid, what, path, err, fix)
}

func modeOf(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf(" (mode %04o)", st.Mode().Perm())
}
