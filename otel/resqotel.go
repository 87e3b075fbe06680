// Package resqotel traces resq jobs with OpenTelemetry, as middleware.
//
// EnqueueMiddleware starts a producer span for every enqueue and carries
// its context to the worker in the job's payload (Job.Metadata, the
// payload's "metadata" field, which Ruby Resque and node-resque ignore);
// Middleware starts the worker's consumer span as that span's child, so a
// trace runs from the request that enqueued a job to the job's end. Spans
// carry the job's id, class, queue and payload size, never argument values.
//
//	tp := sdktrace.NewTracerProvider(…)
//	client, err := resq.NewClient(conn, resq.ClientConfig{
//		Middleware: []resq.EnqueueMiddleware{resqotel.EnqueueMiddleware(resqotel.Config{TracerProvider: tp})},
//	})
//	w, _ := resq.NewWorker(conn, resq.WorkerConfig{
//		Middleware: []resq.Middleware{resqotel.Middleware(resqotel.Config{TracerProvider: tp})},
//	})
//
// It is a module of its own (github.com/resq-go/resq/otel) so that programs
// that do not trace do not depend on OpenTelemetry.
package resqotel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/resq-go/resq"
)

// ScopeName is the instrumentation scope of the spans.
const ScopeName = "github.com/resq-go/resq/otel"

// Config configures the middleware.
type Config struct {
	// TracerProvider makes the tracer. Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// Propagator writes and reads the span context in Job.Metadata. Default
	// propagation.TraceContext{} (W3C "traceparent" and "tracestate").
	Propagator propagation.TextMapPropagator
}

func (c Config) tracer() trace.Tracer {
	tp := c.TracerProvider
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(ScopeName)
}

func (c Config) propagator() propagation.TextMapPropagator {
	if c.Propagator == nil {
		return propagation.TraceContext{}
	}
	return c.Propagator
}

func jobAttrs(job *resq.Job, op string) []attribute.KeyValue {
	a := []attribute.KeyValue{
		attribute.String("messaging.system", "resque"),
		attribute.String("messaging.operation.type", op),
		attribute.String("messaging.destination.name", job.Queue),
		attribute.String("resq.job.class", job.Class),
	}
	if job.ID != "" {
		a = append(a, attribute.String("messaging.message.id", job.ID))
	}
	return a
}

// EnqueueMiddleware starts a "send QUEUE" span (kind producer) around each
// enqueue and writes its context into job.Metadata. A veto
// (resq.ErrDontEnqueue) is marked with "resq.vetoed"; any other error sets
// the span's status.
func EnqueueMiddleware(cfg Config) resq.EnqueueMiddleware {
	tracer, prop := cfg.tracer(), cfg.propagator()
	return func(next resq.EnqueueFunc) resq.EnqueueFunc {
		return func(ctx context.Context, job *resq.Job) error {
			ctx, span := tracer.Start(ctx, "send "+job.Queue,
				trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(jobAttrs(job, "send")...))
			defer span.End()
			if job.Metadata == nil {
				job.Metadata = map[string]string{}
			}
			prop.Inject(ctx, propagation.MapCarrier(job.Metadata))
			err := next(ctx, job)
			switch {
			case errors.Is(err, resq.ErrDontEnqueue):
				span.SetAttributes(attribute.Bool("resq.vetoed", true))
			case err != nil:
				span.SetStatus(codes.Error, err.Error())
			default:
				span.SetAttributes(attribute.Int("messaging.message.body.size", job.PayloadSize()))
			}
			return err
		}
	}
}

// Middleware starts a "process QUEUE" span (kind consumer) around each job,
// the child of the enqueue span whose context the job carries (a root span
// for jobs from Ruby, Node or untraced producers). The handler's ctx holds
// the span. A handler error sets the span's status.
func Middleware(cfg Config) resq.Middleware {
	tracer, prop := cfg.tracer(), cfg.propagator()
	return func(next resq.HandlerFunc) resq.HandlerFunc {
		return func(ctx context.Context, job *resq.Job) error {
			if len(job.Metadata) > 0 {
				ctx = prop.Extract(ctx, propagation.MapCarrier(job.Metadata))
			}
			attrs := append(jobAttrs(job, "process"),
				attribute.String("resq.worker.id", job.WorkerID),
				attribute.Int("messaging.message.body.size", job.PayloadSize()))
			ctx, span := tracer.Start(ctx, "process "+job.Queue,
				trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
			defer span.End()
			err := next(ctx, job)
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			return err
		}
	}
}
