package wire

// SchedulerMasterLock is resque-scheduler's master lock key (spec §9.9).
// STUB for the recurring-schedules branch: the delayed-jobs branch defines
// the real method in delayed.go; delete this file at merge.
//
// resque-scheduler builds the key string as
// "#{Resque.redis.namespace}:#{prefix + ':' if prefix}resque_scheduler_master_lock"
// (lib/resque/scheduler/locking.rb, master_lock_key) and then uses it through
// the namespaced client, so the namespace appears twice:
// resque:resque:resque_scheduler_master_lock, and with prefix "MyApp"
// resque:resque:MyApp:resque_scheduler_master_lock; under namespace
// "resque:GitHub" it is resque:GitHub:resque:GitHub:resque_scheduler_master_lock.
func (k Keys) SchedulerMasterLock(prefix string) string {
	if prefix != "" {
		prefix += ":"
	}
	return k.ns + k.ns + prefix + "resque_scheduler_master_lock"
}
