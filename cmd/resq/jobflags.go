package main

import (
	"flag"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

// jobLimitFlags are resq work's hard limits on --exec job processes and its
// per-class concurrency caps.
type jobLimitFlags struct {
	memory, maxOutput, outputKill int64
	cpu                           time.Duration
	procs, files                  int
	classCaps                     []string
}

func (j *jobLimitFlags) register(fs *flag.FlagSet) {
	newSize(fs, &j.memory, "memory", 0, "memory limit of a job's processes (`SIZE`, e.g. 256MiB; cgroup memory.max, else RLIMIT_DATA per process; default none)")
	newDuration(fs, &j.cpu, "cpu", 0, "CPU-time limit of a job (`D`, at least 1s; cgroup CPU usage of its tree, else RLIMIT_CPU per process; default none)")
	fs.IntVar(&j.procs, "max-procs", 0, "processes and threads a job may run at once (`N`; cgroup pids.max, else RLIMIT_NPROC under a dedicated uid, which needs root; default none)")
	fs.IntVar(&j.files, "max-files", 0, "open files per job process (`N`, RLIMIT_NOFILE; default: the worker's soft limit)")
	newSize(fs, &j.maxOutput, "max-output", resq.DefaultMaxOutput, "bytes of a job's stdout and of its stderr to keep for the failure record (`SIZE`); the rest is discarded")
	newSize(fs, &j.outputKill, "max-output-total", resq.DefaultOutputKill, "kill a job that writes more than `SIZE` to stdout and stderr in total (0: never)")
	fs.Var(stringsValue{&j.classCaps}, "class-concurrency", "at most N jobs of CLASS run at once across all workers on the namespace, given as `CLASS=N` (repeatable); others wait in their queue")
}

// limits checks the flags and returns the process limits and class caps.
func (j *jobLimitFlags) limits() (resq.ChildLimits, map[string]int, error) {
	hard := resq.ChildLimits{Memory: j.memory, CPUTime: j.cpu, Procs: j.procs, Files: j.files}
	if err := hard.Validate(); err != nil {
		return resq.ChildLimits{}, nil, usagef("work", "job limits: %v", err)
	}
	if j.maxOutput < 1 || j.maxOutput > math.MaxInt32 {
		return resq.ChildLimits{}, nil, usagef("work", "--max-output %s is out of range (1 byte to 2GiB)", formatSize(j.maxOutput))
	}
	if j.outputKill < 0 {
		return resq.ChildLimits{}, nil, usagef("work", "--max-output-total must not be negative")
	}
	kill := j.outputKill
	if kill == 0 {
		kill = -1 // never
	}
	caps := map[string]int{}
	for _, c := range j.classCaps {
		class, n, ok := strings.Cut(c, "=")
		v, err := strconv.Atoi(strings.TrimSpace(n))
		class = strings.TrimSpace(class)
		if !ok || class == "" || err != nil || v < 1 {
			return resq.ChildLimits{}, nil, usagef("work", "--class-concurrency %q: want CLASS=N with N at least 1, e.g. --class-concurrency ResizeImage=2", c)
		}
		if _, dup := caps[class]; dup {
			return resq.ChildLimits{}, nil, usagef("work", "--class-concurrency: class %s is given twice", class)
		}
		caps[class] = v
	}
	return resq.ChildLimits{Memory: j.memory, CPUTime: j.cpu, Procs: j.procs, Files: j.files,
		MaxOutput: int(j.maxOutput), OutputKill: kill}, caps, nil
}

// describe is the limits part of the start-up log line.
func (j *jobLimitFlags) describe() string {
	kill := j.outputKill
	if kill == 0 {
		kill = -1 // never
	}
	return resq.ChildLimits{Memory: j.memory, CPUTime: j.cpu, Procs: j.procs, Files: j.files,
		MaxOutput: int(j.maxOutput), OutputKill: kill}.String()
}
