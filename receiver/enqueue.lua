-- hookbird: store and enqueue a batch of pushes, each one atomically.
--
-- KEYS[1] rq:queues   KEYS[2] rq:queue:<name>   KEYS[3] hookbird:events
-- ARGV[1] dedup TTL s   ARGV[2] event retention s   ARGV[3] now (epoch s)
-- then per push 8 values: event id, dedup key, signature dedup key, legacy dedup
-- key (each of the last two '' when it does not apply), received-at (epoch s, the
-- index score), job timestamp, job description, the stored push (see
-- hookbird/stored.py). hookbird/keys.py derives the three dedup keys.
--
-- receiver/enqueue.py fills in the placeholders in double braces before loading it:
-- the key prefixes and the RQ job fields every push shares, as the installed RQ
-- writes them. Constants in the script text cost nothing per call; as arguments
-- they were a third of every call's arguments.
--
-- Returns per push two entries: 1 and the new event id, or 0 and the id of the
-- push that used one of its dedup keys first. A push is a duplicate when any of
-- them is set: its dedup key (Idempotency-Key within its webhook, else the body
-- hash), its signature key (t and body: a signed push replayed with a fresh
-- Idempotency-Key), or its legacy key (an unscoped Idempotency-Key written by a
-- receiver before this version; only read, never written, so such keys simply
-- expire with the dedup TTL; '' once they have: receiver/enqueue.py legacy_window).
-- The per-push keys are derived here from the
-- values rather than passed in KEYS; hookbird runs on one Redis, not a cluster (RQ
-- does not support Redis Cluster either).
--
-- The first write of each push is SET NX on its dedup key (the checks before it
-- only read), so when Redis refuses
-- writes (out of memory under noeviction) nothing of that push is written.

local dedup_ttl, retention, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local event_prefix, job_prefix = {{event_prefix}}, {{job_prefix}}

local job = {{job_template}}
local n = #job
job[n + 1], job[n + 3], job[n + 5] = 'created_at', 'enqueued_at', 'description'

local result = {}
local scores_ids, ids = {}, {}
for a = 4, #ARGV, 8 do
  local event_id, dedup, signed, legacy = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local first = false
  if legacy ~= '' then first = redis.call('GET', legacy) end
  if not first and signed ~= '' then first = redis.call('GET', signed) end
  if not first and redis.call('SET', dedup, event_id, 'NX', 'EX', dedup_ttl) then
    if signed ~= '' then redis.call('SET', signed, event_id, 'EX', dedup_ttl) end
    redis.call('SET', event_prefix .. event_id, ARGV[a + 7], 'EX', retention)
    job[n + 2], job[n + 4], job[n + 6] = ARGV[a + 5], ARGV[a + 5], ARGV[a + 6]
    redis.call('HSET', job_prefix .. event_id, unpack(job))
    scores_ids[#scores_ids + 1] = ARGV[a + 4]
    scores_ids[#scores_ids + 1] = event_id
    ids[#ids + 1] = event_id
    result[#result + 1] = 1
    result[#result + 1] = event_id
  else
    result[#result + 1] = 0
    result[#result + 1] = first or redis.call('GET', dedup) or ''
  end
end

-- One ZADD and one RPUSH for the whole batch: each redis.call costs about as much
-- again as the work it does for one push. The queue keeps the pushes' order.
if #ids > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ids))
  redis.call('SADD', KEYS[1], KEYS[2])
  redis.call('ZADD', KEYS[3], unpack(scores_ids))
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. tostring(now - tonumber(retention)))
end
return result
