package resq

import (
	"sort"

	"github.com/resq-go/resq/internal/isolate"
)

// CheckCommands checks, before a worker takes any job, that the program of
// each command (keyed by job class) can be started by the user its jobs
// will run as on this host. Jobs normally run as the worker's own user; but
// with a process limit (ChildLimits.Procs), no usable cgroup v2 and a
// worker running as root, each job runs under a dedicated uid of its own,
// which cannot enter, say, a 0700 directory made by mktemp -d. For those
// it checks, as such a uid, that the program is executable, that a
// script's interpreter is executable and the script readable, and that the
// worker's working directory (where jobs start) can be entered. The error
// names each class and says what to change. resq work runs it at start-up.
func CheckCommands(cmds map[string]Command) error {
	classes := make([]string, 0, len(cmds))
	for class := range cmds {
		classes = append(classes, class)
	}
	sort.Strings(classes)
	progs := make([]isolate.Program, 0, len(cmds))
	for _, class := range classes {
		c := cmds[class]
		progs = append(progs, isolate.Program{Name: "class " + class + " (" + c.Path + ")", Path: c.Path, Limits: c.Limits.isolateLimits()})
	}
	return isolate.CheckPrograms(progs)
}
