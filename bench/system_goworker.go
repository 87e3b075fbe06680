package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/benmanns/goworker"
)

// goworker v0.1.3 keeps its settings in package state, so one process can
// hold one configuration: fine here, every measurement is its own process.
//
// Settings: its flag defaults (interval 5 s between polls of an empty queue,
// namespace "resque:", UseNumber on, as its deprecation warning asks),
// Concurrency = the test's concurrency, Connections = concurrency + 2 (one
// per worker goroutine, the poller and a producer: its default of 2 would
// starve the workers). Its Enqueue sends RPUSH and SADD and flushes without
// reading the replies, so it is not a checked enqueue.
type goworkerSystem struct{ configured bool }

func newGoworker() system { return &goworkerSystem{} }

const (
	goworkerQueue = "bench"
	goworkerClass = "Noop"
)

func (s *goworkerSystem) configure(addr string, concurrency, connections int) {
	if s.configured {
		return
	}
	s.configured = true
	goworker.SetSettings(goworker.WorkerSettings{
		QueuesString:  goworkerQueue,
		IntervalFloat: 5.0,
		Concurrency:   concurrency,
		Connections:   connections,
		URI:           "redis://" + addr + "/",
		Namespace:     "resque:",
		UseNumber:     true,
	})
}

func (s *goworkerSystem) producer(ctx context.Context, addr string, producers int) (enqueueFunc, error) {
	s.configure(addr, 25, producers+1)
	if err := goworker.Init(); err != nil {
		return nil, err
	}
	return func(ctx context.Context, a jobArgs) error {
		return goworker.Enqueue(&goworker.Job{
			Queue:   goworkerQueue,
			Payload: goworker.Payload{Class: goworkerClass, Args: []any{a}},
		})
	}, nil
}

func (s *goworkerSystem) startWorker(ctx context.Context, addr string, concurrency int, done func(jobArgs)) error {
	s.configure(addr, concurrency, concurrency+2)
	goworker.Register(goworkerClass, func(queue string, args ...any) error {
		a, err := goworkerArgs(args)
		if err != nil {
			return err
		}
		done(a)
		return nil
	})
	go func() {
		if err := goworker.Work(); err != nil {
			fatalf("goworker: %v", err)
		}
	}()
	return nil
}

func goworkerArgs(args []any) (jobArgs, error) {
	if len(args) != 1 {
		return jobArgs{}, fmt.Errorf("expected 1 argument, got %d", len(args))
	}
	m, ok := args[0].(map[string]any)
	if !ok {
		return jobArgs{}, fmt.Errorf("argument is %T", args[0])
	}
	var a jobArgs
	for k, dst := range map[string]*int64{"n": &a.N, "t": &a.T} {
		num, ok := m[k].(json.Number)
		if !ok {
			return a, fmt.Errorf("argument %s is %T", k, m[k])
		}
		v, err := num.Int64()
		if err != nil {
			return a, err
		}
		*dst = v
	}
	return a, nil
}

func (s *goworkerSystem) queued(r *resp) (int64, error) {
	return r.int("LLEN", "resque:queue:"+goworkerQueue)
}

// finished: goworker INCRs stat:processed together with deleting its
// worker record after each job.
func (s *goworkerSystem) finished(r *resp, n int) (bool, error) {
	v, err := r.int("GET", "resque:stat:processed")
	return v >= int64(n), err
}
