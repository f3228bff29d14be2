"""The pods' glossaries in Redis (``cluster.redis_url``): a hash per glossary
(``translate-svc:glossary:<tenant>:<id>``: ``meta``, its JSON without the entries; ``rev``, its
revision; ``entries``, compact JSON; ``bytes``, what it counts in the byte budgets), a set of each
tenant's ids (``translate-svc:glossaries:<tenant>``) and the bytes counted, each tenant's
(``translate-svc:glossary-bytes:<tenant>``) and every tenant's (``translate-svc:glossary-bytes``).
Creating, replacing and deleting are Lua scripts, each atomic in Redis (the tenant's caps, the byte
budgets and the expected revision checked inside). Entries become JSON and back on a thread of the
store's own, not on the event loop. Every call is bounded by ``timeout_s``: a Redis that does not
answer raises UNAVAILABLE, naming it (never its password). Glossaries kept before the byte budgets
are counted once, by the first server that starts (``COUNT_OLD``). Event loop only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from translate_svc.errors import AlreadyExists, Conflict, NotFound, NotReady
from translate_svc.glossaries.model import (
    Glossary,
    GlossaryLimits,
    Summary,
    entries_from_json,
    stored_bytes,
    stored_entries,
)
from translate_svc.glossaries.store import over_tenant_bytes, over_total_bytes, too_many

T = TypeVar("T")

PREFIX = "translate-svc:"
#: every tenant's glossary bytes (a tenant's: ``BYTES:<tenant>``)
BYTES = f"{PREFIX}glossary-bytes"
#: set once the glossaries kept before the byte budgets are counted
COUNTED = f"{PREFIX}glossary-bytes-counted"

# KEYS: the glossary's hash, the tenant's set, the tenant's bytes, every tenant's bytes; ARGV: id,
# meta, entries, cap, size, tenant's most bytes, every tenant's most. {0} made, {1} exists, {2} full,
# {3, held} over the tenant's bytes, {4, held} over every tenant's
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {2} end
local size = tonumber(ARGV[5])
local mine = tonumber(redis.call('GET', KEYS[3]) or '0')
if mine + size > tonumber(ARGV[6]) then return {3, mine} end
local all = tonumber(redis.call('GET', KEYS[4]) or '0')
if all + size > tonumber(ARGV[7]) then return {4, all} end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'rev', 1, 'entries', ARGV[3], 'bytes', size)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('INCRBY', KEYS[3], size)
redis.call('INCRBY', KEYS[4], size)
return {0}
"""
# KEYS: the glossary's hash, the tenant's bytes, every tenant's bytes; ARGV: expected revision (0:
# any), meta (its revision left to this script: the JSON's "revision" is a placeholder), entries,
# size, the tenant's most bytes, every tenant's most. {new revision}, {-1} missing, {-2, current
# revision} when the expected one is not it, {-3, held} / {-4, held} over a byte budget (only when
# it grows)
REPLACE = """
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev then return {-1} end
rev = tonumber(rev)
local want = tonumber(ARGV[1])
if want ~= 0 and want ~= rev then return {-2, rev} end
local size = tonumber(ARGV[4])
local old = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
if size > old then
  local mine = tonumber(redis.call('GET', KEYS[2]) or '0')
  if mine - old + size > tonumber(ARGV[5]) then return {-3, mine - old} end
  local all = tonumber(redis.call('GET', KEYS[3]) or '0')
  if all - old + size > tonumber(ARGV[6]) then return {-4, all - old} end
end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'rev', rev + 1, 'entries', ARGV[3], 'bytes', size)
redis.call('INCRBY', KEYS[2], size - old)
redis.call('INCRBY', KEYS[3], size - old)
return {rev + 1}
"""
# KEYS: the glossary's hash, the tenant's set, the tenant's bytes, every tenant's bytes; ARGV: id
DELETE = """
local old = tonumber(redis.call('HGET', KEYS[1], 'bytes') or '0')
local gone = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
if gone == 1 and old > 0 then
  redis.call('DECRBY', KEYS[3], old)
  redis.call('DECRBY', KEYS[4], old)
end
return gone
"""
# KEYS: a glossary's hash kept before the byte budgets, the tenant's bytes, every tenant's bytes:
# its bytes counted (``stored_bytes``: its entries' and its name's UTF-8 bytes), once
COUNT_OLD = """
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'bytes') == 1 then return 0 end
local size = redis.call('HSTRLEN', KEYS[1], 'entries') + #cjson.decode(redis.call('HGET', KEYS[1], 'meta'))['name']
redis.call('HSET', KEYS[1], 'bytes', size)
redis.call('INCRBY', KEYS[2], size)
redis.call('INCRBY', KEYS[3], size)
return 1
"""


class RedisGlossaries:
    """``GlossaryStore`` for several pods (see the module)."""

    def __init__(self, url: str, password: str | None, *, timeout_s: float) -> None:
        parts = urlsplit(url)  # for messages: the URL without its password
        self.shown = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"
        self.timeout_s = timeout_s
        self._client = aioredis.Redis.from_url(
            url, password=password, socket_connect_timeout=timeout_s, socket_timeout=timeout_s
        )
        self._create = self._client.register_script(CREATE)
        self._replace = self._client.register_script(REPLACE)
        self._delete = self._client.register_script(DELETE)
        self._count_old = self._client.register_script(COUNT_OLD)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="glossaries-json")

    async def _off_loop(self, fn: Callable[[], T]) -> T:
        """``fn`` (entries to JSON and back) on the store's thread, not the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def _run(self, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await call
        except (TimeoutError, RedisError, OSError) as e:
            raise NotReady(
                f"the glossaries' store (Redis at {self.shown}) did not answer ({type(e).__name__}): retry shortly",
                retry_after_ms=1000,
            ) from None

    @staticmethod
    def _key(tenant: str, glossary_id: str) -> str:
        return f"{PREFIX}glossary:{tenant}:{glossary_id}"

    @staticmethod
    def _set(tenant: str) -> str:
        return f"{PREFIX}glossaries:{tenant}"

    @staticmethod
    def _bytes(tenant: str) -> str:
        return f"{BYTES}:{tenant}"

    async def start(self) -> None:
        await self._run(self._client.ping())
        if not await self._run(self._client.exists(COUNTED)):
            await self._count_kept()

    async def _count_kept(self) -> None:
        """Count the bytes of the glossaries kept before the byte budgets (each once, whoever
        starts meanwhile), then mark them counted."""
        async for name in self._client.scan_iter(match=f"{PREFIX}glossaries:*", count=500):
            tenant = (name.decode() if isinstance(name, bytes) else str(name))[len(f"{PREFIX}glossaries:") :]
            members: set[Any] = await self._run(self._client.smembers(self._set(tenant)))
            for i in members:
                gid = i.decode() if isinstance(i, bytes) else str(i)
                keys = [self._key(tenant, gid), self._bytes(tenant), BYTES]
                await self._run(self._count_old(keys=keys, args=[]))
        await self._run(self._client.set(COUNTED, 1))

    async def close(self) -> None:
        await self._client.aclose()
        self._pool.shutdown(wait=False)

    async def create(self, glossary: Glossary, limits: GlossaryLimits) -> None:
        g = glossary
        meta, entries, size = await self._off_loop(lambda: _stored(g))
        keys = [self._key(g.tenant, g.id), self._set(g.tenant), self._bytes(g.tenant), BYTES]
        args: list[str | int] = [
            g.id,
            meta,
            entries,
            limits.max_glossaries,
            size,
            limits.max_tenant_bytes,
            limits.max_total_bytes,
        ]
        got = [int(x) for x in await self._run(self._create(keys=keys, args=args))]
        if got[0] == 1:
            raise AlreadyExists(f"glossary {g.id!r} exists: replace it, or create one of another id")
        if got[0] == 2:
            raise too_many(g.tenant, limits.max_glossaries)
        if got[0] == 3:
            raise over_tenant_bytes(g.tenant, got[1], size, limits.max_tenant_bytes)
        if got[0] == 4:
            raise over_total_bytes(size, limits.max_total_bytes)

    async def get(self, tenant: str, glossary_id: str) -> Glossary | None:
        got: list[Any] = await self._run(self._client.hmget(self._key(tenant, glossary_id), ["meta", "rev", "entries"]))
        meta, rev, entries = got
        if meta is None or rev is None or entries is None:
            return None
        m = json.loads(meta)
        kept = await self._off_loop(lambda: entries_from_json(json.loads(entries)))
        return Glossary(tenant, glossary_id, m["name"], kept, int(rev), m["created"], m["updated"])

    async def version(self, tenant: str, glossary_id: str) -> tuple[int, int] | None:
        got: list[Any] = await self._run(self._client.hmget(self._key(tenant, glossary_id), ["rev", "meta"]))
        rev, meta = got
        if rev is None or meta is None:
            return None
        return int(rev), int(json.loads(meta)["updated"])

    async def list(self, tenant: str) -> list[Summary]:
        members: set[Any] = await self._run(self._client.smembers(self._set(tenant)))
        ids = sorted(i.decode() if isinstance(i, bytes) else str(i) for i in members)
        if not ids:
            return []
        pipe = self._client.pipeline(transaction=False)
        for i in ids:
            pipe.hmget(self._key(tenant, i), ["meta", "rev"])
        rows: list[Any] = await self._run(pipe.execute())
        out = []
        for i, (meta, rev) in zip(ids, rows, strict=True):
            if meta is None or rev is None:
                continue  # deleted meanwhile
            m = json.loads(meta)
            out.append(Summary(i, m["name"], m["count"], tuple(m["targets"]), int(rev), m["created"], m["updated"]))
        return out

    async def replace(self, glossary: Glossary, expected_revision: int, limits: GlossaryLimits) -> Glossary:
        g = glossary
        old = await self._run(self._client.hmget(self._key(g.tenant, g.id), ["meta"]))
        if old[0] is None:
            raise NotFound(f"no glossary {g.id!r}: create it first (ListGlossaries shows the tenant's)")
        created = int(json.loads(old[0])["created"])
        new = Glossary(g.tenant, g.id, g.display_name, g.entries, 0, created, int(time.time() * 1000))
        meta, entries, size = await self._off_loop(lambda: _stored(new))
        keys = [self._key(g.tenant, g.id), self._bytes(g.tenant), BYTES]
        args: list[str | int] = [
            expected_revision,
            meta,
            entries,
            size,
            limits.max_tenant_bytes,
            limits.max_total_bytes,
        ]
        got = [int(x) for x in await self._run(self._replace(keys=keys, args=args))]
        if got[0] == -1:
            raise NotFound(f"no glossary {g.id!r}: create it first (ListGlossaries shows the tenant's)")
        if got[0] == -2:
            raise Conflict(
                f"glossary {g.id!r} is at revision {got[1]}, not {expected_revision}: read it again, then replace it"
            )
        if got[0] == -3:
            raise over_tenant_bytes(g.tenant, got[1], size, limits.max_tenant_bytes)
        if got[0] == -4:
            raise over_total_bytes(size, limits.max_total_bytes)
        return Glossary(new.tenant, new.id, new.display_name, new.entries, got[0], new.created_ms, new.updated_ms)

    async def delete(self, tenant: str, glossary_id: str) -> bool:
        keys = [self._key(tenant, glossary_id), self._set(tenant), self._bytes(tenant), BYTES]
        return bool(int(await self._run(self._delete(keys=keys, args=[glossary_id]))))


def _meta(g: Glossary) -> str:
    return json.dumps(
        {
            "name": g.display_name,
            "count": len(g.entries),
            "targets": list(g.target_languages),
            "created": g.created_ms,
            "updated": g.updated_ms,
        }
    )


def _stored(g: Glossary) -> tuple[str, str, int]:
    """Its meta, its entries as stored, and its bytes (on the store's thread)."""
    entries = stored_entries(g.entries)
    return _meta(g), entries, stored_bytes(g.display_name, entries)
