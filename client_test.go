package resq_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

// EnqueueBatch pushes valid jobs in one pipeline, reports each refusal, and
// reports every job as not enqueued when Redis is away.
func TestEnqueueBatch(t *testing.T) {
	t.Parallel()
	b := setupPrivate(t)
	ctx := context.Background()
	c := testkit.Client(t, b.conn, resq.ClientConfig{Middleware: []resq.EnqueueMiddleware{
		func(next resq.EnqueueFunc) resq.EnqueueFunc {
			return func(ctx context.Context, j *resq.Job) error {
				if j.Class == "Vetoed" {
					return resq.ErrDontEnqueue
				}
				return next(ctx, j)
			}
		},
	}})
	res, err := c.EnqueueBatch(ctx, []resq.EnqueueParams{
		{Queue: "a", Class: "One", Args: []any{1}},
		{Queue: "b", Class: "Mail", Args: []any{validated{Email: "nope"}}},
		{Queue: "a", Class: "Vetoed"},
		{Queue: "b", Class: "Two", Args: []any{"x"}},
	})
	if err == nil || len(res) != 4 {
		t.Fatalf("EnqueueBatch = %v, %v", res, err)
	}
	if res[0].Err != nil || res[0].Job == nil || res[3].Err != nil || res[3].Job == nil {
		t.Fatalf("valid jobs: %+v %+v", res[0], res[3])
	}
	if !errors.Is(res[1].Err, resq.ErrInvalidArgs) || !errors.Is(res[2].Err, resq.ErrDontEnqueue) {
		t.Fatalf("refusals: %v / %v", res[1].Err, res[2].Err)
	}
	qs, _ := b.admin.Queues(ctx)
	if len(qs) != 2 || qs[0].Size != 1 || qs[1].Size != 1 {
		t.Fatalf("queues = %+v", qs)
	}
	jobs, _ := b.admin.Peek(ctx, "b", 0, 5)
	if len(jobs) != 1 || jobs[0].ID != res[3].Job.ID {
		t.Fatalf("queue b = %+v", jobs)
	}

	b.srv.Kill(t)
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	res, err = c.EnqueueBatch(tctx, []resq.EnqueueParams{{Queue: "a", Class: "One"}, {Queue: "a", Class: "Two"}})
	if err == nil || res[0].Err == nil || res[1].Err == nil || res[0].Job != nil {
		t.Fatalf("with Redis down: %+v, %v", res, err)
	}
}
