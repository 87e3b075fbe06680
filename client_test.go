package resq_test

import (
	"context"
	"errors"
	"strings"
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

// NewClient refuses a config it cannot run, as NewWorker does, instead of
// panicking later or failing every Enqueue.
func TestNewClientRefusesBadConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	for _, c := range []struct {
		name string
		conn *resq.Conn
		cfg  resq.ClientConfig
		want string
	}{
		{"nil conn", nil, resq.ClientConfig{}, "conn is nil"},
		{"nil middleware", b.conn, resq.ClientConfig{Middleware: []resq.EnqueueMiddleware{nil}}, "middleware 0 is nil"},
		{"EncryptAll without a keyring", b.conn, resq.ClientConfig{EncryptAll: true}, "EncryptAll needs a Keyring with an encryption key"},
	} {
		client, err := resq.NewClient(c.conn, c.cfg)
		if err == nil || client != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: client %v, err %v; want an error containing %q", c.name, client, err, c.want)
		}
	}
	if _, err := resq.NewClient(b.conn, resq.ClientConfig{}); err != nil {
		t.Errorf("the zero config: %v", err)
	}
}

// ChildLimits.Validate refuses what Worker.Run would, and String describes
// the limits with the defaults filled in.
func TestChildLimitsValidateAndString(t *testing.T) {
	t.Parallel()
	if err := (resq.ChildLimits{Memory: 1000}).Validate(); err == nil || !strings.Contains(err.Error(), "below 1 MiB") {
		t.Errorf("1000-byte memory limit: %v", err)
	}
	if err := (resq.ChildLimits{Procs: 1}).Validate(); err == nil {
		t.Error("a process limit of 1 passed")
	}
	if err := (resq.ChildLimits{Memory: 256 << 20, Files: 64}).Validate(); err != nil {
		t.Error(err)
	}
	for _, c := range []struct {
		l    resq.ChildLimits
		want string
	}{
		{resq.ChildLimits{}, "none, output kept 64 KiB per stream, killed over 64 MiB written"},
		{resq.ChildLimits{Memory: 256 << 20, CPUTime: 2 * time.Second, MaxOutput: 4 << 10, OutputKill: -1}, "memory 256 MiB, CPU 2s, output kept 4 KiB per stream"},
	} {
		if got := c.l.String(); got != c.want {
			t.Errorf("String = %q, want %q", got, c.want)
		}
	}
}
