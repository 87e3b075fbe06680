package main

import (
	"os"
	"syscall"
)

// The signals resq work and resq demo handle. This file is the only one in
// the command that names package syscall, and only for signal constants.
const (
	sigQuit = syscall.SIGQUIT // finish running jobs, then exit 0
	sigTerm = syscall.SIGTERM // fast stop: running jobs are requeued
	sigUSR2 = syscall.SIGUSR2 // pause fetching
	sigCont = syscall.SIGCONT // resume fetching
)

// workerSignals are the signals resq work subscribes to.
func workerSignals() []os.Signal {
	return []os.Signal{sigQuit, sigTerm, os.Interrupt, sigUSR2, sigCont}
}

// stopSignals are the signals that stop resq demo.
func stopSignals() []os.Signal { return []os.Signal{sigTerm, os.Interrupt} }

func isFastStop(s os.Signal) bool { return s == sigTerm || s == os.Interrupt }
