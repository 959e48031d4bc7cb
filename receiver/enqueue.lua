-- hookbird: store and enqueue a batch of pushes, each one atomically.
--
-- KEYS[1] rq:queues   KEYS[2] rq:queue:<name>   KEYS[3] hookbird:events
-- ARGV[1] dedup TTL s   ARGV[2] event retention s   ARGV[3] now (epoch s)
-- ARGV[4] event key prefix   ARGV[5] RQ job key prefix
-- ARGV[6] head: the event field names and the RQ job template (name, value, …)
-- ARGV[7] the pushes
--
-- Both blobs are framed the same way, so a batch is two arguments however many
-- pushes it holds: a big-endian uint32 count n, n uint32 lengths, then the n
-- strings. head = [n_fields, field names…, template entries…] (n_fields as text);
-- pushes = one frame per push: dedup key, event id, received-at (epoch), job
-- timestamp, description, meta, then one value per event field.
--
-- Returns per push two entries: 1 and the new event id, or 0 and the id of the
-- push that used this dedup key first. The per-push keys are derived here from
-- the values rather than passed in KEYS; hookbird runs on one Redis, not a cluster
-- (RQ does not support Redis Cluster either).
--
-- The first write of each push is SET NX on its dedup key, so when Redis refuses
-- writes (out of memory under noeviction) nothing of that push is written.

local function frame(blob, pos)
  local n, p = struct.unpack('>I4', blob, pos)
  local lengths = { struct.unpack('>' .. string.rep('I4', n), blob, p) }
  p = lengths[n + 1]
  local values = {}
  for i = 1, n do
    values[i] = string.sub(blob, p, p + lengths[i] - 1)
    p = p + lengths[i]
  end
  return values, p
end

local dedup_ttl = ARGV[1]
local retention = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local event_prefix, job_prefix = ARGV[4], ARGV[5]

local head = frame(ARGV[6], 1)
local n_fields = tonumber(head[1])
local job_fields = {}
for i = n_fields + 2, #head do
  job_fields[#job_fields + 1] = head[i]
end
local n_template = #job_fields
for _, name in ipairs({ 'created_at', 'enqueued_at', 'description', 'meta' }) do
  job_fields[#job_fields + 1] = name
  job_fields[#job_fields + 1] = ''
end

local result = {}
local any_new = false
local pushes, pos = ARGV[7], 1
while pos <= #pushes do
  local v
  v, pos = frame(pushes, pos)
  local dedup, event_id = v[1], v[2]
  if redis.call('SET', dedup, event_id, 'NX', 'EX', dedup_ttl) then
    local event = event_prefix .. event_id
    local fields = {}
    for f = 1, n_fields do
      fields[#fields + 1] = head[f + 1]
      fields[#fields + 1] = v[6 + f]
    end
    redis.call('HSET', event, unpack(fields))
    redis.call('EXPIRE', event, retention)
    redis.call('ZADD', KEYS[3], v[3], event_id)

    job_fields[n_template + 2] = v[4]
    job_fields[n_template + 4] = v[4]
    job_fields[n_template + 6] = v[5]
    job_fields[n_template + 8] = v[6]
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
