package wire

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Lease is resq's per-class concurrency lease: a sorted set of holders (a
// slot's worker id) scored by the Unix millisecond at which each lease
// expires, by Redis's clock. A holder renews its lease while its job runs;
// a dead worker's lease expires on its own.
func (k Keys) Lease(class string) string { return k.resq("lease:" + class) }

// AcquireLease takes one of limit concurrent leases on class for holder, in
// one atomic step with what happens otherwise: when all limit leases are
// held (by unexpired holders), the job is moved from holder's in-flight
// record (worker:<holder>) back to the tail of its queue, so that other jobs
// on the queue keep flowing, and the record is deleted. No counter changes:
// the job was not processed. Returns whether the lease was taken.
//
// A holder that already holds the lease gets it renewed.
func (s *Store) AcquireLease(ctx context.Context, class, holder string, limit int, ttl time.Duration, queue string, payload []byte) (bool, error) {
	if s.plain.Load() {
		return s.acquireLeasePlain(ctx, class, holder, limit, ttl, queue, payload)
	}
	n, err := acquireLeaseScript.Run(ctx, s.rdb,
		[]string{s.Keys.Lease(class), s.Keys.Worker(holder), s.Keys.Queue(queue), s.Keys.Queues()},
		holder, limit, ttl.Milliseconds(), payload, queue).Int64()
	if s.scriptRefused(err) {
		return s.acquireLeasePlain(ctx, class, holder, limit, ttl, queue, payload)
	}
	return n == 1, err
}

// acquireLeasePlain is AcquireLease without scripts: the same steps under
// WATCH on the lease set and the holder's record, by Redis's clock.
func (s *Store) acquireLeasePlain(ctx context.Context, class, holder string, limit int, ttl time.Duration, queue string, payload []byte) (bool, error) {
	lease, rec := s.Keys.Lease(class), s.Keys.Worker(holder)
	got := false
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		got = false
		now, err := tx.Time(ctx).Result()
		if err != nil {
			return err
		}
		ms := now.UnixMilli()
		nowArg := strconv.FormatInt(ms, 10)
		live, err := tx.ZCount(ctx, lease, "("+nowArg, "+inf").Result()
		if err != nil {
			return err
		}
		mine, err := tx.ZScore(ctx, lease, holder).Result()
		held := err == nil && int64(mine) > ms
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		if held || live < int64(limit) {
			pttl, err := tx.PTTL(ctx, lease).Result()
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.ZRemRangeByScore(ctx, lease, "-inf", nowArg)
				p.ZAdd(ctx, lease, redis.Z{Score: float64(ms + ttl.Milliseconds()), Member: holder})
				if pttl < ttl {
					p.PExpire(ctx, lease, ttl)
				}
				return nil
			})
			got = err == nil
			return err
		}
		has, err := tx.Exists(ctx, rec).Result()
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.ZRemRangeByScore(ctx, lease, "-inf", nowArg)
			if has == 1 {
				p.SAdd(ctx, s.Keys.Queues(), queue)
				p.RPush(ctx, s.Keys.Queue(queue), payload)
				p.Del(ctx, rec)
			}
			return nil
		})
		return err
	}, lease, rec)
	return got, err
}

// RenewLease pushes holder's lease on class ttl into the future. It returns
// false when holder no longer holds it (it expired and may have been taken).
func (s *Store) RenewLease(ctx context.Context, class, holder string, ttl time.Duration) (bool, error) {
	if s.plain.Load() {
		return s.renewLeasePlain(ctx, class, holder, ttl)
	}
	n, err := renewLeaseScript.Run(ctx, s.rdb, []string{s.Keys.Lease(class)}, holder, ttl.Milliseconds()).Int64()
	if s.scriptRefused(err) {
		return s.renewLeasePlain(ctx, class, holder, ttl)
	}
	return n == 1, err
}

// renewLeasePlain is RenewLease without scripts (WATCH on the lease set).
func (s *Store) renewLeasePlain(ctx context.Context, class, holder string, ttl time.Duration) (bool, error) {
	lease := s.Keys.Lease(class)
	ok := false
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		ok = false
		now, err := tx.Time(ctx).Result()
		if err != nil {
			return err
		}
		exp, err := tx.ZScore(ctx, lease, holder).Result()
		if errors.Is(err, redis.Nil) || err == nil && int64(exp) <= now.UnixMilli() {
			return nil
		}
		if err != nil {
			return err
		}
		pttl, err := tx.PTTL(ctx, lease).Result()
		if err != nil {
			return err
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.ZAdd(ctx, lease, redis.Z{Score: float64(now.UnixMilli() + ttl.Milliseconds()), Member: holder})
			if pttl < ttl {
				p.PExpire(ctx, lease, ttl)
			}
			return nil
		})
		ok = err == nil
		return err
	}, lease)
	return ok, err
}

// ReleaseLease gives holder's lease on class back.
func (s *Store) ReleaseLease(ctx context.Context, class, holder string) error {
	return s.rdb.ZRem(ctx, s.Keys.Lease(class), holder).Err()
}

// LeaseHolders returns the holders of unexpired leases on class.
func (s *Store) LeaseHolders(ctx context.Context, class string) ([]string, error) {
	now, err := s.ServerTime(ctx)
	if err != nil {
		return nil, err
	}
	return s.rdb.ZRangeByScore(ctx, s.Keys.Lease(class), &redis.ZRangeBy{
		Min: "(" + strconv.FormatInt(now.UnixMilli(), 10), Max: "+inf",
	}).Result()
}

// Lease scripts read Redis's TIME, so every worker measures expiry by one
// clock. Scripts that write after TIME need effects replication, the only
// mode from Redis 7 on and available since 3.2 (hence replicate_commands).
//
// acquire: KEYS lease, worker:<holder>, queue:<q>, queues;
// ARGV holder, limit, ttl ms, payload, queue.
var acquireLeaseScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  return 1
end
if redis.call('GET', KEYS[2]) then
  redis.call('SADD', KEYS[4], ARGV[5])
  redis.call('RPUSH', KEYS[3], ARGV[4])
  redis.call('DEL', KEYS[2])
end
return 0
`)

// renew: KEYS lease; ARGV holder, ttl ms. The key's own TTL follows the
// newest expiry, so an abandoned lease set disappears.
var renewLeaseScript = redis.NewScript(`
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp or tonumber(exp) <= now then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 1
`)
