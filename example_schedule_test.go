package resq_test

import (
	"context"
	"fmt"
	"log"

	"github.com/resq-go/resq"
)

// Recurring schedules: a schedule file in resque-scheduler's format for the
// Scheduler, and a persistent schedule set at run time (as Ruby's
// Resque.set_schedule(…, persist: true)), which the master applies without
// a restart.
func ExampleAdmin_SetSchedule() {
	ctx := context.Background()
	conn := exampleConn()
	defer conn.Close()
	static, err := resq.ParseSchedule([]byte(`
clear_cache:
  cron: "0 */2 * * * UTC"
  class: ClearCache
  queue: low
`))
	if err != nil {
		log.Fatal(err)
	}
	admin := resq.NewAdmin(conn)
	err = admin.SetSchedule(ctx, "daily_report", resq.ScheduleConfig{
		Cron: "0 9 * * * UTC", Class: "Report", Queue: "reports", Args: []byte(`["pdf"]`),
	})
	if err != nil {
		log.Fatal(err)
	}
	views, err := admin.Schedules(ctx, static)
	if err != nil {
		log.Fatal(err)
	}
	for _, v := range views {
		fmt.Println(v.Name, v.Source, v.Cron, v.Class, v.Queue, v.Next.UTC().Minute())
	}
	// A Scheduler fires both: resq.NewScheduler(conn, resq.SchedulerConfig{Schedule: static}).
	e, err := admin.EnqueueScheduleNow(ctx, static, "daily_report", nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("enqueued", e.Class, "on", e.Queue)
	admin.RemoveSchedule(ctx, "daily_report")
	// Output:
	// clear_cache static 0 */2 * * * UTC ClearCache low 0
	// daily_report persistent 0 9 * * * UTC Report reports 0
	// enqueued Report on reports
}
