package isolate

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroup v2 support. A worker that runs in a delegated cgroup v2 (systemd
// Delegate=yes, a container with a private writable cgroup namespace, or
// root on a host booted with the unified hierarchy) puts every job in its
// own cgroup:
//
//	<own cgroup>/resq-<pid>/job-<n>     memory.max, memory.swap.max=0,
//	                                    pids.max; CPU time read from cpu.stat
//
// The process is placed in it at clone time (SysProcAttr.CgroupFD, clone3
// CLONE_INTO_CGROUP), so not even its first instruction runs outside; the
// whole tree is killed with cgroup.kill, and the cgroup is removed after.
//
// cgroup v2 forbids processes in a cgroup whose controllers are handed to
// children ("no internal processes"). When the worker's own cgroup holds only
// the worker, the worker moves itself into <own>/resq-<pid>-worker first, as
// runc and systemd do.

// cgroupControllers are the controllers a job cgroup needs.
var cgroupControllers = []string{"memory", "pids"}

// ownCgroupV2 finds this process's cgroup v2 directory.
func ownCgroupV2() (string, error) {
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	return cgroupV2Dir(cg, mi)
}

// cgroupV2Dir combines /proc/self/cgroup and /proc/self/mountinfo into the
// directory of this process's cgroup v2.
func cgroupV2Dir(procCgroup, mountinfo []byte) (string, error) {
	rel := ""
	found := false
	for _, line := range strings.Split(string(procCgroup), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel, found = p, true
		}
	}
	if !found {
		return "", errors.New("this process is in no cgroup v2 (no 0:: line in /proc/self/cgroup)")
	}
	mount := ""
	sc := bufio.NewScanner(bytes.NewReader(mountinfo))
	for sc.Scan() {
		// id parent major:minor root mountpoint options ... - fstype source superoptions
		f := strings.Fields(sc.Text())
		sep := slices.Index(f, "-")
		if sep < 0 || sep+1 >= len(f) || len(f) < 5 {
			continue
		}
		if f[sep+1] == "cgroup2" && f[3] == "/" {
			mount = unescapeMount(f[4])
			break
		}
	}
	if mount == "" {
		return "", errors.New("no cgroup2 file system is mounted")
	}
	return filepath.Join(mount, filepath.Clean("/"+rel)), nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupTree is resq-<pid> under the worker's delegated cgroup.
type cgroupTree struct {
	dir string
}

// setupCgroupTree prepares <own>/resq-<pid> with the controllers enabled for
// job cgroups under it.
func setupCgroupTree(own string, pid int) (*cgroupTree, error) {
	avail, err := readFields(filepath.Join(own, "cgroup.controllers"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a cgroup v2 directory: %w", own, err)
	}
	for _, c := range cgroupControllers {
		if !slices.Contains(avail, c) {
			return nil, fmt.Errorf("the %s controller is not available in %s (controllers: %q)", c, own, strings.Join(avail, " "))
		}
	}
	if err := enableControllers(own, pid); err != nil {
		return nil, err
	}
	dir := filepath.Join(own, "resq-"+strconv.Itoa(pid))
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cannot create a cgroup under %s: %w", own, err)
	}
	if err := writeFile(filepath.Join(dir, "cgroup.subtree_control"), "+"+strings.Join(cgroupControllers, " +")); err != nil {
		os.Remove(dir)
		return nil, fmt.Errorf("enabling %s in %s: %w", strings.Join(cgroupControllers, ", "), dir, err)
	}
	return &cgroupTree{dir: dir}, nil
}

// enableControllers turns on the job controllers in own's subtree_control,
// moving this process into a leaf first when own holds only this process.
func enableControllers(own string, pid int) error {
	enabled, _ := readFields(filepath.Join(own, "cgroup.subtree_control"))
	missing := false
	for _, c := range cgroupControllers {
		missing = missing || !slices.Contains(enabled, c)
	}
	if !missing {
		return nil
	}
	ctl := "+" + strings.Join(cgroupControllers, " +")
	err := writeFile(filepath.Join(own, "cgroup.subtree_control"), ctl)
	if err == nil {
		return nil
	}
	if !errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("cannot enable %s in %s: %w", strings.Join(cgroupControllers, ", "), own, err)
	}
	procs, _ := readFields(filepath.Join(own, "cgroup.procs"))
	if len(procs) != 1 || procs[0] != strconv.Itoa(pid) {
		return fmt.Errorf("cannot enable controllers in %s: it holds %d processes besides this worker (cgroup v2 allows no processes in a cgroup that delegates controllers)", own, len(procs)-1)
	}
	leaf := filepath.Join(own, "resq-"+strconv.Itoa(pid)+"-worker")
	if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cannot create %s: %w", leaf, err)
	}
	if err := writeFile(filepath.Join(leaf, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
		return fmt.Errorf("cannot move the worker into %s: %w", leaf, err)
	}
	if err := writeFile(filepath.Join(own, "cgroup.subtree_control"), ctl); err != nil {
		return fmt.Errorf("cannot enable %s in %s: %w", strings.Join(cgroupControllers, ", "), own, err)
	}
	return nil
}

// close removes resq-<pid>; job cgroups must be gone.
func (t *cgroupTree) close() error {
	return os.Remove(t.dir)
}

// cgroup is one job's (or one warm child's) cgroup.
type cgroup struct {
	dir string
	fd  *os.File // the directory, for SysProcAttr.CgroupFD
}

// newCgroup creates a cgroup under the tree with limits applied.
func (t *cgroupTree) newCgroup(name string, l Limits) (*cgroup, error) {
	dir := filepath.Join(t.dir, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cgroup %s: %w", dir, err)
	}
	cg := &cgroup{dir: dir}
	fail := func(err error) (*cgroup, error) {
		cg.remove()
		return nil, err
	}
	if l.Memory > 0 {
		if err := writeFile(filepath.Join(dir, "memory.max"), strconv.FormatInt(l.Memory, 10)); err != nil {
			return fail(fmt.Errorf("setting memory.max: %w", err))
		}
		// Without this, a job over memory.max swaps instead of being killed.
		_ = writeFile(filepath.Join(dir, "memory.swap.max"), "0")
		// Kill the whole tree on OOM, not one process of it.
		_ = writeFile(filepath.Join(dir, "memory.oom.group"), "1")
	}
	if l.Procs > 0 {
		if err := writeFile(filepath.Join(dir, "pids.max"), strconv.Itoa(l.Procs)); err != nil {
			return fail(fmt.Errorf("setting pids.max: %w", err))
		}
	}
	f, err := os.Open(dir)
	if err != nil {
		return fail(err)
	}
	cg.fd = f
	return cg, nil
}

// cpu returns the CPU time used by every process that ran in the cgroup.
func (c *cgroup) cpu() time.Duration {
	v := keyedValue(filepath.Join(c.dir, "cpu.stat"), "usage_usec")
	return time.Duration(v) * time.Microsecond
}

// exceeded reports the limit the kernel enforced, from memory.events and
// pids.events.
func (c *cgroup) exceeded(l Limits) *LimitError {
	if l.Memory > 0 && (keyedValue(filepath.Join(c.dir, "memory.events"), "oom_kill") > 0 ||
		keyedValue(filepath.Join(c.dir, "memory.events"), "oom_group_kill") > 0) {
		return memoryReason(l)
	}
	if l.Procs > 0 && keyedValue(filepath.Join(c.dir, "pids.events"), "max") > 0 {
		return procsReason(l)
	}
	return nil
}

// populated reports whether any process is left in the cgroup.
func (c *cgroup) populated() bool {
	return keyedValue(filepath.Join(c.dir, "cgroup.events"), "populated") > 0
}

// kill sends SIGKILL to every process in the cgroup: cgroup.kill (Linux
// 5.14+) does it atomically; older kernels get a loop over cgroup.procs.
func (c *cgroup) kill() {
	if err := writeFile(filepath.Join(c.dir, "cgroup.kill"), "1"); err == nil {
		return
	}
	for range 100 {
		pids, _ := readFields(filepath.Join(c.dir, "cgroup.procs"))
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// remove deletes the cgroup once its processes are gone (killed processes
// take a moment to be reaped).
func (c *cgroup) remove() {
	if c.fd != nil {
		c.fd.Close()
		c.fd = nil
	}
	for i := 0; i < 200; i++ {
		err := os.Remove(c.dir)
		if err == nil || errors.Is(err, os.ErrNotExist) || !errors.Is(err, syscall.EBUSY) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func readFields(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// keyedValue reads "key value" lines (cpu.stat, memory.events) and returns
// key's value, 0 when absent.
func keyedValue(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// writeFile writes a control file. O_CREATE matters only for tests on a
// plain directory: cgroupfs refuses to create files.
func writeFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(s)
	cerr := f.Close()
	if werr != nil {
		return werr
	}
	return cerr
}
