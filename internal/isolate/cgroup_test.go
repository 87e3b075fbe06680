package isolate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCgroupV2Dir(t *testing.T) {
	mountinfo := `22 1 0:21 / /proc rw,nosuid - proc proc rw
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
`
	dir, err := cgroupV2Dir([]byte("4:memory:/x\n0::/system.slice/resq.service\n"), []byte(mountinfo))
	if err != nil || dir != "/sys/fs/cgroup/unified/system.slice/resq.service" {
		t.Fatalf("dir = %q, %v", dir, err)
	}
	if _, err := cgroupV2Dir([]byte("4:memory:/x\n"), []byte(mountinfo)); err == nil {
		t.Fatal("no 0:: line accepted")
	}
	if _, err := cgroupV2Dir([]byte("0::/\n"), []byte("22 1 0:21 / /proc rw - proc proc rw\n")); err == nil {
		t.Fatal("no cgroup2 mount accepted")
	}
	if got := unescapeMount(`/mnt/with\040space`); got != "/mnt/with space" {
		t.Fatalf("unescape = %q", got)
	}
}

// fakeCgroup makes a directory that looks like a delegated cgroup v2.
func fakeCgroup(t *testing.T, controllers string) string {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"cgroup.controllers": controllers, "cgroup.subtree_control": "", "cgroup.procs": "1\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCgroupTreeWritesLimits(t *testing.T) {
	own := fakeCgroup(t, "cpuset cpu io memory pids")
	tree, err := setupCgroupTree(own, 4242)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(own, "cgroup.subtree_control")); got != "+memory +pids" {
		t.Fatalf("own subtree_control = %q", got)
	}
	if tree.dir != filepath.Join(own, "resq-4242") || read(t, filepath.Join(tree.dir, "cgroup.subtree_control")) != "+memory +pids" {
		t.Fatalf("tree %s", tree.dir)
	}
	cg, err := tree.newCgroup("job-1", Limits{Memory: 256 << 20, Procs: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer cg.fd.Close()
	for file, want := range map[string]string{"memory.max": "268435456", "memory.swap.max": "0", "memory.oom.group": "1", "pids.max": "64"} {
		if got := read(t, filepath.Join(cg.dir, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	// What the kernel reports, read back.
	l := Limits{Memory: 256 << 20, Procs: 64, CPUTime: time.Second}
	os.WriteFile(filepath.Join(cg.dir, "cpu.stat"), []byte("usage_usec 1500000\nuser_usec 1000000\n"), 0o644)
	if got := cg.cpu(); got != 1500*time.Millisecond {
		t.Errorf("cpu = %s", got)
	}
	if e := cg.exceeded(l); e != nil {
		t.Errorf("exceeded with no events: %v", e)
	}
	os.WriteFile(filepath.Join(cg.dir, "pids.events"), []byte("max 3\n"), 0o644)
	if e := cg.exceeded(l); e == nil || e.Reason != "process limit (64) reached" {
		t.Errorf("pids.events max 3: %v", e)
	}
	os.WriteFile(filepath.Join(cg.dir, "memory.events"), []byte("low 0\nhigh 0\nmax 9\noom 1\noom_kill 1\n"), 0o644)
	if e := cg.exceeded(l); e == nil || e.Reason != "memory limit 256 MiB exceeded" {
		t.Errorf("memory.events oom_kill 1: %v", e)
	}
	os.WriteFile(filepath.Join(cg.dir, "cgroup.events"), []byte("populated 1\nfrozen 0\n"), 0o644)
	if !cg.populated() {
		t.Error("populated 1 not seen")
	}
}

func TestCgroupTreeRefusals(t *testing.T) {
	if _, err := setupCgroupTree(fakeCgroup(t, "cpu io"), 1); err == nil || !strings.Contains(err.Error(), "the memory controller is not available") {
		t.Fatalf("err = %v", err)
	}
	if _, err := setupCgroupTree(t.TempDir(), 1); err == nil || !strings.Contains(err.Error(), "is not a cgroup v2 directory") {
		t.Fatalf("err = %v", err)
	}
}

func TestCapabilitiesCheckAndDescribe(t *testing.T) {
	l := Limits{Memory: 256 << 20, CPUTime: 2 * time.Second, Procs: 64, Files: 1024}
	plain := Capabilities{CgroupReason: "no cgroup2 file system is mounted", Shim: true}
	if err := plain.Check(l); err == nil || !strings.Contains(err.Error(), "a process limit cannot be enforced here") {
		t.Fatalf("Check without cgroup or root: %v", err)
	}
	if err := plain.Check(Limits{Memory: 256 << 20}); err != nil {
		t.Fatalf("memory needs neither: %v", err)
	}
	root := Capabilities{DedicatedUIDs: true, CgroupReason: "no cgroup2 file system is mounted", Shim: true}
	if err := root.Check(l); err != nil {
		t.Fatal(err)
	}
	want := "rlimits set by a re-exec shim (cgroup v2 not usable: no cgroup2 file system is mounted): memory 256 MiB by RLIMIT_DATA per process; CPU 2s by RLIMIT_CPU per process; processes 64 by RLIMIT_NPROC under a dedicated uid per job; open files 1024 by RLIMIT_NOFILE"
	if got := root.Describe(l); got != want {
		t.Errorf("Describe =\n%s\nwant\n%s", got, want)
	}
	cg := Capabilities{CgroupV2: true, CgroupDir: "/sys/fs/cgroup/w", Shim: true}
	want = "cgroup v2 (/sys/fs/cgroup/w): memory 256 MiB by memory.max; CPU 2s by cpu.stat of the job's tree; processes 64 by pids.max; open files 1024 by RLIMIT_NOFILE"
	if got := cg.Describe(l); got != want {
		t.Errorf("Describe =\n%s\nwant\n%s", got, want)
	}
}

// TestCheckWithoutShimEntry: a program that does not call
// RunShimIfRequested cannot be re-executed as the shim, so every limit is
// refused with an error naming the call, and no limit at all still passes.
func TestCheckWithoutShimEntry(t *testing.T) {
	noShim := Capabilities{DedicatedUIDs: true, CgroupReason: "the program does not call resq.RunShimIfRequested() first in main"}
	for _, l := range []Limits{{Memory: 256 << 20}, {Files: 64}, {CPUTime: time.Second}} {
		if err := noShim.Check(l); err == nil || !strings.Contains(err.Error(), "resq.RunShimIfRequested()") {
			t.Errorf("Check(%v) without the shim entry: %v", l, err)
		}
	}
	if err := noShim.Check(Limits{}); err != nil {
		t.Errorf("no limits need no shim: %v", err)
	}
	if !Probe().Shim {
		t.Error("this test binary calls RunShimIfRequested, but Probe says it does not")
	}
	// As a program without the call sees it (not parallel, so no other test
	// runs meanwhile): the probe starts nothing and every limit is refused.
	shimEntry.Store(false)
	c := Probe()
	shimEntry.Store(true)
	if c.Shim || c.Ptrace || c.CgroupV2 || !strings.Contains(c.CgroupReason, "RunShimIfRequested") {
		t.Errorf("Probe without the shim entry: %+v", c)
	}
	if err := c.Check(Limits{Memory: 256 << 20}); err == nil {
		t.Error("a memory limit passed Check without the shim entry")
	}
}

// TestProbeHere records what this machine offers; it asserts only that the
// probe's answer is consistent.
func TestProbeHere(t *testing.T) {
	c := Probe()
	t.Logf("limits here: %s", c.Describe(Limits{Memory: 1 << 30, Procs: 64}))
	if c.CgroupV2 == (c.CgroupReason != "") {
		t.Fatalf("inconsistent: %+v", c)
	}
	if c.DedicatedUIDs != (os.Geteuid() == 0) {
		t.Fatalf("DedicatedUIDs = %v as uid %d", c.DedicatedUIDs, os.Geteuid())
	}
}
