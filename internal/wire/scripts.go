package wire

import "github.com/redis/go-redis/v9"

// fetchScript pops up to n jobs for n idle worker slots in one round trip and
// writes each slot's "working on" record in the same atomic step, so a job is
// never only in a worker's memory.
//
// KEYS[1] = pause-all-workers, KEYS[2..1+m] = queue lists in priority order,
// KEYS[2+m..1+m+n] = worker:<id> keys of the idle slots.
// ARGV[1] = m, ARGV[2] = the payload size limit in bytes, ARGV[3] = the
// mode: "r" replace, "h" check held records, "" neither (below),
// ARGV[3+j] = the record prefix for queue j (RecordPrefix).
// Returns -1 when all workers are paused, else a flat array of
// (queue index, slot index, payload, stored-as-is) quadruples. A payload
// that is not a JSON object (checked with cjson, so "{oops}" is caught) is
// stored in the record as a JSON string, so Ruby's tools can always parse
// the record. A payload over the size limit
// is not returned: its place holds {size, first 1 KiB, sha1 hex}, so a
// hostile 16 MiB job never reaches the worker's memory.
//
// In check-held mode, a slot whose record is still set holds a job this
// process took but never saw (the reply of an earlier write was lost, or a
// crashed process with the same id left it): the script pops nothing for it
// and hands the record back instead, as (0, slot index, record, 2), so the
// job runs rather than being overwritten. The worker asks for it on its first
// fetch and after any write whose outcome it does not know; otherwise the
// check would cost a GET per idle slot on every fetch.
//
// In replace mode (Store.AckAndFetch) the slots' records are those of the
// jobs just acked in the same MULTI: each is overwritten by the slot's next
// job or deleted, and none is handed back.
//
// Queues before the current one are known to be empty for the rest of the
// script (it runs atomically), so the scan never restarts from the top.
var fetchScript = redis.NewScript(`
local m = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local replace = ARGV[3] == 'r'
local checkHeld = ARGV[3] == 'h'
local n = #KEYS - 1 - m
local p = redis.call('GET', KEYS[1])
if p then
  p = string.lower(string.match(p, '^%s*(.-)%s*$'))
  if p == 'true' then
    if replace then
      for i = 1, n do redis.call('DEL', KEYS[1 + m + i]) end
    end
    return -1
  end
end
local out = {}
local q = 1
for i = 1, n do
  local held = false
  if checkHeld then held = redis.call('GET', KEYS[1 + m + i]) end
  if held then
    out[#out + 1] = 0
    out[#out + 1] = i
    out[#out + 1] = held
    out[#out + 1] = 2
  else
    local job = false
    while q <= m do
      job = redis.call('LPOP', KEYS[1 + q])
      if job then break end
      q = q + 1
    end
    if job then
      local body = job
      local ret = job
      local asis = 1
      if #job > limit then
        local head = string.sub(job, 1, 1024)
        ret = {#job, head, redis.sha1hex(job)}
        body = cjson.encode(head)
        asis = 0
      elseif not (string.find(job, '^%s*{') and string.find(job, '}%s*$') and pcall(cjson.decode, job)) then
        body = cjson.encode(job)
        asis = 0
      end
      redis.call('SET', KEYS[1 + m + i], ARGV[3 + q] .. body .. '}')
      out[#out + 1] = q
      out[#out + 1] = i
      out[#out + 1] = ret
      out[#out + 1] = asis
    elseif replace then
      redis.call('DEL', KEYS[1 + m + i])
    end
  end
end
return out
`)

// requeueScript puts a job that was interrupted by a fast stop back at the
// head of its queue, if the slot's record still exists (a dead-worker
// recoverer that got there first deletes it in the same step as its own
// requeue, so the job is never pushed twice).
// KEYS: worker:<id>, queue:<q>, queues. ARGV: payload, queue.
var requeueScript = redis.NewScript(`
if not redis.call('GET', KEYS[1]) then return 0 end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return 1
`)

// recoverScript acts on a dead worker's in-flight job only if worker:<id>
// still holds exactly the record the caller read, so two recoverers never
// requeue the same job twice. Then it unregisters the worker (docs/protocol.md §4.2).
//
// KEYS: worker:<id>, target list (queue:<q> to requeue, failed to fail),
// workers, worker:<id>:started, workers:heartbeat, stat:processed:<id>,
// stat:failed:<id>, queues.
// ARGV: expected record ("" when none), bytes to push, worker id, queue name,
// mode ("requeue" pushes to the head of the queue, "fail" appends).
var recoverScript = redis.NewScript(`
local rec = redis.call('GET', KEYS[1])
if ARGV[1] ~= '' then
  if rec ~= ARGV[1] then return 0 end
  if ARGV[5] == 'requeue' then
    redis.call('SADD', KEYS[8], ARGV[4])
    redis.call('LPUSH', KEYS[2], ARGV[2])
  else
    redis.call('RPUSH', KEYS[2], ARGV[2])
  end
elseif rec then
  return 0
end
redis.call('SREM', KEYS[3], ARGV[3])
redis.call('DEL', KEYS[1], KEYS[4], KEYS[6], KEYS[7])
redis.call('HDEL', KEYS[5], ARGV[3])
return 1
`)
