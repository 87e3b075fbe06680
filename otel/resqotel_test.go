package resqotel_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/redistest"
	resqotel "github.com/resq-go/resq/otel"
)

type secretArg struct {
	Card string `json:"card"`
}

func TestEnqueueAndPerformSpans(t *testing.T) {
	srv := redistest.Start(t)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	cfg := resqotel.Config{TracerProvider: tp}
	conn, err := resq.Open(resq.ConnConfig{URL: srv.URL(), Namespace: "ot"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client, err := resq.NewClient(conn, resq.ClientConfig{Middleware: []resq.EnqueueMiddleware{resqotel.EnqueueMiddleware(cfg)}})
	if err != nil {
		t.Fatal(err)
	}

	// The request that enqueues has its own span: the job's trace joins it.
	ctx, parent := tp.Tracer("test").Start(context.Background(), "HTTP POST /signup")
	okJob, err := client.Enqueue(ctx, "mail", "Charge", secretArg{Card: "4111111111111111"})
	if err != nil {
		t.Fatal(err)
	}
	failJob, err := client.Enqueue(ctx, "mail", "Boom")
	if err != nil {
		t.Fatal(err)
	}
	parent.End()
	// A job from an untraced producer (Ruby, say) gets a root span.
	srv.Do(t, "RPUSH", "ot:queue:mail", `{"class":"Charge","args":[{"card":"x"}]}`)

	w, err := resq.NewWorker(conn, resq.WorkerConfig{Queues: []string{"mail"}, Concurrency: 1,
		Middleware: []resq.Middleware{resqotel.Middleware(cfg)}})
	if err != nil {
		t.Fatal(err)
	}
	inHandler := make(chan trace.SpanContext, 3)
	w.HandleFunc("Charge", func(ctx context.Context, j *resq.Job) error {
		inHandler <- trace.SpanContextFromContext(ctx)
		return nil
	})
	w.HandleFunc("Boom", func(ctx context.Context, j *resq.Job) error { return errors.New("card declined") })
	rctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(rctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for len(sr.Ended()) < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	w.Shutdown(sctx)
	scancel()
	cancel()
	<-done

	spans := sr.Ended()
	byID := map[string][]sdktrace.ReadOnlySpan{}
	var rootProcess []sdktrace.ReadOnlySpan
	for _, s := range spans {
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), "4111") {
				t.Errorf("span %s carries an argument value in %s", s.Name(), a.Key)
			}
		}
		id := attr(s, "messaging.message.id")
		if id == "" && s.Name() == "process mail" {
			rootProcess = append(rootProcess, s)
			continue
		}
		byID[id] = append(byID[id], s)
	}
	if len(spans) != 6 {
		t.Fatalf("%d spans ended, want 6 (parent, 2 sends, 3 processes): %v", len(spans), names(spans))
	}
	for _, j := range []*resq.Enqueued{okJob, failJob} {
		ss := byID[j.ID]
		if len(ss) != 2 {
			t.Fatalf("job %s: spans %v", j.ID, names(ss))
		}
		send, proc := ss[0], ss[1]
		if send.SpanKind() != trace.SpanKindProducer {
			send, proc = proc, send
		}
		if send.Name() != "send mail" || proc.Name() != "process mail" || proc.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("job %s: spans %s (%v), %s (%v)", j.ID, send.Name(), send.SpanKind(), proc.Name(), proc.SpanKind())
		}
		if send.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("send span's parent is not the request's span")
		}
		if proc.Parent().SpanID() != send.SpanContext().SpanID() || proc.SpanContext().TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("process span does not continue the send span")
		}
		if attr(proc, "resq.job.class") != j.Class || attr(proc, "messaging.destination.name") != "mail" || attr(proc, "resq.worker.id") == "" {
			t.Errorf("process span attributes %v", proc.Attributes())
		}
		if j == failJob && (proc.Status().Code != codes.Error || proc.Status().Description != "card declined") {
			t.Errorf("failing job's span status %+v", proc.Status())
		}
		if j == okJob && proc.Status().Code == codes.Error {
			t.Errorf("ok job's span status %+v", proc.Status())
		}
	}
	if len(rootProcess) != 1 || rootProcess[0].Parent().IsValid() {
		t.Errorf("the untraced job's span: %v", names(rootProcess))
	}
	if sc := <-inHandler; !sc.IsValid() {
		t.Error("the handler's ctx holds no span")
	}
}

func TestVetoedEnqueueIsMarked(t *testing.T) {
	srv := redistest.Start(t)
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	conn, err := resq.Open(resq.ConnConfig{URL: srv.URL(), Namespace: "ot"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	veto := func(next resq.EnqueueFunc) resq.EnqueueFunc {
		return func(ctx context.Context, j *resq.Job) error { return resq.ErrDontEnqueue }
	}
	client, err := resq.NewClient(conn, resq.ClientConfig{Middleware: []resq.EnqueueMiddleware{
		resqotel.EnqueueMiddleware(resqotel.Config{TracerProvider: tp}), veto}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Enqueue(context.Background(), "q", "X"); !errors.Is(err, resq.ErrDontEnqueue) {
		t.Fatal(err)
	}
	s := sr.Ended()
	if len(s) != 1 || attr(s[0], "resq.vetoed") != "true" || s[0].Status().Code == codes.Error {
		t.Fatalf("spans %v", names(s))
	}
}

func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, a := range s.Attributes() {
		if a.Key == attribute.Key(key) {
			return a.Value.Emit()
		}
	}
	return ""
}

func names(ss []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name())
	}
	return out
}
