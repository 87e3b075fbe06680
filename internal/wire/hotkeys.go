package wire

import (
	"sync"
	"sync/atomic"
	"time"
)

// The names every fetch and ack repeats — the fixed keys, the queues' and
// pickup lists' keys, the record prefix of the current second, the history
// hash of the current minute — are built once and reused: at ten jobs per
// round trip, building them anew was a third of the Store's allocations.

// fixedKeys are the namespace's keys that never change.
type fixedKeys struct {
	pauseAll, statProcessed, statFailed, jobCounts, failed, queues, aheadOwners string
}

func newFixedKeys(k Keys) fixedKeys {
	return fixedKeys{pauseAll: k.PauseAll(), statProcessed: k.StatProcessed(), statFailed: k.StatFailed(),
		jobCounts: k.JobCounts(), failed: k.Failed(), queues: k.Queues(), aheadOwners: k.AheadOwners()}
}

// queueKey is queue:<q>, built once per queue name.
func (s *Store) queueKey(q string) string { return s.queueNames.get(q, s.Keys.Queue) }

// nameCache maps a name to a string built from it, for a bounded number of
// names (past the bound it builds without keeping: a process that keeps
// meeting new names does not grow it).
type nameCache struct {
	m     sync.Map
	count atomic.Int64
}

const maxCachedNames = 4096

func (c *nameCache) get(name string, build func(string) string) string {
	if v, ok := c.m.Load(name); ok {
		return v.(string)
	}
	s := build(name)
	if c.count.Add(1) <= maxCachedNames {
		c.m.Store(name, s)
	}
	return s
}

// secondCache holds what depends on the current second: run_at and the
// record prefixes of the queues fetched in it.
type secondCache struct {
	mu       sync.Mutex
	sec      int64
	runAt    string
	prefixes map[string]string
}

// prefix returns run_at for now and queue's record prefix with it.
func (c *secondCache) prefix(queue string, now time.Time) (runAt, prefix string) {
	sec := now.Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sec != sec || c.prefixes == nil {
		c.sec, c.runAt, c.prefixes = sec, RunAt(now), make(map[string]string, 4)
	}
	p, ok := c.prefixes[queue]
	if !ok {
		p = RecordPrefix(queue, c.runAt)
		if len(c.prefixes) < 64 {
			c.prefixes[queue] = p
		}
	}
	return c.runAt, p
}

// runAt returns run_at for now.
func (c *secondCache) runAtOf(now time.Time) string {
	sec := now.Unix()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sec != sec || c.prefixes == nil {
		c.sec, c.runAt, c.prefixes = sec, RunAt(now), make(map[string]string, 4)
	}
	return c.runAt
}

// minuteKey caches the history hash key of the current minute.
type minuteKey struct {
	mu     sync.Mutex
	minute int64
	key    string
}

func (c *minuteKey) get(k Keys, minute int64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key == "" || c.minute != minute {
		c.minute, c.key = minute, k.History(minute)
	}
	return c.key
}

// pickupCache maps queue names to one owner's pickup list keys: the first
// owner asked for (a process has one); another owner's keys are built
// without keeping.
type pickupCache struct {
	once  sync.Once
	owner string
	names nameCache
}

func (c *pickupCache) get(k Keys, owner, queue string) string {
	c.once.Do(func() { c.owner = owner })
	if owner != c.owner {
		return k.Pickup(owner, queue)
	}
	return c.names.get(queue, func(q string) string { return k.Pickup(owner, q) })
}
