package resq_test

import (
	"context"
	"fmt"
	"log"
	"strings"
	"time"

	"github.com/resq-go/resq"
)

// EnqueueActiveJob writes a job exactly as Rails' Resque adapter does, for a
// Rails worker to run as WelcomeJob.perform_now({"user_id" => 7}).
func ExampleClient_EnqueueActiveJob() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	clock := func() time.Time { return time.Date(2024, 1, 15, 10, 23, 45, 123456789, time.UTC) }
	client, err := resq.NewClient(conn, resq.ClientConfig{NowFunc: clock})
	if err != nil {
		log.Fatal(err)
	}
	e, err := client.EnqueueActiveJob(ctx, "mailers", "WelcomeJob", map[string]any{"user_id": 7})
	if err != nil {
		log.Fatal(err)
	}
	jobs, err := resq.NewAdmin(conn).Peek(ctx, "mailers", 0, 1)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(jobs[0].Class)
	fmt.Println(strings.Replace(string(jobs[0].Args), e.ID, "<job_id>", 1))
	// Output:
	// ActiveJob::QueueAdapters::ResqueAdapter::JobWrapper
	// [{"job_class":"WelcomeJob","job_id":"<job_id>","provider_job_id":null,"queue_name":"mailers","priority":null,"arguments":[{"user_id":7,"_aj_symbol_keys":[]}],"executions":0,"exception_executions":{},"locale":"en","timezone":"UTC","enqueued_at":"2024-01-15T10:23:45.123456789Z","scheduled_at":null}]
}
