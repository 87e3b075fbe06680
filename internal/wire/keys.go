package wire

import (
	"strconv"
	"strings"
)

// DefaultNamespace is Resque's default key prefix.
const DefaultNamespace = "resque"

// Keys builds Redis key names under one namespace. The zero value is not
// usable; use NewKeys.
type Keys struct {
	ns string // namespace followed by ":"
}

// NewKeys returns the key builder for namespace ns ("resque" when empty).
// A namespace may contain colons ("resque:GitHub").
func NewKeys(ns string) Keys {
	ns = strings.TrimSuffix(ns, ":")
	if ns == "" {
		ns = DefaultNamespace
	}
	return Keys{ns: ns + ":"}
}

// Namespace returns the namespace without the trailing colon.
func (k Keys) Namespace() string { return strings.TrimSuffix(k.ns, ":") }

// Key returns the full key for a relative key name.
func (k Keys) Key(rel string) string { return k.ns + rel }

// Strip removes the namespace prefix from a full key name.
func (k Keys) Strip(full string) string { return strings.TrimPrefix(full, k.ns) }

func (k Keys) Queues() string                   { return k.ns + "queues" }
func (k Keys) Queue(q string) string            { return k.ns + "queue:" + q }
func (k Keys) Workers() string                  { return k.ns + "workers" }
func (k Keys) Worker(id string) string          { return k.ns + "worker:" + id }
func (k Keys) WorkerStarted(id string) string   { return k.ns + "worker:" + id + ":started" }
func (k Keys) Heartbeats() string               { return k.ns + "workers:heartbeat" }
func (k Keys) PruneLock() string                { return k.ns + "pruning_dead_workers_in_progress" }
func (k Keys) StatProcessed() string            { return k.ns + "stat:processed" }
func (k Keys) StatFailed() string               { return k.ns + "stat:failed" }
func (k Keys) StatProcessedBy(id string) string { return k.ns + "stat:processed:" + id }
func (k Keys) StatFailedBy(id string) string    { return k.ns + "stat:failed:" + id }
func (k Keys) Failed() string                   { return k.ns + "failed" }
func (k Keys) FailedQueues() string             { return k.ns + "failed_queues" }
func (k Keys) PauseAll() string                 { return k.ns + "pause-all-workers" }
func (k Keys) AllPattern() string               { return k.ns + "*" }
func (k Keys) QueuePrefix() string              { return k.ns + "queue:" }
func (k Keys) resq(rel string) string           { return k.ns + "resq:" + rel }

// JobCounts is resq's hash of processed/failed counts per queue and class.
func (k Keys) JobCounts() string { return k.resq("jobs") }

// History is resq's per-minute hash of processed and failed counts.
func (k Keys) History(unixMinute int64) string {
	return k.resq("history:" + strconv.FormatInt(unixMinute, 10))
}

// Seen marks a job id as run, for replay protection.
func (k Keys) Seen(id string) string { return k.resq("seen:" + id) }

// SecretFields maps job classes to the names of their secret argument fields.
func (k Keys) SecretFields() string { return k.resq("secret_fields") }

// Pickup is the list where a blocking pickup of process owner ("host:pid")
// parks a job taken from queue until a slot records it.
func (k Keys) Pickup(owner, queue string) string { return k.resq("pickup:" + owner + ":" + queue) }

// AckMark holds the sequence number of the last ack batch process owner
// ("host:pid") wrote, so that a retry can tell whether a write whose reply
// was lost had landed. It expires an hour after the last write.
func (k Keys) AckMark(owner string) string { return k.resq("acked:" + owner) }

// PickupPrefix is the common prefix of every pickup list.
func (k Keys) PickupPrefix() string { return k.resq("pickup:") }
