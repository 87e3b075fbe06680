package isolate

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The keeper ends the jobs of a worker that dies without ending them itself
// (SIGKILL, a crash, the OOM killer). A job's main process has SIGKILL as
// its parent-death signal, but what it started (sleep 60 &) does not: it
// would be handed to init and keep running while the job is retried
// elsewhere. So a Sandbox starts one small process, this binary in shim
// mode, that holds the read end of a pipe from the worker. The worker tells
// it each job's process group, dedicated uid, cgroup and token as the job
// starts, and forgets them when it ends. When the worker dies, the kernel
// closes the pipe; the keeper reads end-of-file, kills every job it still
// knows of (process group, cgroup.kill, every process of the dedicated uid,
// processes carrying the job's token), and exits. A worker that stops
// normally closes the pipe with no job left.
//
// The keeper ignores the signals an operator or a terminal sends a
// worker's process group (INT, TERM, QUIT, HUP), in a process group of its
// own: it lives exactly as long as the worker. What the keeper cannot catch
// (it was killed too, or a process left the group, uid and cgroup and
// cleared its environment) is found at the latest when the next worker on
// the host prunes the dead worker: KillJobsOfDeadOwner.

// shimKeeper is the program name that makes the shim run as the keeper.
const shimKeeper = "keeper"

// keeper is the worker side.
type keeper struct {
	mu   sync.Mutex
	w    *os.File
	cmd  *exec.Cmd
	done chan struct{}
	seq  uint64
	dead bool
}

// startKeeper starts the keeper process; nil when this program cannot be
// re-executed as the shim.
func startKeeper() (*keeper, error) {
	if !shimReady() {
		return nil, nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Args = shimArgv(shimSpec{}, shimKeeper, []string{shimKeeper})
	// The owner mark lets the next worker's prune find a keeper that
	// outlived its worker (it exits on its own at the worker's death).
	cmd.Env = []string{shimEnv + "=1", ownerMark()}
	if p, ok := os.LookupEnv("PATH"); ok {
		cmd.Env = append(cmd.Env, "PATH="+p)
	}
	cmd.Dir = "/"
	cmd.Stdin = r
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start the job keeper: %w", err)
	}
	r.Close()
	k := &keeper{w: w, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(k.done) }()
	return k, nil
}

// add records a started job; it returns the id to forget it by.
func (k *keeper) add(t *tree) uint64 {
	if k == nil {
		return 0
	}
	cg := "-"
	if t.cg != nil {
		cg = t.cg.dir
	}
	tok := t.token
	if tok == "" {
		tok = "-"
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.seq++
	k.send(fmt.Sprintf("+ %d %d %d %s %s\n", k.seq, t.pgid, t.uid, tok, cg))
	return k.seq
}

// forget drops a job that ended (its processes are gone).
func (k *keeper) forget(id uint64) {
	if k == nil || id == 0 {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.send("- " + strconv.FormatUint(id, 10) + "\n")
}

func (k *keeper) send(line string) {
	if k.dead {
		return
	}
	// A line is far below PIPE_BUF: one atomic write.
	if _, err := io.WriteString(k.w, line); err != nil {
		k.dead = true // the keeper is gone; the next worker's prune sweeps
	}
}

// close tells the keeper that the worker stops (no job is left) and waits
// for it to exit.
func (k *keeper) close() {
	if k == nil {
		return
	}
	k.mu.Lock()
	k.w.Close()
	k.dead = true
	k.mu.Unlock()
	select {
	case <-k.done:
	case <-time.After(5 * time.Second):
		_ = k.cmd.Process.Kill()
		<-k.done
	}
}

// keptJob is one job the keeper knows of.
type keptJob struct {
	pgid, uid int
	token, cg string
}

// runKeeper is the keeper process: it reads the worker's lines from stdin
// until end-of-file, then kills what is left.
func runKeeper() int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGPIPE)
	jobs := map[string]keptJob{}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 6 && f[0] == "+":
			pgid, _ := strconv.Atoi(f[2])
			uid, _ := strconv.Atoi(f[3])
			jobs[f[1]] = keptJob{pgid: pgid, uid: uid, token: f[4], cg: f[5]}
		case len(f) == 2 && f[0] == "-":
			delete(jobs, f[1])
		}
	}
	killKept(jobs)
	return 0
}

// killKept ends every process of the jobs.
func killKept(jobs map[string]keptJob) {
	var tokens []string
	for _, j := range jobs {
		if j.pgid > 1 {
			_ = syscall.Kill(-j.pgid, syscall.SIGKILL)
		}
		if j.cg != "-" {
			(&cgroup{dir: j.cg}).kill()
		}
		if j.uid > 0 {
			killUID(j.uid)
		}
		if j.token != "-" {
			tokens = append(tokens, jobTokenEnv+"="+j.token)
		}
	}
	if len(tokens) > 0 {
		killProcessesWithEnvs(tokens)
	}
}

// ownerEnv names the environment variable that marks every job process
// with the worker that started it: "<pid>.<start time>", the start time in
// clock ticks since boot (/proc/<pid>/stat field 22), so that a pid reused
// by another process is not taken for the worker.
const ownerEnv = "RESQ_ISOLATE_OWNER"

// ownerMark returns this process's owner entry.
func ownerMark() string {
	pid := os.Getpid()
	return ownerEnv + "=" + strconv.Itoa(pid) + "." + strconv.FormatUint(startTimeOf(pid), 10)
}

// startTimeOf returns pid's start time in clock ticks since boot; 0 when it
// cannot be read.
func startTimeOf(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); starttime is field 22.
	if len(fields) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(string(fields[19]), 10, 64)
	return n
}

// KillJobsOfDeadOwner kills every process left by the jobs of the worker
// process pid on this host, when that worker is no longer running (a pid
// now used by another process does not count as the worker). Prune calls
// it before it requeues a dead worker's jobs, so that no part of a job is
// still running when it runs again. It finds job processes by the owner
// mark in their environment (readable for other users' processes by root
// only), and returns how many it killed.
func KillJobsOfDeadOwner(pid int) int {
	if pid <= 0 {
		return 0
	}
	prefix := ownerEnv + "=" + strconv.Itoa(pid) + "."
	alive := uint64(0)
	if ProcessAlive(pid) {
		alive = startTimeOf(pid)
	}
	killed := map[int]bool{}
	deadline := time.Now().Add(time.Second)
	for {
		var victims []int
		for _, m := range processesWithEnvPrefix(prefix) {
			start, err := strconv.ParseUint(strings.TrimPrefix(m.entry, prefix), 10, 64)
			if err == nil && alive != 0 && start == alive {
				continue // the worker is alive: its jobs are its own
			}
			victims = append(victims, m.pid)
		}
		if len(victims) == 0 || time.Now().After(deadline) {
			return len(killed)
		}
		for _, p := range victims {
			if syscall.Kill(p, syscall.SIGKILL) == nil {
				killed[p] = true
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
}
