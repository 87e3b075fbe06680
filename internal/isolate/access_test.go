package isolate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckProgramsDedicatedUID: a job under a dedicated uid (a process
// limit without cgroup v2, as root) cannot run a program in a 0700
// directory made by mktemp; the check says so, and what to do, before any
// job runs. The same program in a directory others can search passes.
func TestCheckProgramsDedicatedUID(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dedicated uids need root; this check runs as root in CI") // reported, not silent
	}
	caps := Capabilities{DedicatedUIDs: true, Shim: true}
	lim := Limits{Procs: 8}
	private, err := os.MkdirTemp("", "resq-private-") // 0700, as mktemp -d
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(private)
	open, err := os.MkdirTemp("", "resq-open-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(dir, name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hidden := write(private, "job.sh", "#!/bin/sh\necho hi\n")
	visible := write(open, "job.sh", "#!/bin/sh\necho hi\n")
	privInterp := write(private, "interp", "#!/bin/sh\n")
	viaPrivInterp := write(open, "via.sh", "#!"+privInterp+"\n")
	unreadable := write(open, "secret.sh", "#!/bin/sh\necho hi\n")
	if err := os.Chmod(unreadable, 0o711); err != nil {
		t.Fatal(err)
	}

	err = caps.checkPrograms([]Program{{Name: "--exec Job=" + hidden, Path: hidden, Limits: lim}}, "/")
	if err == nil || !strings.Contains(err.Error(), "directory "+private+" (mode 0700) is not searchable") ||
		!strings.Contains(err.Error(), "chmod o+x "+private) || !strings.Contains(err.Error(), "--exec Job=") {
		t.Errorf("program in a 0700 directory: %v", err)
	}
	if err := caps.checkPrograms([]Program{{Name: "ok", Path: visible, Limits: lim}}, "/"); err != nil {
		t.Errorf("program in a 0755 directory: %v", err)
	}
	if err := caps.checkPrograms([]Program{{Name: "via", Path: viaPrivInterp, Limits: lim}}, "/"); err == nil || !strings.Contains(err.Error(), privInterp) {
		t.Errorf("script whose interpreter is in a 0700 directory: %v", err)
	}
	if err := caps.checkPrograms([]Program{{Name: "secret", Path: unreadable, Limits: lim}}, "/"); err == nil || !strings.Contains(err.Error(), "cannot read the script") {
		t.Errorf("script not readable by others: %v", err)
	}
	if err := caps.checkPrograms([]Program{{Name: "ok", Path: visible, Limits: lim}}, private); err == nil || !strings.Contains(err.Error(), "working directory") || !strings.Contains(err.Error(), "cd /") {
		t.Errorf("working directory 0700: %v", err)
	}
	// Not under a dedicated uid: nothing to check.
	if err := caps.checkPrograms([]Program{{Name: "noprocs", Path: hidden}}, private); err != nil {
		t.Errorf("no process limit: %v", err)
	}
	cg := Capabilities{CgroupV2: true, DedicatedUIDs: true, Shim: true}
	if err := cg.checkPrograms([]Program{{Name: "cg", Path: hidden, Limits: lim}}, private); err != nil {
		t.Errorf("cgroup v2 (the worker's uid runs jobs): %v", err)
	}
	t.Log(caps.checkPrograms([]Program{{Name: "--exec Job=" + hidden, Path: hidden, Limits: lim}}, "/"))
}
