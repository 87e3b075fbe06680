package resq_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"sync/atomic"

	"github.com/resq-go/resq"
)

// The admin API reads and manages the failed list the way resque-web does:
// list the failures, retry one (the record stays, marked retried, and the job
// goes back to its queue), clear the retried ones.
func ExampleAdmin_RetryFailure() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	client.Enqueue(ctx, "sync", "Pull", "inventory")

	var calls atomic.Int32
	newWorker := func() *resq.Worker {
		w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"sync"}, Concurrency: 1})
		if err != nil {
			log.Fatal(err)
		}
		resq.Handle(w, "Pull", func(ctx context.Context, a []string) error {
			if calls.Add(1) == 1 {
				return errors.New("upstream timed out")
			}
			fmt.Println("pulled", a[0])
			return nil
		})
		return w
	}
	runUntilProcessed(conn, newWorker(), 1)

	admin := resq.NewAdmin(conn)
	fs, _ := admin.Failures(ctx, 0, 10)
	for _, f := range fs {
		fmt.Println(f.Index, f.Job.Class, f.Queue, f.Exception, f.Error)
	}
	queue, err := admin.RetryFailure(ctx, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("retried onto", queue)
	runUntilProcessed(conn, newWorker(), 2)

	fs, _ = admin.Failures(ctx, 0, 10)
	fmt.Println("marked retried:", fs[0].RetriedAt != "")
	n, _ := admin.ClearRetriedFailures(ctx)
	left, _ := admin.FailureCount(ctx)
	fmt.Println("cleared:", n, "left:", left)
	// Output:
	// 0 Pull sync Resq::JobError upstream timed out
	// retried onto sync
	// pulled inventory
	// marked retried: true
	// cleared: 1 left: 0
}
