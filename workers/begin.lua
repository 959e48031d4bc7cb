-- hookbird: may this push run now? If so, it takes its entity's turn.
--
-- KEYS[1] hookbird:event:<id>   KEYS[2] hookbird:state:<id>
-- KEYS[3] hookbird:entity:<adm>:<type>:<id>   KEYS[4] hookbird:entity-lock:<…>
--   (both '' for a push that names no entity: it runs at once)
-- KEYS[5] the queue's started registry   KEYS[6] the queue's intermediate list
-- ARGV[1] event id   ARGV[2] run token   ARGV[3] lock TTL (ms)
-- ARGV[4..6] administration id, entity type, entity id   ARGV[7] entity set TTL (s)
--
-- Returns {verdict, stored push, outcome record}; the verdict is GO, WAIT or EXPIRED.
-- How the entity's line works: the docstring of workers/store.py.
--
-- workers/store.py fills in the placeholders in double braces when it loads the
-- script: key prefixes (hookbird/keys.py, workers/store.py) and the names of states
-- (workers/states.py, and RQ's job statuses of a push still to run).

local event_prefix, state_prefix, job_prefix = {{event_prefix}}, {{state_prefix}}, {{job_prefix}}
local wake_prefix = {{wake_prefix}}
local GO, WAIT, EXPIRED = {{go}}, {{wait}}, {{expired}}
local SUCCEEDED, DEAD = {{succeeded}}, {{dead}}
local unfinished = {{rq_unfinished}}

local event_key, state_key, set_key, lock_key, wip_key, mid_key = unpack(KEYS)
local me, token, lock_ms = ARGV[1], ARGV[2], tonumber(ARGV[3])
-- A stored push is one string (hookbird/stored.py); receivers before 2026-11-22 wrote a
-- hash of fields, read here too so pushes queued across an upgrade are handled.
local kind = redis.call('TYPE', event_key)['ok']
if kind == 'none' then return {EXPIRED, '', {}} end
local stored
if kind == 'hash' then stored = redis.call('HGETALL', event_key)
else stored = redis.call('GET', event_key) end
local state = redis.call('HGETALL', state_key)
if set_key == '' then return {GO, stored, state} end
local adm, etype, eid = ARGV[4], ARGV[5], ARGV[6]
-- the fields the receiver stored with a push: the JSON line before its raw body
local function header(key)
  if redis.call('TYPE', key)['ok'] == 'hash' then
    local f = redis.call('HMGET', key, 'administration_id', 'entity_type', 'entity_id',
      'received_at')
    return {administration_id = f[1], entity_type = f[2], entity_id = f[3],
      received_at = f[4]}
  end
  local value = redis.call('GET', key)
  local newline = value and string.find(value, '\n', 1, true)
  if not newline then return {} end
  local ok, fields = pcall(cjson.decode, string.sub(value, 1, newline - 1))
  if ok and type(fields) == 'table' then return fields end
  return {}
end
redis.call('ZADD', set_key, 'NX', tonumber(header(event_key).received_at) or 0, me)
redis.call('EXPIRE', set_key, ARGV[7])
-- pushes dequeued before this one that have not reached this script yet
local candidates = redis.call('LRANGE', mid_key, 0, -1)
for _, entry in ipairs(redis.call('ZRANGE', wip_key, 0, -1)) do
  table.insert(candidates, string.match(entry, '^([^:]+)'))
end
for _, other in ipairs(candidates) do
  if other ~= me and other < me then
    local f = header(event_prefix .. other)
    -- (one that just finished may still sit in the started registry a moment longer)
    local done = redis.call('HGET', state_prefix .. other, 'status')
    if f.administration_id == adm and f.entity_type == etype and f.entity_id == eid
        and done ~= SUCCEEDED and done ~= DEAD then
      redis.call('ZADD', set_key, 'NX', tonumber(f.received_at) or 0, other)
    end
  end
end
for _ = 1, 50 do
  local head = redis.call('ZRANGE', set_key, 0, 0)[1]
  if head == me then break end
  local status = redis.call('HGET', job_prefix .. head, 'status')
  if unfinished[status] then
    return {WAIT, stored, state}
  end
  redis.call('ZREM', set_key, head)
end
-- held by this very run: this script ran already and Redis died before its reply came
-- back; redis-py sends it again (hookbird/outage.py). The turn is this run's.
local holder = redis.call('GET', lock_key)
if holder == token then
  redis.call('PEXPIRE', lock_key, lock_ms)
  return {GO, stored, state}
end
-- held even by an earlier run of this same push (a second copy of its job): wait
if holder then
  return {WAIT, stored, state}
end
redis.call('SET', lock_key, token, 'PX', lock_ms)
redis.call('DEL', wake_prefix .. me)  -- its turn is now; a later retry must not be hurried
return {GO, stored, state}
