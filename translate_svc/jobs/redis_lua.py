"""The jobs' Lua scripts in Redis (``redis_store.py``): every claim, renewal, state change and
finished segment is one script, atomic in Redis, so two pods never both take a job, and a segment
is stored once, by the job's lease holder only. Keys are built inside from ``ARGV[1]`` (the
prefix) and the job's tenant (the ``jobs:tenant`` index): one Redis, not a Redis Cluster, as the
cluster store's. Numbers given back to Redis go as strings (``%.17g``): Redis truncates a Lua
number to an integer.

A tenant's caps are checked in the script that changes what they count: its jobs not
finished with a job's insert (``CREATE``), their hours with its length (``SET_DURATION``), the
bytes its jobs keep (``translate-svc:jobs-kept:<tenant>``, each job's ``kept``) with each part
(``PART_BEGIN``, which also holds the upload for that part alone) and segment. Claims are fair
across tenants (``translate-svc:jobs:served:<stage>``: the tenant served least recently first),
and a URL job's fetch is a stage of its own."""

from __future__ import annotations

_KEY = """
local p = ARGV[1]
local live = p .. 'jobs:live'
local function jkey(id)
  local t = redis.call('HGET', p .. 'jobs:tenant', id)
  if not t then return nil, nil end
  return p .. 'job:' .. t .. ':' .. id, t
end
local function num(x) return string.format('%.17g', x) end
local function claimable(st) return st == 'queued' or st == 'running' end
local function is_open(st) return st == 'uploading' or st == 'queued' or st == 'running' end
-- an unowned job's score in the live set: when it was given back until, else its creation - 1e11
local function unowned(key)
  local lease = tonumber(redis.call('HGET', key, 'lease') or '0')
  if lease > 0 then return num(lease) end
  return num(tonumber(redis.call('HGET', key, 'created')) - 1e11)
end
-- a URL job whose audio is not fetched yet
local function needs_fetch(key)
  local url = cjson.decode(redis.call('HGET', key, 'spec'))['url']
  return type(url) == 'string' and url ~= '' and tonumber(redis.call('HGET', key, 'duration_ms') or '0') == 0
end
local function in_stage(key, stage)
  if stage == 'fetch' then return needs_fetch(key) end
  return not needs_fetch(key)
end
local function leased(key, now) return tonumber(redis.call('HGET', key, 'lease') or '0') >= now end
local function kept_key(tenant) return p .. 'jobs-kept:' .. tenant end
local function add_kept(key, tenant, n)
  redis.call('HINCRBY', key, 'kept', n)
  redis.call('INCRBY', kept_key(tenant), n)
end
"""
#: how many claimable jobs a claim looks at, at most (the oldest first)
SCAN = 512

# ARGV: prefix, owner, now, lease_s, limit, stage ('fetch' or 'run'). The live set is scored by
# when a job may be claimed: an unowned one at its creation - 1e11 (before any lease, oldest
# first) or when it was given back until, a leased one at its lease's end. Of the claimable jobs of
# the stage (the first SCAN), one at a time of the tenant served least recently, its oldest.
# Returns the ids claimed.
CLAIM = (
    _KEY
    + """
local owner, now, lease, limit, stage = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local served = p .. 'jobs:served:' .. stage
local waiting, tenants = {}, {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', live, '-inf', '(' .. ARGV[3], 'LIMIT', 0, """
    + str(SCAN)
    + """)) do
  local key, t = jkey(id)
  local st = key and redis.call('HGET', key, 'state')
  if not key or not claimable(st) then
    redis.call('ZREM', live, id)
  elseif not leased(key, now) and in_stage(key, stage) then
    if not waiting[t] then
      waiting[t] = {}
      table.insert(tenants, t)
    end
    table.insert(waiting[t], id)
  end
end
local out = {}
while #out < limit do
  local best, best_at = nil, 0
  for _, t in ipairs(tenants) do
    if #waiting[t] > 0 then
      local at = tonumber(redis.call('HGET', served, t) or '0')
      if not best or at < best_at then best, best_at = t, at end
    end
  end
  if not best then break end
  local id = table.remove(waiting[best], 1)
  redis.call('HSET', p .. 'job:' .. best .. ':' .. id, 'owner', owner, 'lease', num(now + lease))
  redis.call('ZADD', live, num(now + lease), id)
  redis.call('HSET', served, best, ARGV[3])
  table.insert(out, id)
end
return out
"""
)

# ARGV: prefix, tenant, now. 1 if a job of another tenant is ready to translate and unclaimed.
WAITING = (
    _KEY
    + """
local now = tonumber(ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', live, '-inf', '(' .. ARGV[3], 'LIMIT', 0, """
    + str(SCAN)
    + """)) do
  local key, t = jkey(id)
  if key and t ~= ARGV[2] and claimable(redis.call('HGET', key, 'state')) and not leased(key, now)
      and not needs_fetch(key) then
    return 1
  end
end
return 0
"""
)

# ARGV: prefix, tenant, id, max_jobs ('' none), max_bytes ('' none), live score ('' not claimable),
# then the hash's fields and values. {0} made; {1, count} the tenant's jobs not finished are at
# max_jobs; {2, kept} its jobs keep max_bytes.
CREATE = (
    _KEY
    + """
local tenant, id = ARGV[2], ARGV[3]
local open = p .. 'jobs-open:' .. tenant
if ARGV[4] ~= '' then
  local count = 0
  for _, other in ipairs(redis.call('SMEMBERS', open)) do
    if is_open(redis.call('HGET', p .. 'job:' .. tenant .. ':' .. other, 'state')) then count = count + 1 end
  end
  if count >= tonumber(ARGV[4]) then return {1, count} end
end
if ARGV[5] ~= '' then
  local kept = tonumber(redis.call('GET', kept_key(tenant)) or '0')
  if kept >= tonumber(ARGV[5]) then return {2, kept} end
end
redis.call('HSET', p .. 'job:' .. tenant .. ':' .. id, unpack(ARGV, 7))
redis.call('HSET', p .. 'jobs:tenant', id, tenant)
redis.call('SADD', open, id)
redis.call('ZADD', p .. 'jobs-made:' .. tenant, redis.call('HGET', p .. 'job:' .. tenant .. ':' .. id, 'created'), id)
if ARGV[6] ~= '' then redis.call('ZADD', live, ARGV[6], id) end
return {0}
"""
)

# ARGV: prefix, id, duration_ms, audio_s, updated, max_hours ('' none). {0} set; {1, hours} the
# tenant's other jobs not finished hold that many hours, and this one is over max_hours with them;
# {-3} no such job.
SET_DURATION = (
    _KEY
    + """
local key, tenant = jkey(ARGV[2])
if not key or redis.call('EXISTS', key) == 0 then return {-3} end
if ARGV[6] ~= '' then
  local others = 0
  for _, other in ipairs(redis.call('SMEMBERS', p .. 'jobs-open:' .. tenant)) do
    local okey = p .. 'job:' .. tenant .. ':' .. other
    if other ~= ARGV[2] and is_open(redis.call('HGET', okey, 'state')) then
      others = others + tonumber(redis.call('HGET', okey, 'audio_s') or '0')
    end
  end
  if others / 3600 + tonumber(ARGV[3]) / 3600000 > tonumber(ARGV[6]) then return {1, num(others / 3600)} end
end
redis.call('HSET', key, 'duration_ms', ARGV[3], 'audio_s', ARGV[4], 'updated', ARGV[5])
return {0}
"""
)

# ARGV: prefix, id, offset, size, limit, max_bytes ('' none), now, hold until, token. Holds the
# upload for one part while it is written: {0} held; {1, received} the part does not start where
# the upload ends; {2} over limit; {3, kept} the tenant's jobs would keep over max_bytes; {4}
# another part is being written; {5, state} not uploading; {-3} no such job.
PART_BEGIN = (
    _KEY
    + """
local key, tenant = jkey(ARGV[2])
if not key or redis.call('EXISTS', key) == 0 then return {-3} end
local st = redis.call('HGET', key, 'state')
if st ~= 'uploading' then return {5, st} end
if tonumber(redis.call('HGET', key, 'appending_until') or '0') > tonumber(ARGV[7]) then return {4} end
local received = tonumber(redis.call('HGET', key, 'received') or '0')
local offset, size = tonumber(ARGV[3]), tonumber(ARGV[4])
if received ~= offset then return {1, received} end
if offset + size > tonumber(ARGV[5]) then return {2} end
if ARGV[6] ~= '' then
  local kept = tonumber(redis.call('GET', kept_key(tenant)) or '0')
  if kept + size > tonumber(ARGV[6]) then return {3, kept} end
end
redis.call('HSET', key, 'appending', ARGV[9], 'appending_until', ARGV[8])
return {0}
"""
)

# ARGV: prefix, id, token, received (0: the part was not written), size, updated, expires (0: as it
# was). 1 if the token still held the upload (the part is counted); 0 if not.
PART_END = (
    _KEY
    + """
local key, tenant = jkey(ARGV[2])
if not key or redis.call('HGET', key, 'appending') ~= ARGV[3] then return 0 end
redis.call('HSET', key, 'appending', '', 'appending_until', '0')
if ARGV[4] == '0' then return 1 end
redis.call('HSET', key, 'received', ARGV[4], 'updated', ARGV[6])
add_kept(key, tenant, tonumber(ARGV[5]))
if tonumber(ARGV[7]) > 0 then
  redis.call('HSET', key, 'expires', ARGV[7])
  redis.call('ZADD', p .. 'jobs:expires', ARGV[7], ARGV[2])
end
return 1
"""
)

# ARGV: prefix, id, received: a fetched audio's size, replacing an earlier fetch's.
SET_RECEIVED = (
    _KEY
    + """
local key, tenant = jkey(ARGV[2])
if not key or redis.call('EXISTS', key) == 0 then return 0 end
local old = tonumber(redis.call('HGET', key, 'received') or '0')
redis.call('HSET', key, 'received', ARGV[3])
add_kept(key, tenant, tonumber(ARGV[3]) - math.min(old, tonumber(redis.call('HGET', key, 'kept') or '0')))
return 1
"""
)

# ARGV: prefix, id, size: the job's audio (size bytes) was deleted.
DROP_AUDIO = (
    _KEY
    + """
local key, tenant = jkey(ARGV[2])
if not key or redis.call('EXISTS', key) == 0 then return 0 end
-- (nothing kept: no change; a Lua -0 would reach Redis as '-0', which HINCRBY refuses)
local n = math.min(tonumber(ARGV[3]), tonumber(redis.call('HGET', key, 'kept') or '0'))
if n > 0 then add_kept(key, tenant, -n) end
return 1
"""
)

# ARGV: prefix, id. The job's keys and what it kept, gone (deleting twice is harmless).
DELETE = (
    _KEY
    + """
local id = ARGV[2]
local key, tenant = jkey(id)
if key then
  local kept = tonumber(redis.call('HGET', key, 'kept') or '0')
  if kept > 0 then redis.call('DECRBY', kept_key(tenant), kept) end
  redis.call('DEL', key, p .. 'job-segments:' .. tenant .. ':' .. id)
  redis.call('SREM', p .. 'jobs-open:' .. tenant, id)
  redis.call('ZREM', p .. 'jobs-made:' .. tenant, id)
end
redis.call('HDEL', p .. 'jobs:tenant', id)
redis.call('ZREM', live, id)
redis.call('ZREM', p .. 'jobs:expires', id)
return 1
"""
)

# ARGV: prefix, owner, until, ids... Returns id, state for each job the owner still holds.
RENEW = (
    _KEY
    + """
local out = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local key = jkey(id)
  if key and redis.call('HGET', key, 'owner') == ARGV[2] then
    local st = redis.call('HGET', key, 'state')
    redis.call('HSET', key, 'lease', ARGV[3])
    if claimable(st) then redis.call('ZADD', live, ARGV[3], id) end
    table.insert(out, id)
    table.insert(out, st)
  end
end
return out
"""
)

# ARGV: prefix, owner, id, until (0: claimable at once)
RELEASE = (
    _KEY
    + """
local key = jkey(ARGV[3])
if not key or redis.call('HGET', key, 'owner') ~= ARGV[2] then return 0 end
redis.call('HSET', key, 'owner', '', 'lease', ARGV[4])
if claimable(redis.call('HGET', key, 'state')) then redis.call('ZADD', live, unowned(key), ARGV[3]) end
return 1
"""
)

# ARGV: prefix, id, state, error, expires, updated, only_from (comma-separated; empty: any).
# 1 moved, 0 not (missing, or not in one of only_from).
SET_STATE = (
    _KEY
    + """
local id, new = ARGV[2], ARGV[3]
local key, tenant = jkey(id)
if not key or redis.call('EXISTS', key) == 0 then return 0 end
local st = redis.call('HGET', key, 'state')
if ARGV[7] ~= '' then
  local ok = false
  for s in string.gmatch(ARGV[7], '[^,]+') do
    if s == st then ok = true end
  end
  if not ok then return 0 end
end
redis.call('HSET', key, 'state', new, 'error', ARGV[4], 'expires', ARGV[5], 'updated', ARGV[6])
if claimable(new) then
  if redis.call('HGET', key, 'owner') == '' then
    redis.call('ZADD', live, unowned(key), id)
  else
    redis.call('ZADD', live, redis.call('HGET', key, 'lease'), id)
  end
else
  redis.call('ZREM', live, id)
end
if new == 'done' or new == 'failed' or new == 'cancelled' then
  redis.call('SREM', p .. 'jobs-open:' .. tenant, id)
end
if tonumber(ARGV[5]) > 0 then
  redis.call('ZADD', p .. 'jobs:expires', ARGV[5], id)
else
  redis.call('ZREM', p .. 'jobs:expires', id)
end
return 1
"""
)

# ARGV: prefix, id, seq, result, tracks, end_ms, segment_id, updated, owner (empty: not checked),
# the bytes the job keeps more (the result, the tracks' growth).
# 0 stored; -1 not the next segment (stored already); -2 another holds the job, or it is no longer
# running (cancelled from any pod); -3 no such job.
ADD_SEGMENT = (
    _KEY
    + """
local key, tenant = jkey(ARGV[2])
if not key or redis.call('EXISTS', key) == 0 then return -3 end
local segs = p .. 'job-segments:' .. tenant .. ':' .. ARGV[2]
if redis.call('LLEN', segs) ~= tonumber(ARGV[3]) then return -1 end
if ARGV[9] ~= '' and redis.call('HGET', key, 'owner') ~= ARGV[9] then return -2 end
if redis.call('HGET', key, 'state') ~= 'running' then return -2 end
redis.call('RPUSH', segs, ARGV[4])
redis.call('HSET', key, 'segments', tostring(tonumber(ARGV[3]) + 1), 'done_ms', ARGV[6], 'tracks', ARGV[5],
  'last_segment_id', ARGV[7], 'updated', ARGV[8])
add_kept(key, tenant, tonumber(ARGV[10]))
return 0
"""
)

# ARGV: prefix, owner, id, now, until. 1: the done job is leased to the owner until then (its
# segments edited), 0: not done, or another edit holds it (its owner names ':edit:': store.EDITING).
HOLD = (
    _KEY
    + """
local key = jkey(ARGV[3])
if not key or redis.call('HGET', key, 'state') ~= 'done' then return 0 end
local owner = redis.call('HGET', key, 'owner') or ''
local editing = string.find(owner, ':edit:', 1, true)
if editing and tonumber(redis.call('HGET', key, 'lease') or '0') >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', key, 'owner', ARGV[2], 'lease', ARGV[5])
return 1
"""
)

# ARGV: prefix, owner, id, updated, the bytes the job keeps more, then seq, result, ... (edited
# segments). 0 written; -2 not held by the owner, or not done; -3 no such job.
EDIT_SEGMENTS = (
    _KEY
    + """
local key, tenant = jkey(ARGV[3])
if not key or redis.call('EXISTS', key) == 0 then return -3 end
if redis.call('HGET', key, 'owner') ~= ARGV[2] or redis.call('HGET', key, 'state') ~= 'done' then return -2 end
local segs = p .. 'job-segments:' .. tenant .. ':' .. ARGV[3]
for i = 6, #ARGV, 2 do
  redis.call('LSET', segs, tonumber(ARGV[i]), ARGV[i + 1])
end
redis.call('HSET', key, 'updated', ARGV[4])
add_kept(key, tenant, tonumber(ARGV[5]))
return 0
"""
)

# KEYS: the job's hash; ARGV: field, value, ... Set only if the job is still there.
SET_IF_THERE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

SCRIPTS = (
    "CLAIM",
    "WAITING",
    "RENEW",
    "RELEASE",
    "CREATE",
    "SET_STATE",
    "SET_DURATION",
    "PART_BEGIN",
    "PART_END",
    "SET_RECEIVED",
    "DROP_AUDIO",
    "ADD_SEGMENT",
    "DELETE",
    "SET_IF_THERE",
    "HOLD",
    "EDIT_SEGMENTS",
)
