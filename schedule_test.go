package resq_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resq-go/resq"
)

const scheduleYAML = `
clear_cache:
  cron: "0 9 * * * UTC"
  class: ClearCache
  queue: low
  args:
    - all
  description: Clears the cache
heartbeat:
  every: 2s
  class: Heartbeat
  queue: beats
staging_only:
  every: 1h
  class: StagingJob
  queue: low
  rails_env: staging
`

func TestParseScheduleErrors(t *testing.T) {
	t.Parallel()
	s, err := resq.ParseSchedule([]byte(scheduleYAML))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Names(), ","); got != "clear_cache,heartbeat,staging_only" {
		t.Fatalf("names %q", got)
	}
	s, err = resq.ParseSchedule([]byte("good:\n  every: 1m\n  class: A\n  queue: q\nbad:\n  cron: \"61 * * * *\"\n  class: B\n"))
	if !errors.Is(err, resq.ErrInvalidSchedule) || !strings.Contains(err.Error(), `"bad"`) || !strings.Contains(err.Error(), "cron") {
		t.Fatalf("error %v", err)
	}
	if s.Len() != 1 {
		t.Fatalf("good schedules kept: %d", s.Len())
	}
	if _, err := resq.LoadScheduleFile(t.TempDir() + "/missing.yml"); err == nil || !strings.Contains(err.Error(), "missing.yml") {
		t.Fatalf("missing file: %v", err)
	}
}

// Admin's schedule calls: set (stored as Ruby's set_schedule persist: true
// stores it), list (static and persistent, next and last run), enqueue now
// (no tick key, no last run), remove.
func TestAdminSchedules(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	static, err := resq.ParseSchedule([]byte(scheduleYAML))
	if err != nil {
		t.Fatal(err)
	}
	err = b.admin.SetSchedule(ctx, "report", resq.ScheduleConfig{Class: "Report", Queue: "reports", Cron: "0 9 * * *", Args: json.RawMessage(`[1,"x"]`), Description: "daily"})
	if err != nil {
		t.Fatal(err)
	}
	raw := b.srv.Do(t, "HGET", b.key("persistent_schedules"), "report")
	if raw != `{"class":"Report","queue":"reports","cron":"0 9 * * *","args":[1,"x"],"description":"daily"}` {
		t.Fatalf("stored %v", raw)
	}
	if n := b.srv.Do(t, "SISMEMBER", b.key("schedules_changed"), "report"); n != "1" {
		t.Fatalf("schedules_changed: %v", n)
	}
	if err := b.admin.SetSchedule(ctx, "bad", resq.ScheduleConfig{Class: "X", Cron: "* * *"}); !errors.Is(err, resq.ErrInvalidSchedule) {
		t.Fatalf("bad cron: %v", err)
	}
	if err := b.admin.SetScheduleJSON(ctx, "json_one", []byte(`{"every":"5m","class":"J","queue":"q","persist":true}`)); err != nil {
		t.Fatal(err)
	}
	if raw := b.srv.Do(t, "HGET", b.key("persistent_schedules"), "json_one"); raw != `{"every":"5m","class":"J","queue":"q"}` {
		t.Fatalf("persist kept: %v", raw)
	}
	// A persistent schedule overrides the static one of the same name.
	if err := b.admin.SetScheduleJSON(ctx, "heartbeat", []byte(`{"every":"1m","class":"Beat2","queue":"beats"}`)); err != nil {
		t.Fatal(err)
	}
	b.srv.Do(t, "HSET", b.key("persistent_schedules"), "broken", `{"cron":"nope","class":"B"}`)
	b.srv.Do(t, "HSET", b.key("delayed:last_enqueued_at"), "clear_cache", "2024-01-15 10:23:45 +0000")

	views, err := b.admin.Schedules(ctx, static)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]resq.ScheduleView{}
	var names []string
	for _, v := range views {
		byName[v.Name] = v
		names = append(names, v.Name)
	}
	if got := strings.Join(names, ","); got != "broken,clear_cache,heartbeat,json_one,report,staging_only" {
		t.Fatalf("names %s", got)
	}
	cc := byName["clear_cache"]
	if cc.Source != "static" || cc.Class != "ClearCache" || cc.Queue != "low" || cc.Cron != "0 9 * * * UTC" || cc.ArgsSize != len(`["all"]`) || cc.Description != "Clears the cache" {
		t.Fatalf("clear_cache %+v", cc)
	}
	if cc.Next.UTC().Hour() != 9 || !cc.Next.After(time.Now()) || cc.LastRun.Unix() != time.Date(2024, 1, 15, 10, 23, 45, 0, time.UTC).Unix() {
		t.Fatalf("clear_cache times %+v", cc)
	}
	if hb := byName["heartbeat"]; hb.Source != "persistent" || hb.Class != "Beat2" || hb.Every != "1m" {
		t.Fatalf("heartbeat %+v", hb)
	}
	if br := byName["broken"]; br.Problem == "" || br.Source != "persistent" {
		t.Fatalf("broken %+v", br)
	}
	if so := byName["staging_only"]; len(so.Envs) != 1 || so.Envs[0] != "staging" {
		t.Fatalf("staging_only %+v", so)
	}

	// Enqueue now: the job, no tick key, no last run.
	e, err := b.admin.EnqueueScheduleNow(ctx, static, "report", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Class != "Report" || e.Queue != "reports" {
		t.Fatalf("enqueued %+v", e)
	}
	job := b.srv.Do(t, "LPOP", b.key("queue:reports"))
	if !strings.Contains(job, `"class":"Report","args":[1,"x"]`) {
		t.Fatalf("job %s", job)
	}
	if _, err := b.admin.EnqueueScheduleNow(ctx, static, "clear_cache", nil, nil); err != nil {
		t.Fatal(err)
	}
	if n := b.srv.Do(t, "LLEN", b.key("queue:low")); n != "1" {
		t.Fatalf("static enqueue now: %v", n)
	}
	if keys := b.srv.Do(t, "KEYS", b.key("resq:tick:*")); keys != "" {
		t.Fatalf("tick keys written: %v", keys)
	}
	if v := b.srv.Do(t, "HGET", b.key("delayed:last_enqueued_at"), "report"); v != "(nil)" {
		t.Fatalf("last run written: %v", v)
	}
	if _, err := b.admin.EnqueueScheduleNow(ctx, static, "nope", nil, nil); !errors.Is(err, resq.ErrNoSuchSchedule) {
		t.Fatalf("unknown: %v", err)
	}
	if err := b.admin.SetScheduleJSON(ctx, "noqueue", []byte(`{"every":"5m","class":"NoQ"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.admin.EnqueueScheduleNow(ctx, nil, "noqueue", nil, nil); err == nil || !strings.Contains(err.Error(), "no queue") {
		t.Fatalf("no queue: %v", err)
	}
	if e, err := b.admin.EnqueueScheduleNow(ctx, nil, "noqueue", nil, map[string]string{"NoQ": "nq"}); err != nil || e.Queue != "nq" {
		t.Fatalf("class queue: %+v %v", e, err)
	}

	ok, err := b.admin.RemoveSchedule(ctx, "report")
	if err != nil || !ok {
		t.Fatalf("remove: %v %v", ok, err)
	}
	if ok, _ := b.admin.RemoveSchedule(ctx, "report"); ok {
		t.Fatal("removed twice")
	}
	if v := b.srv.Do(t, "HEXISTS", b.key("persistent_schedules"), "report"); v != "0" {
		t.Fatalf("still stored: %v", v)
	}
}
