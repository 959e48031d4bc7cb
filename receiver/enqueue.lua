-- hookbird: store and enqueue a batch of pushes, each one atomically.
--
-- KEYS[1] rq:queues   KEYS[2] rq:queue:<name>   KEYS[3] hookbird:events
-- ARGV[1] dedup TTL s   ARGV[2] event retention s   ARGV[3] now (epoch s)
-- ARGV[4] event key prefix   ARGV[5] RQ job key prefix
-- ARGV[6] n: the number of event fields   ARGV[7] t: the number of job template entries
-- then the n event field names, then the t template entries (name, value, …),
-- then per push: event id, job timestamp, description, meta, then one value per
-- event field (among them dedup_key and received_at, the epoch used as score).
--
-- Every value is an argument of its own, so the script does no parsing of its
-- input. Returns per push two entries: 1 and the new event id, or 0 and the id of
-- the push that used this dedup key first. The per-push keys are derived here from
-- the values rather than passed in KEYS; hookbird runs on one Redis, not a cluster
-- (RQ does not support Redis Cluster either).
--
-- The first write of each push is SET NX on its dedup key, so when Redis refuses
-- writes (out of memory under noeviction) nothing of that push is written.

local dedup_ttl = ARGV[1]
local retention = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local event_prefix, job_prefix = ARGV[4], ARGV[5]
local n_fields, n_template = tonumber(ARGV[6]), tonumber(ARGV[7])

local names_at = 8
local pushes_at = names_at + n_fields + n_template
local per_push = 4 + n_fields

-- The event hash's arguments: names fixed, values filled in per push.
local fields = {}
local dedup_at, received_at
for f = 1, n_fields do
  local name = ARGV[names_at + f - 1]
  fields[2 * f - 1] = name
  if name == 'dedup_key' then dedup_at = f end
  if name == 'received_at' then received_at = f end
end

local job_fields = {}
for t = 1, n_template do
  job_fields[t] = ARGV[names_at + n_fields + t - 1]
end
for _, name in ipairs({ 'created_at', 'enqueued_at', 'description', 'meta' }) do
  job_fields[#job_fields + 1] = name
  job_fields[#job_fields + 1] = ''
end

local result = {}
local any_new = false
for a = pushes_at, #ARGV, per_push do
  local event_id = ARGV[a]
  local values_at = a + 3
  local dedup = ARGV[values_at + dedup_at]
  if redis.call('SET', dedup, event_id, 'NX', 'EX', dedup_ttl) then
    local event = event_prefix .. event_id
    for f = 1, n_fields do
      fields[2 * f] = ARGV[values_at + f]
    end
    redis.call('HSET', event, unpack(fields))
    redis.call('EXPIRE', event, retention)
    redis.call('ZADD', KEYS[3], ARGV[values_at + received_at], event_id)

    job_fields[n_template + 2] = ARGV[a + 1]
    job_fields[n_template + 4] = ARGV[a + 1]
    job_fields[n_template + 6] = ARGV[a + 2]
    job_fields[n_template + 8] = ARGV[a + 3]
    redis.call('HSET', job_prefix .. event_id, unpack(job_fields))
    redis.call('RPUSH', KEYS[2], event_id)
    any_new = true
    result[#result + 1] = 1
    result[#result + 1] = event_id
  else
    result[#result + 1] = 0
    result[#result + 1] = redis.call('GET', dedup) or ''
  end
end

if any_new then
  redis.call('SADD', KEYS[1], KEYS[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. tostring(now - retention))
end
return result
