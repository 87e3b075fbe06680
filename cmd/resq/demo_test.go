package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
)

func TestDemoEmbeddedRedis(t *testing.T) {
	t.Parallel()
	start := time.Now()
	r := runWith([]string{"RESQ_NO_TITLE=1"}, "demo", "--listen", "", "--jobs", "20")
	if r.code != 0 {
		t.Fatalf("demo: %v", r)
	}
	// 20 jobs: 7 ChargeCard (orders 5000..5006: 5000 and 5005 declined),
	// 6 SendWelcomeEmail, 6 ResizeImage, 1 DeleteEverything.
	mustContain(t, "demo output", r.stdout,
		"embedded in-memory Redis at 127.0.0.1:",
		"enqueued 20 sample jobs",
		"processed 20 jobs", "17 done, 2 failed, 1 rejected",
		"rejected DeleteEverything", "Resq::UnknownJobClass",
		"failed   ChargeCard", "CardDeclined",
		"pending      0", "processed    20", "stat_failed  3",
		"REDIS_URL=redis://host:6379/0 resq demo",
		"resq --redis redis://127.0.0.1:6390/0 --namespace resq-demo failed list",
	)
	if n := strings.Count(r.stdout, "  done     "); n != 17 {
		t.Errorf("%d done lines, want 17:\n%s", n, r.stdout)
	}
	if strings.Contains(r.stdout, "example.com") || strings.Contains(r.stdout, "amount_cents") {
		t.Errorf("the demo printed argument values:\n%s", r.stdout)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("demo took %s", d)
	}
}

func TestDemoUsesGivenRedis(t *testing.T) {
	t.Parallel()
	srv := pool.Get(t)
	r := runWith([]string{"REDIS_URL=" + srv.URL(), "RESQ_NO_TITLE=1"}, "demo", "--listen", "", "--jobs", "8", "--json")
	if r.code != 0 {
		t.Fatalf("demo: %v", r)
	}
	var doc struct {
		Redis     string             `json:"redis"`
		Namespace string             `json:"namespace"`
		Embedded  bool               `json:"embedded"`
		Processed int64              `json:"processed"`
		Outcomes  map[string]int     `json:"outcomes"`
		Stats     resq.Stats         `json:"stats"`
		Failures  []resq.FailureView `json:"failures"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("demo --json is not one JSON document: %v\n%s", err, r.stdout)
	}
	if doc.Embedded || doc.Namespace != "resq-demo" || doc.Processed != 8 || doc.Outcomes["rejected"] != 1 ||
		doc.Outcomes["failed"] != 1 || doc.Outcomes["done"] != 6 || len(doc.Failures) != 2 {
		t.Fatalf("demo --json = %+v", doc)
	}
	// The jobs went to the given server, in the demo's own namespace.
	if got := srv.Do(t, "GET", "resq-demo:stat:processed"); got != "8" {
		t.Fatalf("resq-demo:stat:processed = %s", got)
	}
	if got := srv.Do(t, "LLEN", "resq-demo:failed"); got != "2" {
		t.Fatalf("resq-demo:failed length = %s", got)
	}
	if got := srv.Do(t, "EXISTS", "resque:queues"); got != "0" {
		t.Fatalf("the demo touched the default namespace")
	}
	// The CLI sees what the demo left.
	f := &fixture{t: t, srv: srv, ns: "resq-demo", env: []string{"REDIS_URL=" + srv.URL(), "RESQ_NAMESPACE=resq-demo"}}
	out := f.ok("failed", "list")
	mustContain(t, "failed list", out, "ChargeCard", "CardDeclined", "DeleteEverything", "Resq::UnknownJobClass")
}
