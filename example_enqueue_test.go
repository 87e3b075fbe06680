package resq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"strings"

	"github.com/resq-go/resq"
)

// EnqueueBatch pushes many jobs in one round trip and reports each one:
// a refused job does not stop the others.
func ExampleClient_EnqueueBatch() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	results, err := client.EnqueueBatch(ctx, []resq.EnqueueParams{
		{Queue: "mail", Class: "SendWelcome", Args: []any{SendWelcome{UserID: 1, Email: "ann@example.com"}}},
		{Queue: "mail", Class: "SendWelcome", Args: []any{SendWelcome{UserID: 0}}}, // fails Validate
		{Queue: "mail", Class: "SendWelcome", Args: []any{SendWelcome{UserID: 2, Email: "bob@example.com"}}},
	})
	fmt.Println(err)
	for i, r := range results {
		if r.Err != nil {
			fmt.Println(i, "refused:", errors.Is(r.Err, resq.ErrInvalidArgs))
			continue
		}
		fmt.Println(i, "enqueued to", r.Job.Queue)
	}
	n, _ := resq.NewAdmin(conn).QueueSize(ctx, "mail")
	fmt.Println("queued:", n)
	// Output:
	// enqueue batch: 1 of 3 jobs not enqueued (see the results); the first: enqueue SendWelcome to queue mail: argument 0: resq: invalid job arguments: user_id must be positive
	// 0 enqueued to mail
	// 1 refused: true
	// 2 enqueued to mail
	// queued: 2
}

// EnqueueWith takes what Enqueue does not: here args that are already a JSON
// array, as a relay from another system would have them.
func ExampleClient_EnqueueWith() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	raw := json.RawMessage(`[{"user_id":7,"email":"eve@example.com"}]`)
	e, err := client.EnqueueWith(ctx, resq.EnqueueParams{Queue: "mail", Class: "SendWelcome", RawArgs: raw})
	if err != nil {
		log.Fatal(err)
	}
	jobs, _ := resq.NewAdmin(conn).Peek(ctx, e.Queue, 0, 1)
	fmt.Println(jobs[0].Class, string(jobs[0].Args))
	// Output:
	// SendWelcome [{"user_id":7,"email":"eve@example.com"}]
}

// Every refusal of a payload over a limit matches ErrPayloadLimit, and the
// message names the limit. The worker refuses the same payloads (with a
// Resq::PayloadLimit failure record) when another producer pushes them.
func ExampleErrPayloadLimit() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{Limits: resq.Limits{MaxPayloadBytes: 1024, MaxArgs: 4}})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.Enqueue(ctx, "uploads", "Store", strings.Repeat("x", 2000))
	fmt.Println(errors.Is(err, resq.ErrPayloadLimit), err)
	_, err = client.Enqueue(ctx, "uploads", "Store", 1, 2, 3, 4, 5)
	fmt.Println(errors.Is(err, resq.ErrPayloadLimit), err)
	_, err = client.Enqueue(ctx, "uploads", "Store", "small")
	fmt.Println(err)
	// Output:
	// true enqueue Store to queue uploads: payload is 2.0 KiB, limit 1 KiB
	// true enqueue Store to queue uploads: 5 arguments, limit 4
	// <nil>
}
