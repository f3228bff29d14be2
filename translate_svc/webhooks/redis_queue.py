"""The events' queue and the usage records in Redis (``cluster.redis_url`` set): one queue that
every pod (and every worker of ``serve --workers N``) shares, so that what a pod queued is
delivered by another when that pod dies. Same methods and meaning as ``store.EventStore`` (the
SQLite file of one node), which ``outbox.Outbox`` uses when there is no Redis.

Keys (under ``PREFIX``): ``seq`` (a counter: each delivery's number), ``d:<seq>`` (a hash: the
delivery's endpoint, webhook-id, body, time made, attempts, tenant), ``due:<endpoint>`` (a sorted
set of the endpoint's deliveries scored by when each is next due), ``queued`` (how many deliveries
wait, every endpoint's together; bounded by ``webhooks.max_queued``), ``tq`` (a sorted set of
tenants scored by how many of their deliveries wait) and ``t:<tenant>`` (a tenant's waiting
deliveries, oldest first: when the queue is full a new delivery takes the place of the oldest of
the tenant with the most waiting, as in ``store.EventStore``), ``open``, ``open_tenant`` and
``open_lost`` (hashes by session id: each started session not yet ended, its owner process, tenant
and checkpoint), ``gone:<session>`` (a session the sweep ended as lost, kept a day), ``owners`` (a
sorted set of processes scored by their last heartbeat), ``usage`` and ``usage_at`` (a record per
``session.ended`` by webhook-id, and their end times), ``usage_of:<session>`` (a session's record's
webhook-id, kept a week). Every change that must be all or nothing
is one Lua script: queuing an event with its session's open or close, taking due deliveries (each
taken is pushed ``hold_s`` into the future: a pod that dies mid-send leaves them to be taken again
once the hold ends, by any pod), settling one.

Synchronous and blocking (redis-py's client, timeouts ``OP_TIMEOUT_S``): call it from one thread
(``outbox.Outbox``'s), never the event loop. A Redis that cannot be reached raises redis-py's
errors, which the outbox logs and retries; an event emitted meanwhile waits in memory (at most
``MAX_SPILL``, then dropped and counted) and is written at the next heartbeat that reaches Redis.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import redis

from translate_svc.webhooks.events import SESSION_ENDED, SESSION_STARTED, Event
from translate_svc.webhooks.store import Delivery, OnDrop, body_of, no_report, summed

logger = logging.getLogger(__name__)

PREFIX = "translate_svc:webhooks:"
OP_TIMEOUT_S = 5.0
#: events kept in memory while Redis cannot be reached, at most; beyond, ``add`` raises (dropped)
MAX_SPILL = 10_000
#: after a failed write, events are only kept (no new try) for this long; the heartbeat always tries
RETRY_S = 1.0
#: what counts as Redis being unreachable (an event is then kept for later, not dropped)
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)

# ARGV: prefix, kind (started|ended|lost|other), session id, owner, tenant, lost (JSON), msg id, body, made at,
# max queued, usage record (JSON or ""), then the endpoints. Returns {-1}: a session.ended whose
# session is no longer open (skipped); else {0, tenant, n, ...}: the deliveries dropped (pushed out
# of a full queue, or not queued) by tenant.
_ADD = """
local p, kind, sid, tenant = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local USAGE_OF_S = 604800
-- at a full queue: push out the oldest delivery of the tenant with the most waiting (the new
-- event's own tenant when it has as many); the tenant pushed out, or false if none could be
local function make_room()
  for _ = 1, 8 do
    local top = redis.call('ZREVRANGE', p .. 'tq', 0, 0, 'WITHSCORES')
    if #top == 0 then return false end
    local victim = top[1]
    if (tonumber(redis.call('ZSCORE', p .. 'tq', tenant)) or 0) >= tonumber(top[2]) then victim = tenant end
    local oldest = redis.call('ZRANGE', p .. 't:' .. victim, 0, 0)
    if #oldest == 0 then
      redis.call('ZREM', p .. 'tq', victim)  -- a stale count: look again
    else
      local seq = oldest[1]
      local url = redis.call('HGET', p .. 'd:' .. seq, 'endpoint')
      redis.call('DEL', p .. 'd:' .. seq)
      redis.call('ZREM', p .. 't:' .. victim, seq)
      redis.call('ZINCRBY', p .. 'tq', -1, victim)
      redis.call('ZREMRANGEBYSCORE', p .. 'tq', '-inf', 0)
      if url then redis.call('ZREM', p .. 'due:' .. url, seq) end
      if (tonumber(redis.call('GET', p .. 'queued')) or 0) > 0 then redis.call('DECR', p .. 'queued') end
      return victim
    end
  end
  return false
end
if kind == 'started' then
  redis.call('HSET', p .. 'open', sid, ARGV[4])
  redis.call('HSET', p .. 'open_tenant', sid, ARGV[5])
  redis.call('HSET', p .. 'open_lost', sid, ARGV[6])
elseif kind == 'ended' or kind == 'lost' then
  -- ended once: the sweep ends a session only while it is open and leaves a mark (a day) that
  -- skips its own late end; an end with neither (a Redis that lost its data) is queued
  if redis.call('HDEL', p .. 'open', sid) == 0 then
    if kind == 'lost' or redis.call('EXISTS', p .. 'gone:' .. sid) == 1 then return {-1} end
  end
  redis.call('HDEL', p .. 'open_tenant', sid)
  redis.call('HDEL', p .. 'open_lost', sid)
  if kind == 'lost' then redis.call('SET', p .. 'gone:' .. sid, 1, 'EX', 86400) end
end
local msg, body, made = ARGV[7], ARGV[8], ARGV[9]
if ARGV[11] ~= '' then
  if redis.call('HSETNX', p .. 'usage', msg, ARGV[11]) == 1 then
    redis.call('ZADD', p .. 'usage_at', made, msg)
    if sid ~= '' then redis.call('SET', p .. 'usage_of:' .. sid, msg, 'EX', USAGE_OF_S) end
  end
end
local most = tonumber(ARGV[10])
local dropped = {}
for i = 12, #ARGV do
  local url = ARGV[i]
  local room = (tonumber(redis.call('GET', p .. 'queued')) or 0) < most
  if not room then
    -- the delivery pushed out, or this one when none could be: dropped
    local victim = make_room()
    room = victim ~= false
    local who = victim or tenant
    dropped[who] = (dropped[who] or 0) + 1
  end
  if room then
    local seq = redis.call('INCR', p .. 'seq')
    redis.call('HSET', p .. 'd:' .. seq, 'endpoint', url, 'msg_id', msg, 'body', body, 'created', made,
      'attempts', 0, 'tenant', tenant)
    redis.call('ZADD', p .. 'due:' .. url, made, seq)
    redis.call('ZADD', p .. 't:' .. tenant, seq, seq)
    redis.call('ZINCRBY', p .. 'tq', 1, tenant)
    redis.call('INCR', p .. 'queued')
  end
end
local out = {0}
for who, n in pairs(dropped) do
  table.insert(out, who)
  table.insert(out, n)
end
return out
"""

# ARGV: prefix, endpoint, now, limit, hold_s. Returns seq, msg id, body, made at, attempts, ... of
# the due deliveries taken (each now held until now + hold_s).
_TAKE = """
local p, url, now, hold = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local due = p .. 'due:' .. url
local out = {}
for _, seq in ipairs(redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))) do
  local d = redis.call('HMGET', p .. 'd:' .. seq, 'msg_id', 'body', 'created', 'attempts')
  if d[1] then
    redis.call('ZADD', due, now + hold, seq)
    table.insert(out, seq)
    table.insert(out, d[1])
    table.insert(out, d[2])
    table.insert(out, d[3])
    table.insert(out, d[4])
  else
    redis.call('ZREM', due, seq)
  end
end
return out
"""

# ARGV: prefix, seq. The delivery is done (delivered or given up).
_DONE = """
local p, seq = ARGV[1], ARGV[2]
local d = redis.call('HMGET', p .. 'd:' .. seq, 'endpoint', 'tenant')
local url, tenant = d[1], d[2]
if not url then return 0 end
redis.call('DEL', p .. 'd:' .. seq)
redis.call('ZREM', p .. 'due:' .. url, seq)
if tenant and redis.call('ZREM', p .. 't:' .. tenant, seq) == 1 then
  redis.call('ZINCRBY', p .. 'tq', -1, tenant)
  redis.call('ZREMRANGEBYSCORE', p .. 'tq', '-inf', 0)
end
if (tonumber(redis.call('GET', p .. 'queued')) or 0) > 0 then redis.call('DECR', p .. 'queued') end
return 1
"""

# ARGV: prefix, seq, next due at. One more attempt failed.
_RETRY = """
local p, seq = ARGV[1], ARGV[2]
local url = redis.call('HGET', p .. 'd:' .. seq, 'endpoint')
if not url then return 0 end
redis.call('HINCRBY', p .. 'd:' .. seq, 'attempts', 1)
redis.call('ZADD', p .. 'due:' .. url, 'XX', ARGV[3], seq)
return 1
"""

# ARGV: prefix, owner, now, then session id and checkpoint (JSON) pairs: that owner's sessions.
_BEAT = """
local p, owner = ARGV[1], ARGV[2]
redis.call('ZADD', p .. 'owners', ARGV[3], owner)
for i = 4, #ARGV, 2 do
  if redis.call('HGET', p .. 'open', ARGV[i]) == owner then
    redis.call('HSET', p .. 'open_lost', ARGV[i], ARGV[i + 1])
  end
end
return tonumber(redis.call('GET', p .. 'queued')) or 0
"""

# ARGV: prefix, stale before. Returns session id, tenant, checkpoint, ... of the open sessions
# whose owner is unknown or stale, and forgets the stale owners.
_STALE = """
local p, before = ARGV[1], tonumber(ARGV[2])
local out = {}
local open = redis.call('HGETALL', p .. 'open')
for i = 1, #open, 2 do
  local beat = redis.call('ZSCORE', p .. 'owners', open[i + 1])
  if not beat or tonumber(beat) < before then
    table.insert(out, open[i])
    table.insert(out, redis.call('HGET', p .. 'open_tenant', open[i]) or '')
    table.insert(out, redis.call('HGET', p .. 'open_lost', open[i]) or '{}')
  end
end
redis.call('ZREMRANGEBYSCORE', p .. 'owners', '-inf', '(' .. ARGV[2])
return out
"""

# ARGV: prefix, session id. Returns {} (neither open nor recorded), {'open', its checkpoint} or
# {'ended', its usage record}: in one script, so a session ended meanwhile is found either way.
_SESSION = """
local p, sid = ARGV[1], ARGV[2]
local lost = redis.call('HGET', p .. 'open_lost', sid)
if lost then return {'open', lost} end
local msg = redis.call('GET', p .. 'usage_of:' .. sid)
local record = msg and redis.call('HGET', p .. 'usage', msg)
if record then return {'ended', record} end
return {}
"""

# ARGV: prefix, before. Usage records of sessions that ended before it are deleted.
_EXPIRE = """
local p = ARGV[1]
local old = redis.call('ZRANGEBYSCORE', p .. 'usage_at', '-inf', '(' .. ARGV[2], 'LIMIT', 0, 1000)
for _, msg in ipairs(old) do redis.call('HDEL', p .. 'usage', msg) end
if #old > 0 then redis.call('ZREM', p .. 'usage_at', unpack(old)) end
return #old
"""


def read_password(path: Path | None) -> str | None:
    """``cluster.redis_password_file``'s password (checked at start by ``cluster/choose.py``)."""
    return None if path is None else path.read_text().strip("\r\n")


def client(url: str, password: str | None) -> redis.Redis:
    return redis.Redis.from_url(
        url, password=password, socket_timeout=OP_TIMEOUT_S, socket_connect_timeout=OP_TIMEOUT_S
    )


class RedisEventStore:
    """``store.EventStore``'s job in Redis at ``url``. ``route`` names the endpoints an event goes to."""

    def __init__(
        self,
        url: str,
        password: str | None,
        route: Callable[[Event], Sequence[str]],
        *,
        max_queued: int,
        on_drop: OnDrop = no_report,
    ) -> None:
        self.url = url
        self._password = password
        self._route = route
        self.max_queued = max_queued
        #: deliveries dropped at a full queue (pushed out, or not queued), by tenant
        self._on_drop = on_drop
        self._r: redis.Redis | None = None
        #: deliveries waiting, every pod's, as last read (refreshed by ``beat``)
        self.queued = 0
        #: events (with their owner and checkpoint) that could not reach Redis, oldest first: written
        #: before any newer one, at the next ``add`` or ``beat`` that reaches it
        self._retry_at = 0.0
        self.spilled: collections.deque[tuple[Event, str, dict[str, Any] | None]] = collections.deque()

    def open(self) -> None:
        """Connect (redis-py's error if Redis cannot be reached: the server does not start)."""
        r = client(self.url, self._password)
        r.ping()
        self._r = r
        self._scripts = {
            name: r.register_script(text)
            for name, text in (
                ("add", _ADD),
                ("take", _TAKE),
                ("done", _DONE),
                ("retry", _RETRY),
                ("beat", _BEAT),
                ("stale", _STALE),
                ("expire", _EXPIRE),
                ("session", _SESSION),
            )
        }
        self.queued = int(r.get(PREFIX + "queued") or 0)

    @property
    def is_open(self) -> bool:
        return self._r is not None

    def close(self) -> None:
        if self._r is not None:
            self._r.close()
            self._r = None

    def _run(self, name: str, *args: Any) -> Any:
        assert self._r is not None, "RedisEventStore.open() first"
        return self._scripts[name](args=[PREFIX, *args])

    # -- writing events

    def add(self, event: Event, owner: str = "", lost: dict[str, Any] | None = None) -> int:
        """As ``EventStore.add``: the deliveries dropped (the queue was full). While Redis cannot
        be reached the event is kept in memory (at most ``MAX_SPILL``; beyond, the error is raised:
        dropped and counted by the outbox) and written, in order, once it can."""
        self.spilled.append((event, owner, lost))
        if len(self.spilled) > MAX_SPILL:
            self.spilled.pop()
            raise redis.ConnectionError(f"Redis unreachable and {MAX_SPILL} events wait for it")
        if len(self.spilled) > 1 and time.monotonic() < self._retry_at:
            return 0  # Redis failed a moment ago: no new try (each may take OP_TIMEOUT_S) per event
        return self.flush()

    def flush(self) -> int:
        """Write the kept events, oldest first, until Redis fails again; the deliveries dropped."""
        dropped = 0
        while self.spilled:
            event, owner, lost = self.spilled[0]
            try:
                dropped += max(0, self._add(event, owner, lost))
            except UNREACHABLE as e:
                if len(self.spilled) == 1:
                    logger.warning("webhooks: Redis unreachable (%s); events wait in memory for it", e)
                self._retry_at = time.monotonic() + RETRY_S
                return dropped
            self.spilled.popleft()
        return dropped

    def _add(self, event: Event, owner: str, lost: dict[str, Any] | None, kind: str = "") -> int:
        """The deliveries dropped, or -1: a ``session.ended`` whose session was already ended
        (``kind`` "lost": the sweep's, queued only while the session is open)."""
        if not kind:
            kind = "other"
            if event.session_id is not None:
                kind = {SESSION_STARTED: "started", SESSION_ENDED: "ended"}.get(event.type, "other")
        usage = ""
        if event.type == SESSION_ENDED:
            usage = json.dumps({"tenant": event.tenant, "ended": event.at, "data": event.data})
        endpoints = list(self._route(event))
        args = (event.session_id or "", owner, event.tenant, json.dumps(lost or {}), event.id, body_of(event))
        out = self._run("add", kind, *args, repr(event.at), self.max_queued, usage, *endpoints)
        if int(out[0]) < 0:
            if kind == "ended":
                logger.warning("session.ended of session %s skipped: it was already ended (as lost)", event.session_id)
            return -1
        dropped = {out[i].decode(): int(out[i + 1]) for i in range(1, len(out), 2)}
        for tenant, n in dropped.items():
            self._on_drop(tenant, n)
        total = sum(dropped.values())
        self.queued += len(endpoints) - total
        return total

    # -- deliveries

    def take_due(self, endpoint: str, now: float, limit: int, hold_s: float) -> list[Delivery]:
        """As ``EventStore.take_due``: held from every pod for ``hold_s`` (then any pod retries it)."""
        flat = self._run("take", endpoint, repr(now), limit, repr(hold_s))
        return [
            Delivery(
                int(flat[i]), endpoint, flat[i + 1].decode(), bytes(flat[i + 2]), float(flat[i + 3]), int(flat[i + 4])
            )
            for i in range(0, len(flat), 5)
        ]

    def next_due(self, endpoint: str) -> float | None:
        assert self._r is not None
        first = self._r.zrange(PREFIX + "due:" + endpoint, 0, 0, withscores=True)
        return float(first[0][1]) if first else None

    def delivered(self, seq: int) -> None:
        if self._run("done", seq):
            self.queued = max(0, self.queued - 1)

    def retry(self, seq: int, at: float) -> None:
        self._run("retry", seq, repr(at))

    # -- processes and their sessions

    def beat(self, owner: str, pid: int, now: float, lost: Sequence[tuple[str, str]]) -> None:
        """As ``EventStore.beat`` (``pid`` is not kept: pods do not share pids); first the events
        kept while Redis was unreachable."""
        if self.spilled:
            self.flush()
            if self.spilled:
                raise redis.ConnectionError(f"Redis unreachable: {len(self.spilled)} events wait for it")
        pairs = [x for sid, data in lost for x in (sid, data)]
        self.queued = int(self._run("beat", owner, repr(now), *pairs))

    def leave(self, owner: str) -> None:
        assert self._r is not None
        self._r.zrem(PREFIX + "owners", owner)

    def sweep(self, now: float, stale_s: float) -> int:
        """As ``EventStore.sweep``: each session whose process stopped beating is ended once, by
        whichever pod's script removes its open entry first."""
        flat = self._run("stale", repr(now - stale_s))
        ended = 0
        for i in range(0, len(flat), 3):
            session_id, tenant, lost = flat[i].decode(), flat[i + 1].decode(), json.loads(flat[i + 2])
            if self._add(Event(SESSION_ENDED, tenant, lost, session_id=session_id), "", None, "lost") >= 0:
                ended += 1
                logger.warning("session %s ended as lost: its process stopped without ending it", session_id)
        return ended

    def expire_usage(self, before: float) -> None:
        while self._run("expire", repr(before)) >= 1000:
            pass

    def session_data(self, session_id: str) -> dict[str, Any] | None:
        """As ``EventStore.session_data`` (an ended session's record is found by its id for a week:
        ``usage_of:<session>``); the events kept while Redis was unreachable written first (one of
        them may end it), else redis-py's error."""
        if self.spilled:
            self.flush()
            if self.spilled:
                raise redis.ConnectionError(f"Redis unreachable: {len(self.spilled)} events wait for it")
        out = self._run("session", session_id)
        if not out:
            return None
        kind, text = out[0].decode(), json.loads(out[1])
        return dict(text if kind == "open" else text["data"])


def usage_report_redis(
    url: str, password: str | None, tenant: str | None, since: float, until: float
) -> list[dict[str, Any]]:
    """``store.usage_report`` from the usage records in Redis."""
    r = client(url, password)
    try:
        ids = cast(list[bytes], r.zrangebyscore(PREFIX + "usage_at", since, f"({until}"))
        records = [json.loads(v) for v in (r.hmget(PREFIX + "usage", ids) if ids else []) if v is not None]
    finally:
        r.close()
    rows = [(x["tenant"], json.dumps(x["data"])) for x in records if tenant is None or x["tenant"] == tenant]
    return summed(sorted(rows, key=lambda x: x[0]))
