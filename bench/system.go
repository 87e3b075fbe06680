package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// jobArgs is every job's argument, in each system's own encoding: a sequence
// number and the enqueue time in microseconds since the Unix epoch (exact in
// a float64, which some peers decode numbers into).
type jobArgs struct {
	N int64 `json:"n"`
	T int64 `json:"t"`
}

// enqueueFunc enqueues one job with the system's normal enqueue call and
// returns that call's error. It is safe for concurrent use.
type enqueueFunc func(ctx context.Context, a jobArgs) error

// system is one job library driven through its normal public API.
type system interface {
	// producer prepares a client for `producers` concurrent goroutines.
	producer(ctx context.Context, addr string, producers int) (enqueueFunc, error)
	// startWorker starts a worker with the given concurrency whose handler
	// calls done for every job it runs. It returns at once.
	startWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error
	// queued returns the number of jobs waiting in the bench queue.
	queued(r *resp) (int64, error)
	// finished reports whether the system's own bookkeeping in Redis shows
	// n jobs completed (acknowledged, counted), using at most one command.
	finished(r *resp, n int) (bool, error)
}

// systemInfo describes a system for the plan, the table and the docs.
type systemInfo struct {
	name string
	new  func() system
	// checked: the enqueue call reads Redis's reply and returns its error.
	checked bool
	// tests the system takes part in.
	tests []string
	// mode of resq's job isolation ("" for peers).
	mode string
	// peer is true for the libraries resq is compared with.
	peer bool
	// noBacklog: the scheduler test measures lateness only.
	noBacklog bool
}

// systems are all known systems. resq's isolation modes are separate
// systems so that each is measured in its own process:
//
//	resq        in-process handlers (resq.Handle)
//	resq-exec   every job runs /bin/true (resq.Worker.HandleCommand, the
//	            --exec mode): fork+exec cost, process test only
//	resq-poll   resq with DisableBlockingPickup (polling only, backing off
//	            from 2 ms to PollInterval): latency test only, to show what
//	            the blocking pickup buys
//	resq-batch  resq's producer with Client.EnqueueBatch: each producer
//	            goroutine hands jobs to a buffer that is pushed, every reply
//	            checked, in pipelines of 100 (and after 2 ms of quiet);
//	            enqueue test only
//	resq-warm   the handler runs in the slot's warm child process
//	            (HandlerOptions.Isolation = resq.ChildProcess, MaxJobs
//	            1,000,000 so no recycling is measured): one child per slot,
//	            each job a round trip over the slot's pipe. The child is this
//	            binary re-executed with RESQ_* variables removed; main sends
//	            it to serveWarmChild. Jobs are counted with OnJobDoneFunc as
//	            resq-exec does. Process test only.
//	resq-plain  the worker logs in as a Redis user without @scripting
//	            (ACL SETUSER … -@scripting), so it runs on plain commands:
//	            fetches through its pickup lists with LMOVE + MULTI, acks
//	            without a fetch. Process test only.
//	resq-nohold resq with WorkerConfig.DisableHoldAhead: every slot waits
//	            for its ack's round trip between two jobs (the engine before
//	            jobs were held ahead, decisions §31). Process test only.
//	resq-sched-poll
//	            the scheduler as a polling one: SchedulerConfig.Poll 5 s
//	            (resque-scheduler's poll interval) and delayed jobs written
//	            as Ruby's Resque.enqueue_at writes them (RPUSH, SADD, ZADD:
//	            no wake announcement; resq has no option to turn its
//	            producers' wake off). The scheduler still re-reads the
//	            schedule at every lock refresh (2 s) and then sleeps until
//	            the earliest due second it read. Scheduler lateness only.
var systems = []systemInfo{
	{name: "resq", new: newResq, checked: true, tests: []string{"enqueue", "process", "latency", "scheduler"}, mode: "in-process"},
	{name: "resq-exec", new: newResqExec, checked: true, tests: []string{"process"}, mode: "exec"},
	{name: "resq-warm", new: newResqWarm, checked: true, tests: []string{"process"}, mode: "warm child"},
	{name: "resq-plain", new: newResqPlain, checked: true, tests: []string{"process"}, mode: "no Lua"},
	{name: "resq-batch", new: newResqBatch, checked: true, tests: []string{"enqueue"}, mode: "batch of 100"},
	{name: "resq-nohold", new: newResqNoHold, checked: true, tests: []string{"process"}, mode: "in-process, no hold ahead"},
	{name: "resq-poll", new: newResqPoll, checked: true, tests: []string{"latency"}, mode: "in-process, polling"},
	{name: "resq-sched-poll", new: newResqSchedPoll, checked: true, tests: []string{"scheduler"}, mode: "scheduler polling 5 s", noBacklog: true},
	{name: "goworker", new: newGoworker, checked: false, tests: []string{"enqueue", "process", "latency"}, peer: true},
	{name: "asynq", new: newAsynq, checked: true, tests: []string{"enqueue", "process", "latency", "scheduler"}, peer: true},
	{name: "gocraft", new: newGocraft, checked: true, tests: []string{"enqueue", "process", "latency", "scheduler"}, peer: true},
}

func lookupSystem(name string) (systemInfo, error) {
	for _, s := range systems {
		if s.name == name {
			return s, nil
		}
	}
	names := make([]string, len(systems))
	for i, s := range systems {
		names[i] = s.name
	}
	sort.Strings(names)
	return systemInfo{}, fmt.Errorf("unknown system %q (known: %s)", name, strings.Join(names, ", "))
}

func (s systemInfo) runs(test string) bool {
	for _, t := range s.tests {
		if t == test {
			return true
		}
	}
	return false
}
