package resq_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/resq-go/resq"
)

type Resize struct {
	Image string `json:"image"`
	Width int    `json:"width"`
}

// A typed handler receives the job's single argument object decoded strictly
// into its type; a slice type receives the whole args array. A job whose
// args do not fit the type fails with Resq::InvalidArguments and never runs.
func ExampleHandle() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	client.Enqueue(ctx, "images", "Resize", Resize{Image: "cat.png", Width: 640})
	client.Enqueue(ctx, "images", "Resize", map[string]any{"image": "dog.png", "width": "wide"})
	client.Enqueue(ctx, "images", "Sum", 1, 2, 3)

	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"images"}, Concurrency: 1})
	if err != nil {
		log.Fatal(err)
	}
	resq.Handle(w, "Resize", func(ctx context.Context, a Resize) error {
		fmt.Println("resize", a.Image, "to", a.Width)
		return nil
	})
	resq.Handle(w, "Sum", func(ctx context.Context, a []int) error {
		fmt.Println("sum", a[0]+a[1]+a[2])
		return nil
	})
	runUntilProcessed(conn, w, 3)
	fs, _ := resq.NewAdmin(conn).Failures(ctx, 0, 10)
	for _, f := range fs {
		fmt.Println("failed:", f.Job.Class, f.Exception)
	}
	// Output:
	// resize cat.png to 640
	// sum 6
	// failed: Resize Resq::InvalidArguments
}

// A handler that may hang or run away runs in a warm child process: the
// worker's own binary, re-executed in child mode (this test binary's init
// registers the same handlers and reaches Run, as a program's main must). A
// child that outlives its timeout is killed with its process tree; the
// worker carries on. Call resq.RunShimIfRequested first in main when the
// handler also has ChildLimits (memory, CPU, processes, files).
func ExampleHandlerOptions_childProcess() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"risky"}, Concurrency: 1})
	if err != nil {
		log.Fatal(err)
	}
	// Pid fails with the pid of the process that ran it; Spin never returns.
	registerChildHandlers(w, resq.HandlerOptions{Isolation: resq.ChildProcess, Timeout: time.Second,
		Limits: resq.ChildLimits{KillGrace: 100 * time.Millisecond}})
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	client.Enqueue(ctx, "risky", "Pid")
	client.Enqueue(ctx, "risky", "Spin")
	runUntilProcessed(conn, w, 2)

	fs, _ := resq.NewAdmin(conn).Failures(ctx, 0, 10)
	for _, f := range fs {
		switch f.Job.Class {
		case "Pid":
			pid, _ := strconv.Atoi(f.Error)
			fmt.Println("Pid ran in another process:", pid > 0 && pid != os.Getpid())
		case "Spin":
			fmt.Println("Spin:", f.Exception)
		}
	}
	// Output:
	// Pid ran in another process: true
	// Spin: Resq::Timeout
}
