// Package recurring implements resque-scheduler's recurring schedules
// (spec §9.8): the schedule format (cron in rufus-scheduler's dialect,
// every with rufus durations, class, queue, args, description,
// rails_env/env, custom_job_class, parameters, persist) read from a YAML
// file or from persistent_schedules JSON; fire times across time zones and
// daylight saving time; and an Engine that a scheduler loop drives to fire
// each tick exactly once across all schedulers (a tick is a schedule name
// and a scheduled second, fired through a fenced, once-only script in
// internal/wire).
//
// The package knows no Redis commands: the Engine talks to Redis through
// the Backend interface (StoreBackend on a wire.Store).
package recurring
