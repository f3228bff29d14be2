"""The Lua scripts of ``RedisStore`` (``redis_store.py``): each runs atomically in Redis, on Redis's
own clock (``TIME``), so the pods' clocks never matter. Redis 7.0 (Debian 12): no ``HEXPIRE``, so
what expires is a sorted set member scored by its expiry in milliseconds.

Keys (``<p>``: the store's prefix; every name is the caller's):

- a cap's leases: ``<p>l:<cap>``, a sorted set of lease ids scored by expiry;
- a group's members: ``<p>g:<group>`` (sorted set, scored by expiry) and ``<p>gv:<group>`` (hash:
  member -> value); its changes are published on ``<p>gc:<group>`` (the message: the group's name);
- a stream: ``<p>s:<key>``, a Redis stream; each entry's fields: ``d`` (the bytes) and ``k`` (its
  keep time in ms: a read trims by the newest entry's);
- a budget: ``<p>b:<name>``, a hash of ``level`` and ``at`` (ms);
- a channel: ``<p>c:<channel>`` (pub/sub).

Every key that only expiring members keep alive has a TTL beyond their expiry, so nothing outlives
its last holder.
"""

from __future__ import annotations

#: ``now``: Redis's clock in ms
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

#: keep a key at least ``ms`` longer (never shorten a TTL another holder set)
_KEEP = """
local function keep(key, ms)
  local left = redis.call('PTTL', key)
  if left == -1 or left < ms then redis.call('PEXPIRE', key, ms) end
end
"""

#: drop a group's expired members (KEYS: zset, hash; ARGV: group name); 1 if any went (and told)
_SWEEP_GROUP = """
local function sweep(zset, hash, channel, group, now)
  local gone = redis.call('ZRANGEBYSCORE', zset, '-inf', now)
  if #gone == 0 then return 0 end
  redis.call('ZREMRANGEBYSCORE', zset, '-inf', now)
  redis.call('HDEL', hash, unpack(gone))
  redis.call('PUBLISH', channel, group)
  return 1
end
"""

# KEYS: the caps' sorted sets; ARGV: lease id, ttl ms, then each cap's limit.
# Returns 0 (taken) or the 1-based index of the first full cap.
ACQUIRE = (
    _NOW
    + _KEEP
    + """
local ttl = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[i + 2]) then return i end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  keep(key, 2 * ttl)
end
return 0
"""
)

# KEYS: sorted sets (caps or groups' member sets); ARGV: ttl ms, then each key's member.
# Every member's expiry moves on; one that is gone (expired, or Redis restarted) is added back.
RENEW = (
    _NOW
    + _KEEP
    + """
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  keep(key, 2 * ttl)
end
return #KEYS
"""
)

# KEYS: a cap's sorted set. Live leases on it.
COUNT = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
"""
)

# KEYS: zset, hash, change channel; ARGV: group, member, value, ttl ms. Tells the group's watchers
# if the member is new (or was expired) or its value changed. Returns the other live members as they
# were just before: member, value, member, value...
JOIN = (
    _NOW
    + _KEEP
    + _SWEEP_GROUP
    + """
local swept = sweep(KEYS[1], KEYS[2], KEYS[3], ARGV[1], now)
local ttl = tonumber(ARGV[4])
local others = {}
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
for _, member in ipairs(members) do
  if member ~= ARGV[2] then
    others[#others + 1] = member
    others[#others + 1] = redis.call('HGET', KEYS[2], member) or ''
  end
end
local had = redis.call('ZSCORE', KEYS[1], ARGV[2])
local old = redis.call('HGET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
keep(KEYS[1], 2 * ttl)
keep(KEYS[2], 2 * ttl)
if swept == 0 and (not had or old ~= ARGV[3]) then redis.call('PUBLISH', KEYS[3], ARGV[1]) end
return others
"""
)

# KEYS: zset, hash, change channel; ARGV: group, then member, value pairs, then ttl ms (last).
# A holder's memberships renewed; any that was gone is added back (its watchers told).
RENEW_MEMBERS = (
    _NOW
    + _KEEP
    + """
local ttl = tonumber(ARGV[#ARGV])
local back = 0
for i = 2, #ARGV - 1, 2 do
  if redis.call('ZADD', KEYS[1], now + ttl, ARGV[i]) == 1 then back = 1 end
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
keep(KEYS[1], 2 * ttl)
keep(KEYS[2], 2 * ttl)
if back == 1 then redis.call('PUBLISH', KEYS[3], ARGV[1]) end
return back
"""
)

# KEYS: zset, hash, change channel; ARGV: group, member. Returns how many live members are left.
LEAVE = (
    _NOW
    + _SWEEP_GROUP
    + """
local gone = redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
if gone == 1 then redis.call('PUBLISH', KEYS[3], ARGV[1]) end
sweep(KEYS[1], KEYS[2], KEYS[3], ARGV[1], now)
return redis.call('ZCARD', KEYS[1])
"""
)

# KEYS: zset, hash, change channel; ARGV: group. The live members: member, value, member, value...
MEMBERS = (
    _NOW
    + _SWEEP_GROUP
    + """
sweep(KEYS[1], KEYS[2], KEYS[3], ARGV[1], now)
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
if #members == 0 then return {} end
local values = redis.call('HMGET', KEYS[2], unpack(members))
local out = {}
for i, member in ipairs(members) do
  out[#out + 1] = member
  out[#out + 1] = values[i] or ''
end
return out
"""
)

# KEYS: zset, hash, change channel; ARGV: group. Expired members go, and the watchers are told.
SWEEP = (
    _NOW
    + _SWEEP_GROUP
    + """
return sweep(KEYS[1], KEYS[2], KEYS[3], ARGV[1], now)
"""
)

# KEYS: the stream; ARGV: data, keep ms, max entries. Returns the new entry's id.
APPEND = (
    _NOW
    + """
local keep_ms = tonumber(ARGV[2])
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], '*', 'd', ARGV[1], 'k', keep_ms)
redis.call('XTRIM', KEYS[1], 'MINID', now - keep_ms)
redis.call('PEXPIRE', KEYS[1], keep_ms)
return id
"""
)

# KEYS: the stream; ARGV: after (an id), within ms (-1: any), count.
# Returns {last id of the stream (or ''), id, data, id, data, ...}, trimmed by the newest entry's
# keep time first.
READ = (
    _NOW
    + """
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 then return {''} end
local fields = newest[1][2]
for i = 1, #fields, 2 do
  if fields[i] == 'k' then redis.call('XTRIM', KEYS[1], 'MINID', now - tonumber(fields[i + 1])) end
end
local start = '(' .. ARGV[1]
local within = tonumber(ARGV[2])
if within >= 0 then
  local after_ms = tonumber(string.match(ARGV[1], '^(%d+)'))
  if now - within > after_ms then start = tostring(now - within) end
end
local got = redis.call('XRANGE', KEYS[1], start, '+', 'COUNT', ARGV[3])
local out = {newest[1][1]}
for _, entry in ipairs(got) do
  local f = entry[2]
  for i = 1, #f, 2 do
    if f[i] == 'd' then
      out[#out + 1] = entry[1]
      out[#out + 1] = f[i + 1]
    end
  end
end
return out
"""
)

# KEYS: the budget's hash; ARGV: amount, per minute. The token bucket of ``store.refill`` (full
# when new; at most a minute banked; may go below zero). Returns the level left, as a string.
SPEND = (
    _NOW
    + """
local per_minute = tonumber(ARGV[2])
local level = tonumber(redis.call('HGET', KEYS[1], 'level') or per_minute)
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or now)
local elapsed = math.max(0, now - at) / 1000
level = math.min(per_minute, level + elapsed * per_minute / 60) - tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'level', tostring(level), 'at', now)
local full_in = math.ceil((per_minute - level) / (per_minute / 60) * 1000)
redis.call('PEXPIRE', KEYS[1], math.max(1000, full_in + 1000))
return tostring(level)
"""
)

#: every script, by name (``RedisStore`` registers each once: redis-py sends it again after a restart)
SCRIPTS = ("ACQUIRE", "RENEW", "COUNT", "JOIN", "RENEW_MEMBERS", "LEAVE", "MEMBERS", "SWEEP", "APPEND", "READ", "SPEND")
