package wire

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Recurring schedules (spec §9.8): resque-scheduler's dynamic-schedule keys,
// read and written as Ruby's Resque.set_schedule / remove_schedule and the
// master do, and resq's tick key, which makes each fire of a schedule happen
// once across every scheduler and across a change of master.

// PersistentSchedules is the hash of schedule name → config JSON written by
// Ruby's Resque.set_schedule(name, config) with persist: true.
func (k Keys) PersistentSchedules() string { return k.ns + "persistent_schedules" }

// SchedulesChanged is the set of schedule names changed since the master
// last applied them.
func (k Keys) SchedulesChanged() string { return k.ns + "schedules_changed" }

// LastEnqueuedAt is the hash of schedule name → time of its last enqueue
// (Ruby Time#to_s), which resque-scheduler's Schedule tab shows.
func (k Keys) LastEnqueuedAt() string { return k.ns + "delayed:last_enqueued_at" }

// ScheduleTick marks the fire of schedule name due at the Unix second at as
// done: <ns>:resq:tick:<name>:<at>. The name may contain colons; the last
// colon separates the time. It expires (see ScheduleTick.TTL).
func (k Keys) ScheduleTick(name string, at int64) string {
	return k.resq("tick:" + name + ":" + strconv.FormatInt(at, 10))
}

// ScheduleTickPrefix is the common prefix of every tick key.
func (k Keys) ScheduleTickPrefix() string { return k.resq("tick:") }

// PersistentSchedules returns every persistent schedule: name → config JSON
// exactly as stored (HGETALL persistent_schedules).
func (s *Store) PersistentSchedules(ctx context.Context) (map[string]string, error) {
	return s.rdb.HGetAll(ctx, s.Keys.PersistentSchedules()).Result()
}

// SetPersistentSchedule stores one schedule as Ruby's
// Resque.set_schedule(name, config, persist: true) does — HSET
// persistent_schedules name config, SADD schedules_changed name — in one
// MULTI. config must be the config's JSON object (without "persist").
func (s *Store) SetPersistentSchedule(ctx context.Context, name string, config []byte) error {
	if name == "" {
		return errors.New("schedule name is empty")
	}
	if !json.Valid(config) || len(config) == 0 || config[0] != '{' {
		return fmt.Errorf("schedule %q: config is not a JSON object", name)
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.Keys.PersistentSchedules(), name, config)
		p.SAdd(ctx, s.Keys.SchedulesChanged(), name)
		return nil
	})
	return err
}

// RemovePersistentSchedule deletes one schedule as Ruby's
// Resque.remove_schedule does — HDEL persistent_schedules name, SADD
// schedules_changed name — in one MULTI. It reports whether a persistent
// schedule of that name existed.
func (s *Store) RemovePersistentSchedule(ctx context.Context, name string) (bool, error) {
	var del *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		del = p.HDel(ctx, s.Keys.PersistentSchedules(), name)
		p.SAdd(ctx, s.Keys.SchedulesChanged(), name)
		return nil
	})
	if err != nil {
		return false, err
	}
	return del.Val() == 1, nil
}

// PopChangedSchedules removes and returns every name in schedules_changed,
// as the master does (SPOP, here up to 100 names per command).
func (s *Store) PopChangedSchedules(ctx context.Context) ([]string, error) {
	var out []string
	for {
		names, err := s.rdb.SPopN(ctx, s.Keys.SchedulesChanged(), 100).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return out, err
		}
		out = append(out, names...)
		if len(names) < 100 {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
	}
}

// LastEnqueuedAt returns delayed:last_enqueued_at: schedule name → the time
// text as stored (Ruby writes Time#to_s; read it with ParseTime).
func (s *Store) LastEnqueuedAt(ctx context.Context) (map[string]string, error) {
	return s.rdb.HGetAll(ctx, s.Keys.LastEnqueuedAt()).Result()
}

// LastEnqueuedAtValue formats a delayed:last_enqueued_at value: Ruby's
// Time#to_s in the process's local zone ("2024-01-15 10:23:45 +0000").
func LastEnqueuedAtValue(t time.Time) string { return Started(t) }

// ScheduleTick is one fire of a recurring schedule for FireScheduleTick.
type ScheduleTick struct {
	// Lock is the master lock (Keys.SchedulerMasterLock) and this
	// scheduler's value in it ("<host>:<pid>"), the same Lock that fences
	// MoveDue. The tick fires only while the lock holds exactly Lock.Value
	// (the fence).
	Lock Lock
	// Name is the schedule's name and At its scheduled fire time; together
	// they identify the tick (At is truncated to whole seconds).
	Name string
	At   time.Time
	// TTL is how long the tick key is kept; it must exceed the longest time
	// after At at which any scheduler might still try this tick (its
	// catch-up window) plus clock skew. Zero means 25 hours.
	TTL time.Duration
	// Queue and Payload are the job to enqueue ({"class":…,"args":…}).
	Queue   string
	Payload []byte
	// EnqueuedAt is written to delayed:last_enqueued_at (as Time#to_s).
	EnqueuedAt time.Time
}

// DefaultTickTTL is the tick key's TTL when ScheduleTick.TTL is zero.
const DefaultTickTTL = 25 * time.Hour

// FireScheduleTick enqueues one tick of a recurring schedule, atomically
// and at most once: if the master lock holds t.Lock.Value (else ErrNotMaster)
// and the tick key does not exist yet, it sets the tick key (with its TTL),
// SADD queues, RPUSH queue:<q> payload and HSET delayed:last_enqueued_at
// name <Time#to_s>, all in one script (in one WATCH/MULTI without scripts).
// It reports whether this call enqueued the job; false with a nil error
// means the tick had already been fired.
func (s *Store) FireScheduleTick(ctx context.Context, t ScheduleTick) (bool, error) {
	if t.Lock.Key == "" || t.Lock.Value == "" || t.Name == "" || t.Queue == "" {
		return false, fmt.Errorf("schedule tick %q: lock key, lock value, name and queue are required", t.Name)
	}
	if t.TTL <= 0 {
		t.TTL = DefaultTickTTL
	}
	if s.plain.Load() {
		return s.fireTickPlain(ctx, t)
	}
	keys := []string{t.Lock.Key, s.Keys.ScheduleTick(t.Name, t.At.Unix()), s.Keys.Queues(), s.Keys.Queue(t.Queue), s.Keys.LastEnqueuedAt()}
	n, err := fireTickScript.Run(ctx, s.rdb, keys, t.Lock.Value, t.TTL.Milliseconds(), t.Queue, t.Payload, t.Name, LastEnqueuedAtValue(t.EnqueuedAt)).Int64()
	if s.scriptRefused(err) {
		return s.fireTickPlain(ctx, t)
	}
	switch {
	case err != nil:
		return false, err
	case n < 0:
		return false, ErrNotMaster
	}
	return n == 1, nil
}

// fireTickScript: KEYS = master lock, tick key, queues, queue:<q>,
// delayed:last_enqueued_at; ARGV = lock value, tick TTL (ms), queue,
// payload, schedule name, last-enqueued text. Returns -1 (not master),
// 0 (already fired) or 1 (enqueued).
var fireTickScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('RPUSH', KEYS[4], ARGV[4])
redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
return 1
`)

// fireTickPlain is FireScheduleTick without scripts: WATCH the lock and the
// tick key, check both, then MULTI the writes; EXEC fails (and the check is
// repeated) if either changed in between.
func (s *Store) fireTickPlain(ctx context.Context, t ScheduleTick) (bool, error) {
	tick := s.Keys.ScheduleTick(t.Name, t.At.Unix())
	fired, notMaster := false, false
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		fired, notMaster = false, false
		holder, err := tx.Get(ctx, t.Lock.Key).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if holder != t.Lock.Value || errors.Is(err, redis.Nil) {
			notMaster = true
			return nil
		}
		n, err := tx.Exists(ctx, tick).Result()
		if err != nil || n > 0 {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, tick, t.Lock.Value, t.TTL)
			p.SAdd(ctx, s.Keys.Queues(), t.Queue)
			p.RPush(ctx, s.Keys.Queue(t.Queue), t.Payload)
			p.HSet(ctx, s.Keys.LastEnqueuedAt(), t.Name, LastEnqueuedAtValue(t.EnqueuedAt))
			return nil
		})
		fired = err == nil
		return err
	}, t.Lock.Key, tick)
	if err != nil {
		return false, err
	}
	if notMaster {
		return false, ErrNotMaster
	}
	return fired, nil
}

// EncodeScheduledJob is the job a recurring schedule (or a Go scheduler's
// enqueue_from_config, spec §9.7 step 6) pushes: {"class":…,"args":…} with
// Ruby's string escaping. args must be a JSON array (it is copied as is).
func EncodeScheduledJob(class string, args json.RawMessage) []byte {
	if len(args) == 0 {
		args = json.RawMessage("[]")
	}
	b := make([]byte, 0, len(class)+len(args)+22)
	b = append(b, `{"class":`...)
	b = appendString(b, class)
	b = append(b, `,"args":`...)
	b = append(b, args...)
	return append(b, '}')
}

// AppendRubyFloat appends f as Ruby's Float#to_s (and so its json gem)
// writes it: always with a fraction or an exponent ("1.0", "0.0001",
// "1.0e+16", "1.0e-05"), shortest digits that read back as f. Ruby's json
// refuses NaN and infinities; so does this.
func AppendRubyFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return b, fmt.Errorf("%v is not allowed in JSON", f)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(b, "-0.0"...), nil
		}
		return append(b, "0.0"...), nil
	}
	// Shortest digits and the decimal exponent: d.ddd × 10^(exp).
	e := strconv.FormatFloat(f, 'e', -1, 64) // "-1.2345e+06"
	neg := e[0] == '-'
	if neg {
		e = e[1:]
	}
	mant, expText, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mant, ".", "", 1)
	decpt := exp + 1 // digits before the decimal point
	if neg {
		b = append(b, '-')
	}
	switch {
	case decpt > 0 && decpt <= 16: // fixed notation, as Ruby's flo_to_s
		if len(digits) <= decpt {
			b = append(b, digits...)
			b = append(b, strings.Repeat("0", decpt-len(digits))...)
			return append(b, ".0"...), nil
		}
		b = append(b, digits[:decpt]...)
		b = append(b, '.')
		return append(b, digits[decpt:]...), nil
	case decpt <= 0 && decpt > -4:
		b = append(b, "0."...)
		b = append(b, strings.Repeat("0", -decpt)...)
		return append(b, digits...), nil
	default: // exponent form: d.ddde±XX, at least two exponent digits
		b = append(b, digits[0], '.')
		if len(digits) > 1 {
			b = append(b, digits[1:]...)
		} else {
			b = append(b, '0')
		}
		b = append(b, 'e')
		x := decpt - 1
		if x < 0 {
			b = append(b, '-')
			x = -x
		} else {
			b = append(b, '+')
		}
		if x < 10 {
			b = append(b, '0')
		}
		return strconv.AppendInt(b, int64(x), 10), nil
	}
}

// AppendJSONString appends s as a JSON string with Ruby's escaping rules.
func AppendJSONString(b []byte, s string) []byte { return appendString(b, s) }
