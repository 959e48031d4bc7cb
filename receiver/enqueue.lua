-- hookbird: store and enqueue a batch of pushes, each one atomically.
--
-- KEYS[1] rq:queues   KEYS[2] rq:queue:<name>   KEYS[3] hookbird:events
-- then per push: KEYS[3+3i+1] dedup key, [+2] event key, [+3] RQ job key
--
-- ARGV[1] dedup TTL s   ARGV[2] event retention s   ARGV[3] now (epoch s)
-- ARGV[4] n event fields   ARGV[5] n job template entries (name, value pairs)
-- then the event field names, then the job template entries,
-- then per push: event_id, received_at, job timestamp, description, meta,
--                and one value per event field.
--
-- Returns per push two entries: 1 and the new event id, or 0 and the id of the
-- push that already used this dedup key.
--
-- The first write of each push is SET NX on the dedup key, so when Redis refuses
-- writes (OOM with noeviction) nothing of that push is written.

local dedup_ttl = ARGV[1]
local retention = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local n_fields = tonumber(ARGV[4])
local n_template = tonumber(ARGV[5])

local names_at = 6
local template_at = names_at + n_fields
local pushes_at = template_at + n_template
local per_push = 5 + n_fields
local n_pushes = (#ARGV - pushes_at + 1) / per_push

local result = {}
local any_new = false
for i = 0, n_pushes - 1 do
  local a = pushes_at + i * per_push
  local dedup, event, job = KEYS[4 + 3 * i], KEYS[5 + 3 * i], KEYS[6 + 3 * i]
  local event_id = ARGV[a]
  if redis.call('SET', dedup, event_id, 'NX', 'EX', dedup_ttl) then
    local fields = {}
    for f = 0, n_fields - 1 do
      fields[#fields + 1] = ARGV[names_at + f]
      fields[#fields + 1] = ARGV[a + 5 + f]
    end
    redis.call('HSET', event, unpack(fields))
    redis.call('EXPIRE', event, retention)
    redis.call('ZADD', KEYS[3], ARGV[a + 1], event_id)

    local job_fields = {}
    for t = template_at, pushes_at - 1 do
      job_fields[#job_fields + 1] = ARGV[t]
    end
    job_fields[#job_fields + 1] = 'created_at'
    job_fields[#job_fields + 1] = ARGV[a + 2]
    job_fields[#job_fields + 1] = 'enqueued_at'
    job_fields[#job_fields + 1] = ARGV[a + 2]
    job_fields[#job_fields + 1] = 'description'
    job_fields[#job_fields + 1] = ARGV[a + 3]
    job_fields[#job_fields + 1] = 'meta'
    job_fields[#job_fields + 1] = ARGV[a + 4]
    redis.call('HSET', job, unpack(job_fields))
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
