"""The jobs' Lua scripts in Redis (``redis_store.py``): every claim, renewal, state change and
finished segment is one script, atomic in Redis, so two pods never both take a job, and a segment
is stored once, by the job's lease holder only. Keys are built inside from ``ARGV[1]`` (the
prefix) and the job's tenant (the ``jobs:tenant`` index): one Redis, not a Redis Cluster, as the
cluster store's. Numbers given back to Redis go as strings (``%.17g``): Redis truncates a Lua
number to an integer."""

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
local function unowned(key) return num(tonumber(redis.call('HGET', key, 'created')) - 1e11) end
"""

# ARGV: prefix, owner, now, lease_s, limit. The live set is scored by when a job may be claimed:
# an unowned one at its creation - 1e11 (before any lease, oldest first), a leased one at its
# lease's end. Returns the ids claimed.
CLAIM = (
    _KEY
    + """
local owner, now, lease, limit = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', live, '-inf', '(' .. ARGV[3], 'LIMIT', 0, limit)) do
  local key = jkey(id)
  local st = key and redis.call('HGET', key, 'state')
  if not key or not claimable(st) then
    redis.call('ZREM', live, id)
  elseif redis.call('HGET', key, 'owner') == '' or tonumber(redis.call('HGET', key, 'lease')) < now then
    redis.call('HSET', key, 'owner', owner, 'lease', num(now + lease))
    redis.call('ZADD', live, num(now + lease), id)
    table.insert(out, id)
  end
end
return out
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

# ARGV: prefix, owner, id
RELEASE = (
    _KEY
    + """
local key = jkey(ARGV[3])
if not key or redis.call('HGET', key, 'owner') ~= ARGV[2] then return 0 end
redis.call('HSET', key, 'owner', '', 'lease', '0')
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

# ARGV: prefix, id, seq, result, tracks, end_ms, segment_id, updated, owner (empty: not checked).
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
return 0
"""
)

# KEYS: the job's hash; ARGV: field, value, ... Set only if the job is still there.
SET_IF_THERE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""

SCRIPTS = ("CLAIM", "RENEW", "RELEASE", "SET_STATE", "ADD_SEGMENT", "SET_IF_THERE")
