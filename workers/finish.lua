-- hookbird: record how a run of a push ended, release its entity, name who is next.
--
-- KEYS[1] hookbird:state:<id>   KEYS[2] hookbird:entity:<adm>:<type>:<id>
-- KEYS[3] hookbird:entity-lock:<…> (both '' for a push that names no entity)
-- KEYS[4] rq:job:<id>   KEYS[5] the queue's scheduled registry   KEYS[6] hookbird:event:<id>
-- ARGV[1] event id   ARGV[2] run token   ARGV[3] done: HANDLED, AGAIN, DEAD or PARKED
-- ARGV[4] TTL (s) of the outcome record (and of the raw push when DEAD)
-- ARGV[5] job description ('' leaves the job alone)   ARGV[6] now (epoch s)
-- ARGV[7] job meta, serialized ('' for none)   ARGV[8…] outcome fields, name and value
--
-- Returns the id of the next waiting push for the entity, taken out of RQ's scheduled
-- registry for the caller to queue, or false. PARKED returns the push's own id when
-- its turn has come since begin.lua. How the entity's line works: the docstring of
-- workers/store.py.
--
-- workers/store.py fills in the placeholders in double braces when it loads the
-- script: key prefixes (hookbird/keys.py, workers/store.py) and the names of states
-- (workers/states.py, and RQ's job statuses of a push still to run).

local job_prefix, wake_prefix = {{job_prefix}}, {{wake_prefix}}
local AGAIN, DEAD, PARKED = {{again}}, {{done_dead}}, {{parked}}
local unfinished = {{rq_unfinished}}

local state_key, set_key, lock_key, job_key, scheduled_key, event_key = unpack(KEYS)
local me, token, done, ttl, description, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local meta = ARGV[7]
for i = 8, #ARGV, 2 do redis.call('HSET', state_key, ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', state_key, ttl)
if done == DEAD then redis.call('EXPIRE', event_key, ttl) end
if description ~= '' and redis.call('EXISTS', job_key) == 1 then
  redis.call('HSET', job_key, 'description', description)
  -- the receiver writes no meta (see receiver/enqueue.py); rq-dashboard shows this
  if meta ~= '' then redis.call('HSET', job_key, 'meta', meta) end
end
if set_key == '' then return false end
if done == PARKED then
  -- the push before this one may have finished since begin.lua: then do not wait at all
  local first = redis.call('ZRANGE', set_key, 0, 0)[1]
  if first == me and not redis.call('GET', lock_key) then return me end
  return false
end
if redis.call('GET', lock_key) == token then redis.call('DEL', lock_key) end
if done ~= AGAIN then redis.call('ZREM', set_key, me) end
local head
for _ = 1, 50 do
  head = redis.call('ZRANGE', set_key, 0, 0)[1]
  if not head or head == me then return false end
  local status = redis.call('HGET', job_prefix .. head, 'status')
  if unfinished[status] then break end
  redis.call('ZREM', set_key, head)  -- finished or gone: not a push to wait for
end
local due = redis.call('ZSCORE', scheduled_key, head)
if not due then
  -- on its way to being parked: its worker moves it to the queue once RQ has scheduled it
  redis.call('SET', wake_prefix .. head, '1', 'PX', 60000)
  return false
end
-- wake it only while it is not due yet, so the scheduler is not also enqueueing it
if tonumber(due) > tonumber(now) + 0.25 then
  redis.call('ZREM', scheduled_key, head)
  return head
end
return false
