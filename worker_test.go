package resq_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/resq-go/resq"
	"github.com/resq-go/resq/internal/testkit"
)

type greet struct {
	Name string `json:"name"`
}

func TestWorkerRunsTypedHandler(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	w, err := resq.NewWorker(b.conn, resq.WorkerConfig{Queues: []string{"mail"}, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []string
	resq.Handle(w, "Greet", func(ctx context.Context, a greet) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, a.Name)
		return nil
	})
	resq.Handle(w, "Boom", func(ctx context.Context, a []int) error { return errors.New("disk full") })
	for _, n := range []string{"ann", "bob"} {
		if _, err := b.client.Enqueue(ctx, "mail", "Greet", greet{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.client.Enqueue(ctx, "mail", "Boom", 1, 2); err != nil {
		t.Fatal(err)
	}
	b.srv.Do(t, "RPUSH", b.key("queue:mail"), `not json`)
	b.srv.Do(t, "RPUSH", b.key("queue:mail"), `{"class":"Nope","args":[]}`)
	stop := testkit.RunWorker(t, w)
	testkit.Eventually(t, "5 jobs processed", func() bool {
		st, _ := b.admin.Stats(ctx)
		return st.Processed == 5
	})
	stop()
	st, err := b.admin.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Processed != 5 || st.StatFailed != 3 || st.Failed != 3 || st.Workers != 0 {
		t.Fatalf("stats = %+v", st)
	}
	fs, err := b.admin.Failures(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	byExc := map[string]resq.FailureView{}
	for _, f := range fs {
		byExc[f.Exception] = f
	}
	if f := byExc[resq.ExceptionError]; f.Error != "disk full" || f.Queue != "mail" || f.Job.Class != "Boom" {
		t.Errorf("Boom failure = %+v", f)
	}
	if f := byExc[resq.ExceptionInvalidPayload]; !strings.Contains(f.Error, "not JSON") || f.Job.Raw != "not json" {
		t.Errorf("invalid payload failure = %+v", f)
	}
	if f := byExc[resq.ExceptionUnknownClass]; !strings.Contains(f.Error, `"Nope"`) {
		t.Errorf("unknown class failure = %+v", f)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "ann,bob" && strings.Join(got, ",") != "bob,ann" {
		t.Errorf("handled %v", got)
	}
}
