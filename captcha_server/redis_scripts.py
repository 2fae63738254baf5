"""Lua scripts that move a task between Redis states atomically (claim, finish, reap).

Layout under a prefix P: `P:task:<id>` hash (state, options, image, attempts, lease_until, ...),
`P:pending` and `P:processing` lists (a reliable queue: BLMOVE pending -> processing), `P:stats`
hash, one `P:stats:key:<digest>` hash per API key (named in the task's `kstats` field, so each
script counts a task for its owner too), `P:lat:<engine>` latency samples, `P:worker:<id>`
heartbeats with a TTL, and the pub/sub channel `P:done` on which finished task ids are
announced (waiters also poll, so a lost message only costs latency).
"""

from __future__ import annotations

# KEYS: task, processing. ARGV: id, lease_until, worker.
# Returns the attempt number, or -1 if the task expired, -2 if it is already final.
CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('LREM', KEYS[2], 0, ARGV[1]); return -1
end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'unsolvable' then
  redis.call('LREM', KEYS[2], 0, ARGV[1]); return -2
end
local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'state', 'processing', 'lease_until', ARGV[2], 'worker', ARGV[3])
redis.call('HDEL', KEYS[1], 'orphan_since')
return n
"""

# KEYS: task, processing, pending, stats, done channel. ARGV: id, state, solution_json, finished,
# result_ttl. The first result wins; a late duplicate (after a lease expired and another worker
# took the task) is dropped. Publishes the id on the done channel. Returns 1 if recorded.
FINISH = """
redis.call('LREM', KEYS[2], 0, ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' or state == 'unsolvable' then return 0 end
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'solution', ARGV[3], 'finished', ARGV[4])
redis.call('HDEL', KEYS[1], 'image', 'lease_until')
redis.call('EXPIRE', KEYS[1], ARGV[5])
local counter = ARGV[2] == 'done' and 'solved' or 'unsolvable'
redis.call('HINCRBY', KEYS[4], counter, 1)
local kstats = redis.call('HGET', KEYS[1], 'kstats')
if kstats then redis.call('HINCRBY', kstats, counter, 1) end
redis.call('PUBLISH', KEYS[5], ARGV[1])
return 1
"""

# KEYS: processing, pending, stats, done channel. ARGV: now, visibility_s, max_attempts,
# task_prefix, result_ttl, unsolvable_json. Requeues tasks whose worker stopped renewing its
# lease, or ends them as unsolvable after max_attempts. Returns {requeued, failed}.
REAP = """
local now = tonumber(ARGV[1])
local requeued, failed = 0, 0
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local k = ARGV[4] .. id
  if redis.call('EXISTS', k) == 0 then
    redis.call('LREM', KEYS[1], 0, id)
  else
    local state = redis.call('HGET', k, 'state')
    local expired = false
    if state == 'done' or state == 'unsolvable' then
      redis.call('LREM', KEYS[1], 0, id)
    elseif state == 'processing' then
      expired = tonumber(redis.call('HGET', k, 'lease_until') or '0') < now
    else
      -- moved by BLMOVE but never claimed: give the claimer one visibility timeout
      local since = redis.call('HGET', k, 'orphan_since')
      if not since then
        redis.call('HSET', k, 'orphan_since', ARGV[1])
      else
        expired = tonumber(since) + tonumber(ARGV[2]) < now
      end
    end
    if expired then
      local kstats = redis.call('HGET', k, 'kstats')
      redis.call('LREM', KEYS[1], 0, id)
      redis.call('HDEL', k, 'orphan_since', 'lease_until', 'worker')
      if tonumber(redis.call('HGET', k, 'attempts') or '0') >= tonumber(ARGV[3]) then
        redis.call('HSET', k, 'state', 'unsolvable', 'solution', ARGV[6], 'finished', ARGV[1])
        redis.call('HDEL', k, 'image')
        redis.call('EXPIRE', k, ARGV[5])
        redis.call('HINCRBY', KEYS[3], 'unsolvable', 1)
        if kstats then redis.call('HINCRBY', kstats, 'unsolvable', 1) end
        redis.call('PUBLISH', KEYS[4], id)
        failed = failed + 1
      else
        redis.call('HSET', k, 'state', 'pending')
        redis.call('RPUSH', KEYS[2], id)
        redis.call('HINCRBY', KEYS[3], 'retried', 1)
        if kstats then redis.call('HINCRBY', kstats, 'retried', 1) end
        requeued = requeued + 1
      end
    end
  end
end
return {requeued, failed}
"""

# KEYS: task. ARGV: worker, lease_until. Extends a lease only while this worker holds it.
RENEW = """
if redis.call('HGET', KEYS[1], 'worker') == ARGV[1]
   and redis.call('HGET', KEYS[1], 'state') == 'processing' then
  redis.call('HSET', KEYS[1], 'lease_until', ARGV[2]); return 1
end
return 0
"""

# KEYS: task, stats. ARGV: report ("good"/"bad"). 1 recorded, 0 duplicate, -1 not final.
REPORT = """
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'done' and state ~= 'unsolvable' then return -1 end
if (redis.call('HGET', KEYS[1], 'report') or '') ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'report', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'reported_' .. ARGV[1], 1)
local kstats = redis.call('HGET', KEYS[1], 'kstats')
if kstats then redis.call('HINCRBY', kstats, 'reported_' .. ARGV[1], 1) end
return 1
"""
