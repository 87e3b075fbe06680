package isolate

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Capabilities says which mechanisms can enforce Limits on this host.
type Capabilities struct {
	// CgroupV2 is set when job processes can be put in cgroups of their own
	// under CgroupDir (a delegated cgroup v2 with the memory and pids
	// controllers, checked by starting a process in one).
	CgroupV2  bool
	CgroupDir string
	// CgroupReason says why cgroup v2 is not used, when it is not.
	CgroupReason string
	// DedicatedUIDs is set when the worker runs as root: a job with a
	// process limit then runs under a uid of its own, so that RLIMIT_NPROC
	// (which counts every process of a uid) bounds that job's tree only.
	DedicatedUIDs bool
	// Ptrace is set when rlimits can be set with prlimit(2) on a new
	// program stopped at its exec (ptrace). Otherwise they are set by the
	// limit shim, which costs an exec of this binary per job.
	Ptrace bool
	// PrlimitAnyUID is set when prlimit(2) may change the limits of a
	// process of another uid (CAP_SYS_RESOURCE). Without it a job under a
	// dedicated uid gets its limits from the shim.
	PrlimitAnyUID bool
	// Shim is set when the program calls RunShimIfRequested first in main,
	// so that this binary can be re-executed as the limit shim (which the
	// ptrace and cgroup self-tests also need). Without it no limit can be
	// enforced, and Check refuses every one.
	Shim bool
}

// Mechanism names what enforces limits: "cgroup v2" or "rlimits".
func (c Capabilities) Mechanism() string {
	if c.CgroupV2 {
		return "cgroup v2"
	}
	return "rlimits"
}

// Describe says, for a start-up log line, how each limit that is set is
// enforced.
func (c Capabilities) Describe(l Limits) string {
	var parts []string
	if c.CgroupV2 {
		if l.Memory > 0 {
			parts = append(parts, "memory "+FormatBytes(l.Memory)+" by memory.max")
		}
		if l.CPUTime > 0 {
			parts = append(parts, "CPU "+l.CPUTime.String()+" by cpu.stat of the job's tree")
		}
		if l.Procs > 0 {
			parts = append(parts, "processes "+strconv.Itoa(l.Procs)+" by pids.max")
		}
	} else {
		if l.Memory > 0 {
			parts = append(parts, "memory "+FormatBytes(l.Memory)+" by RLIMIT_DATA per process")
		}
		if l.CPUTime > 0 {
			parts = append(parts, "CPU "+l.CPUTime.String()+" by RLIMIT_CPU per process")
		}
		if l.Procs > 0 {
			parts = append(parts, "processes "+strconv.Itoa(l.Procs)+" by RLIMIT_NPROC under a dedicated uid per job")
		}
	}
	if l.Files > 0 {
		parts = append(parts, "open files "+strconv.Itoa(l.Files)+" by RLIMIT_NOFILE")
	}
	s := c.Mechanism()
	if c.CgroupV2 {
		s += " (" + c.CgroupDir + ")"
	} else {
		switch {
		case c.Ptrace && (c.PrlimitAnyUID || l.Procs == 0 || !c.DedicatedUIDs):
			s += " set by prlimit(2) at exec"
		case c.Ptrace:
			s += " set by prlimit(2) at exec, or by a re-exec shim for jobs under a dedicated uid (no CAP_SYS_RESOURCE)"
		default:
			s += " set by a re-exec shim"
		}
		if c.CgroupReason != "" {
			s += " (cgroup v2 not usable: " + c.CgroupReason + ")"
		}
	}
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, "; ")
	}
	return s
}

// Check says whether l can be enforced here. A process limit needs cgroup v2
// or root: RLIMIT_NPROC alone counts every process of the worker's user, so
// it would not bound the job's own tree.
func (c Capabilities) Check(l Limits) error {
	if err := l.Validate(); err != nil {
		return err
	}
	if !c.Shim && !l.IsZero() {
		return errors.New("limits cannot be enforced: the program does not call resq.RunShimIfRequested() first in main, which lets resq re-execute it as the limit shim; add that call")
	}
	if l.Procs > 0 && !c.CgroupV2 && !c.DedicatedUIDs {
		return fmt.Errorf("a process limit cannot be enforced here: cgroup v2 is not usable (%s) and the worker is not root, so RLIMIT_NPROC would count every process of uid %d, not the job's; run the worker in a delegated cgroup (systemd Delegate=yes) or as root, or drop the process limit", c.CgroupReason, os.Getuid())
	}
	return nil
}

// Probe finds out which mechanisms work on this host. It creates and removes
// a cgroup and starts one short process in it when cgroup v2 looks usable.
func Probe() Capabilities {
	c := Capabilities{DedicatedUIDs: os.Geteuid() == 0, Shim: shimReady()}
	if !c.Shim {
		// Both self-tests start this binary as the shim.
		c.CgroupReason = "the program does not call resq.RunShimIfRequested() first in main"
		return c
	}
	c.Ptrace = ptraceWorks() == nil
	c.PrlimitAnyUID = hasCapability(capSysResource)
	own, err := ownCgroupV2()
	if err != nil {
		c.CgroupReason = err.Error()
		return c
	}
	tree, err := setupCgroupTree(own, os.Getpid())
	if err != nil {
		c.CgroupReason = err.Error()
		return c
	}
	defer tree.close()
	if err := selfTest(tree); err != nil {
		c.CgroupReason = "a process could not be started in a job cgroup: " + err.Error()
		return c
	}
	c.CgroupV2, c.CgroupDir = true, own
	return c
}

// selfTest starts the shim in probe mode inside a fresh job cgroup.
func selfTest(tree *cgroupTree) error {
	cg, err := tree.newCgroup("probe", Limits{Memory: 64 << 20, Procs: 16})
	if err != nil {
		return err
	}
	defer cg.remove()
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = shimArgv(shimSpec{}, shimProbe, []string{shimProbe})
	cmd.Env = []string{shimEnv + "=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.fd.Fd()), Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Sandbox starts job processes under limits with the mechanisms of its
// Capabilities. It is safe for concurrent use. Close it when done: it owns
// the worker's job cgroup.
type Sandbox struct {
	caps  Capabilities
	tree  *cgroupTree // nil without cgroup v2
	seq   atomic.Uint64
	owner string // the owner mark every job process carries (ownerMark)
	// keep is set for a Sandbox from NewSandbox: its jobs are ended by a
	// keeper process if this process dies (keeper.go), started with the
	// first job.
	keep       bool
	keeperMu   sync.Mutex
	keeper     *keeper
	keeperDone bool
	bufs       sync.Pool // *[]byte for copying job output
}

// NewSandbox prepares a Sandbox for caps (from Probe). When the cgroup tree
// cannot be set up after all, it falls back to rlimits and says why in
// Capabilities().
func NewSandbox(caps Capabilities) *Sandbox {
	s := &Sandbox{caps: caps, owner: ownerMark(), keep: true}
	if caps.CgroupV2 {
		tree, err := setupCgroupTree(caps.CgroupDir, os.Getpid())
		if err != nil {
			s.caps.CgroupV2 = false
			s.caps.CgroupReason = err.Error()
		} else {
			s.tree = tree
		}
	}
	return s
}

// Capabilities returns the mechanisms in force.
func (s *Sandbox) Capabilities() Capabilities { return s.caps }

// keeperFor returns the sandbox's keeper, starting it with the first job;
// nil when there is none (a Sandbox not from NewSandbox, a program that
// cannot be re-executed as the shim, a keeper that could not start).
func (s *Sandbox) keeperFor() *keeper {
	if !s.keep {
		return nil
	}
	s.keeperMu.Lock()
	defer s.keeperMu.Unlock()
	if s.keeper == nil && !s.keeperDone {
		s.keeper, _ = startKeeper()
		s.keeperDone = true
	}
	return s.keeper
}

// Close stops the sandbox's keeper and removes its cgroup directory. Every
// job must have ended.
func (s *Sandbox) Close() error {
	s.keeperMu.Lock()
	k := s.keeper
	s.keeper, s.keeperDone = nil, true
	s.keeperMu.Unlock()
	k.close()
	if s.tree != nil {
		return s.tree.close()
	}
	return nil
}

// tree is one started job's process tree and the means to end it.
type tree struct {
	limits Limits
	pgid   int
	uid    int     // dedicated uid, 0 if none
	cg     *cgroup // nil if none
	atExec *Limits // rlimits to set by prlimit(2) at exec, under ptrace
	token  string  // the job's token (jobTokenEnv), "" if none
	keeper *keeper // told of the job while it runs; nil if none
	keepID uint64
}

// prepare fills cmd (Path, Args, SysProcAttr) to start path with argv under
// l: in a cgroup of its own when there is cgroup v2; with rlimits (and a
// dedicated uid for a process limit) otherwise, set by prlimit(2) while the
// new program is stopped at its first instruction (ptrace), or by the limit
// shim where ptrace is not allowed; always in a process group of its own
// and with SIGKILL as parent-death signal. Start it with tree.start.
func (s *Sandbox) prepare(cmd *exec.Cmd, name, path string, argv []string, l Limits) (*tree, error) {
	t := &tree{limits: l, keeper: s.keeperFor()}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	rl := Limits{Files: l.Files} // the rlimits to set
	uid := 0
	if s.tree != nil && (l.Memory > 0 || l.Procs > 0 || l.CPUTime > 0) {
		cg, err := s.tree.newCgroup(name+"-"+strconv.FormatUint(s.seq.Add(1), 10), l)
		if err != nil {
			return nil, err
		}
		t.cg = cg
		attr.UseCgroupFD, attr.CgroupFD = true, int(cg.fd.Fd())
	} else {
		rl.Memory, rl.CPUTime, rl.Procs = l.Memory, l.CPUTime, l.Procs
		if l.Procs > 0 {
			if !s.caps.DedicatedUIDs {
				return nil, s.caps.Check(l)
			}
			uid = dedicatedUID()
			t.uid = uid
		}
	}
	cmd.SysProcAttr = attr
	switch {
	case rl.IsZero() && uid == 0:
		cmd.Path, cmd.Args = path, argv
	case s.caps.Ptrace && (uid == 0 || s.caps.PrlimitAnyUID):
		cmd.Path, cmd.Args = path, argv
		attr.Ptrace = true
		if uid > 0 {
			attr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}
		}
		t.atExec = &rl
	default:
		cmd.Path, cmd.Args = "/proc/self/exe", shimArgv(shimSpec{Limits: rl, UID: uid, Parent: os.Getpid()}, path, argv)
		cmd.Env = append(cmd.Env, shimEnv+"=1")
	}
	return t, nil
}

// start starts cmd, applying the rlimits that wait for the exec.
func (t *tree) start(cmd *exec.Cmd) error {
	if t.atExec == nil {
		if err := cmd.Start(); err != nil {
			return err
		}
		t.started(cmd.Process.Pid)
		return nil
	}
	// The tracer is the thread that forked: ptrace calls must come from it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return err
	}
	t.started(cmd.Process.Pid)
	if err := limitAtExec(cmd.Process.Pid, *t.atExec); err != nil {
		_ = syscall.Kill(-t.pgid, syscall.SIGKILL)
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return fmt.Errorf("setting the job's limits: %w", err)
	}
	return nil
}

// limitAtExec waits for a child started with PTRACE_TRACEME to stop at its
// exec (before the new program runs a single instruction), sets its
// rlimits with prlimit(2), and lets it go.
func limitAtExec(pid int, l Limits) error {
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(pid, &ws, syscall.WALL, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	if !ws.Stopped() || ws.StopSignal() != syscall.SIGTRAP {
		return fmt.Errorf("the program did not stop at exec (wait status %#x)", uint32(ws))
	}
	set := func(res int, cur, max uint64, what string) error {
		if err := unix.Prlimit(pid, res, &unix.Rlimit{Cur: cur, Max: max}, nil); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	var err error
	if l.Memory > 0 {
		err = errors.Join(err, set(unix.RLIMIT_DATA, uint64(l.Memory), uint64(l.Memory), "RLIMIT_DATA"))
	}
	if l.CPUTime > 0 {
		secs := uint64(l.CPUTime.Seconds() + 0.999)
		err = errors.Join(err, set(unix.RLIMIT_CPU, secs, secs+1, "RLIMIT_CPU"))
	}
	if l.Procs > 0 {
		err = errors.Join(err, set(unix.RLIMIT_NPROC, uint64(l.Procs), uint64(l.Procs), "RLIMIT_NPROC"))
	}
	if l.Files > 0 {
		err = errors.Join(err, set(unix.RLIMIT_NOFILE, uint64(l.Files), uint64(l.Files), "RLIMIT_NOFILE"))
	}
	if err != nil {
		return err
	}
	return syscall.PtraceDetach(pid)
}

// capSysResource is CAP_SYS_RESOURCE's bit number.
const capSysResource = 24

// hasCapability reports whether this process has capability bit n in its
// effective set.
func hasCapability(n uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<n) != 0
		}
	}
	return false
}

// ptraceWorks checks that limits can be set at exec here (ptrace may be
// denied by seccomp, Yama or an LSM): it starts this binary, as the limit
// shim's probe, under them.
func ptraceWorks() error {
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = shimArgv(shimSpec{}, shimProbe, []string{shimProbe})
	cmd.Env = []string{shimEnv + "=1"}
	t := &tree{atExec: &Limits{Files: 64}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Ptrace: true}
	if err := t.start(cmd); err != nil {
		return err
	}
	return cmd.Wait()
}

// dedicatedUIDBase and dedicatedUIDs bound the uids given to jobs: above
// the ranges distributions and subordinate-id files hand out, below 2^31 so
// that no tool reads them as negative.
const (
	dedicatedUIDBase = 1 << 30
	dedicatedUIDs    = 1 << 30
)

// dedicatedUID picks a random uid for one job. With 2^30 of them, two jobs
// running at once share one with negligible probability; if they did, they
// would share one process budget, nothing more.
func dedicatedUID() int {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return dedicatedUIDBase + int(binary.LittleEndian.Uint32(b[:])%dedicatedUIDs)
}

func (t *tree) started(pid int) {
	t.pgid = pid
	t.keepID = t.keeper.add(t)
	if t.cg != nil {
		// The directory fd was needed only for the clone.
		t.cg.fd.Close()
		t.cg.fd = nil
	}
}

// signalGroup sends sig to the process group (and to the cgroup's processes
// for SIGTERM, which may have left the group).
func (t *tree) signalGroup(sig syscall.Signal) {
	if t.pgid > 0 {
		_ = syscall.Kill(-t.pgid, sig)
	}
}

// leftovers reports whether processes of the job are still running (after
// its main process was reaped).
func (t *tree) leftovers() bool {
	if t.cg != nil {
		return t.cg.populated()
	}
	return t.pgid > 0 && groupAlive(t.pgid)
}

// kill ends every process of the job: the process group, the cgroup, and
// under a dedicated uid every process of that uid (a process that left the
// group with setsid included).
func (t *tree) kill() {
	if t.pgid > 0 {
		_ = syscall.Kill(-t.pgid, syscall.SIGKILL)
	}
	if t.cg != nil {
		t.cg.kill()
	}
	if t.uid > 0 {
		killUID(t.uid)
	}
}

// release forgets the job at the keeper and removes its cgroup. The job's
// processes are gone (kill).
func (t *tree) release() {
	t.keeper.forget(t.keepID)
	t.keepID = 0
	if t.cg != nil {
		t.cg.remove()
	}
}

// killUID sends SIGKILL to every process of uid. kill(-1, SIGKILL) sent by a
// process running as uid reaches all of them in one atomic sweep of the
// kernel's process list, so a fork bomb cannot outrun it, and a process that
// left the job's process group is caught too. The sender is /bin/sh's kill
// builtin started as uid, or this binary in shim mode where there is no
// /bin/sh. RLIMIT_NPROC does not stop it even when uid is at its limit: the
// check applies the sender's own (the worker's) limit.
func killUID(uid int) {
	var cmd *exec.Cmd
	if _, err := os.Stat("/bin/sh"); err == nil {
		cmd = exec.Command("/bin/sh", "-c", "kill -9 -1")
		cmd.Env = []string{}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL,
			Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}}
	} else {
		cmd = exec.Command("/proc/self/exe")
		cmd.Args = shimArgv(shimSpec{UID: uid, Parent: os.Getpid()}, shimKillAll, []string{shimKillAll})
		cmd.Env = []string{shimEnv + "=1"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	_ = cmd.Run()
}

// shimKillAll is the program name that makes the shim send SIGKILL to every
// process of its (dedicated) uid and exit.
const shimKillAll = "kill-all"
