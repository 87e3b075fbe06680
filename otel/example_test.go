package resqotel_test

import (
	"context"
	"fmt"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
	resqotel "github.com/resq-go/resq/otel"
)

// A traced enqueue and the traced run of the job: the worker's span
// continues the producer's trace. Replace the span recorder with an
// exporter (OTLP, stdout) in a real program.
func Example() {
	srv, err := redistest.Launch(redistest.Options{}) // a private redis-server for the example
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	cfg := resqotel.Config{TracerProvider: tp}

	conn, err := resq.Open(resq.ConnConfig{URL: srv.URL()})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{Middleware: []resq.EnqueueMiddleware{resqotel.EnqueueMiddleware(cfg)}})
	if err != nil {
		fmt.Println(err)
		return
	}
	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"mail"},
		Middleware: []resq.Middleware{resqotel.Middleware(cfg)}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ran := make(chan struct{})
	w.HandleFunc("SendWelcome", func(ctx context.Context, j *resq.Job) error { close(ran); return nil })

	if _, err := client.Enqueue(context.Background(), "mail", "SendWelcome", map[string]int{"user_id": 42}); err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	<-ran
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	w.Shutdown(sctx)
	cancel()
	<-done

	spans := rec.Ended()
	send, process := spans[0], spans[1]
	fmt.Println(send.Name(), send.SpanKind())
	fmt.Println(process.Name(), process.SpanKind())
	fmt.Println("same trace:", process.SpanContext().TraceID() == send.SpanContext().TraceID())
	fmt.Println("process is send's child:", process.Parent().SpanID() == send.SpanContext().SpanID())
	// Output:
	// send mail producer
	// process mail consumer
	// same trace: true
	// process is send's child: true
}
