package resq_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"time"

	"github.com/resq-go/resq"
)

// exampleConn connects to the test binary's example Redis with a fresh
// namespace (the real program would use its own URL).
func exampleConn() *resq.Conn {
	conn, err := resq.Open(resq.ConnConfig{
		URL:       exampleRedis.URL(),
		Namespace: fmt.Sprintf("example%d", nsCounter.Add(1)),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	return conn
}

// runUntilProcessed runs w until conn's namespace has processed n jobs, then
// stops it as QUIT does (running jobs finish). A real program runs
// w.Run(ctx) until a signal cancels ctx.
func runUntilProcessed(conn *resq.Conn, w *resq.Worker, n int64) {
	ctx := context.Background()
	admin := resq.NewAdmin(conn)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	for st, _ := admin.Stats(ctx); st.Processed < n; st, _ = admin.Stats(ctx) {
		select {
		case err := <-done:
			log.Fatalf("worker stopped early: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := w.Shutdown(ctx); err != nil {
		log.Fatal(err)
	}
	stop()
	<-done
}

type SendWelcome struct {
	UserID int    `json:"user_id"`
	Email  string `json:"email"`
}

func (s SendWelcome) Validate() error {
	if s.UserID <= 0 {
		return errors.New("user_id must be positive")
	}
	return nil
}

// Enqueue a job the way Ruby's Resque.enqueue_to does and run it with a
// typed handler.
func Example() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()

	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err = client.Enqueue(ctx, "mail", "SendWelcome", SendWelcome{UserID: 42, Email: "ann@example.com"}); err != nil {
		fmt.Println("enqueue:", err)
		return
	}

	w, _ := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"mail"}, Concurrency: 2})
	done := make(chan struct{})
	resq.Handle(w, "SendWelcome", func(ctx context.Context, a SendWelcome) error {
		fmt.Println("welcome", a.UserID, a.Email)
		close(done)
		return nil
	})
	runCtx, stop := context.WithCancel(ctx)
	go w.Run(runCtx)
	<-done
	w.Shutdown(ctx) // QUIT: finish running jobs, unregister
	stop()

	st, _ := resq.NewAdmin(conn).Stats(ctx)
	fmt.Println("processed:", st.Processed, "failed:", st.StatFailed)
	// Output:
	// welcome 42 ann@example.com
	// processed: 1 failed: 0
}

// Validate runs before the job is enqueued: invalid arguments never reach Redis.
func ExampleClient_Enqueue_validation() {
	conn := exampleConn()
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.Enqueue(context.Background(), "mail", "SendWelcome", SendWelcome{UserID: 0})
	fmt.Println(errors.Is(err, resq.ErrInvalidArgs))
	fmt.Println(err)
	// Output:
	// true
	// enqueue SendWelcome to queue mail: argument 0: resq: invalid job arguments: user_id must be positive
}

// Middleware is the Go shape of Resque's perform hooks: before_perform can
// skip a job with ErrDontPerform, on_failure sees the error.
func ExampleMiddleware() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	audit := func(next resq.HandlerFunc) resq.HandlerFunc {
		return func(ctx context.Context, j *resq.Job) error {
			if j.Class == "Disabled" {
				return resq.ErrDontPerform // counted as processed, not failed
			}
			err := next(ctx, j)
			if err != nil {
				fmt.Println("on_failure:", j.Class, err)
			}
			return err
		}
	}
	w, _ := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"q"}, Concurrency: 1, Middleware: []resq.Middleware{audit}})
	w.HandleFunc("Disabled", func(ctx context.Context, j *resq.Job) error { panic("never runs") })
	w.HandleFunc("Flaky", func(ctx context.Context, j *resq.Job) error { return errors.New("remote said 503") })
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	client.Enqueue(ctx, "q", "Disabled")
	client.Enqueue(ctx, "q", "Flaky")

	runUntilProcessed(conn, w, 2)
	fs, _ := resq.NewAdmin(conn).Failures(ctx, 0, 10)
	for _, f := range fs {
		fmt.Println("failed:", f.Job.Class, f.Exception, f.Error)
	}
	// Output:
	// on_failure: Flaky remote said 503
	// failed: Flaky Resq::JobError remote said 503
}

// The admin API lists queues, peeks at jobs (with secret fields redacted)
// and retries failures.
func ExampleAdmin() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{})
	if err != nil {
		log.Fatal(err)
	}
	client.Enqueue(ctx, "billing", "Charge", map[string]any{"customer": 7, "card_token": "tok_live_123"})
	client.Enqueue(ctx, "mail", "SendWelcome", SendWelcome{UserID: 1, Email: "a@b.c"})

	admin := resq.NewAdmin(conn)
	qs, _ := admin.Queues(ctx)
	for _, q := range qs {
		fmt.Println(q.Name, q.Size)
	}
	jobs, _ := admin.Peek(ctx, "billing", 0, 1)
	fmt.Println(jobs[0].Class, string(jobs[0].Args))
	// Output:
	// billing 1
	// mail 1
	// Charge [{"card_token":"[REDACTED]","customer":7}]
}
