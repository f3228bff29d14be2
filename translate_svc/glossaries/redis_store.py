"""The pods' glossaries in Redis (``cluster.redis_url``): a hash per glossary
(``translate-svc:glossary:<tenant>:<id>``: ``meta``, its JSON without the entries; ``rev``, its
revision; ``entries``, compact JSON) and a set of each tenant's ids
(``translate-svc:glossaries:<tenant>``). Creating, replacing and deleting are Lua scripts, each
atomic in Redis (the tenant's cap and the expected revision checked inside). Every call is bounded
by ``timeout_s``: a Redis that does not answer raises UNAVAILABLE, naming it (never its password).
Event loop only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from translate_svc.errors import AlreadyExists, Conflict, NotFound, NotReady, Overloaded
from translate_svc.glossaries.model import Glossary, Summary, entries_from_json, entries_json

T = TypeVar("T")

PREFIX = "translate-svc:"

# KEYS: the glossary's hash, the tenant's set; ARGV: id, meta, entries, cap. 0 made, 1 exists, 2 full
CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 2 end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'rev', 1, 'entries', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 0
"""
# KEYS: the glossary's hash; ARGV: expected revision (0: any), meta (its revision left to this
# script: the JSON's "revision" is a placeholder), entries. Returns the new revision, -1 missing,
# or -(2 + the current revision) when the expected one is not it
REPLACE = """
local rev = redis.call('HGET', KEYS[1], 'rev')
if not rev then return -1 end
rev = tonumber(rev)
local want = tonumber(ARGV[1])
if want ~= 0 and want ~= rev then return -(2 + rev) end
redis.call('HSET', KEYS[1], 'meta', ARGV[2], 'rev', rev + 1, 'entries', ARGV[3])
return rev + 1
"""
# KEYS: the glossary's hash, the tenant's set; ARGV: id
DELETE = """
local gone = redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return gone
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

    async def start(self) -> None:
        await self._run(self._client.ping())

    async def close(self) -> None:
        await self._client.aclose()

    async def create(self, glossary: Glossary, max_glossaries: int) -> None:
        g = glossary
        keys = [self._key(g.tenant, g.id), self._set(g.tenant)]
        got = await self._run(self._create(keys=keys, args=[g.id, _meta(g), _entries(g), max_glossaries]))
        if int(got) == 1:
            raise AlreadyExists(f"glossary {g.id!r} exists: replace it, or create one of another id")
        if int(got) == 2:
            raise Overloaded(
                f"tenant {g.tenant!r} has {max_glossaries} glossaries, its most (glossaries.max_glossaries): "
                "delete one first"
            )

    async def get(self, tenant: str, glossary_id: str) -> Glossary | None:
        got: list[Any] = await self._run(self._client.hmget(self._key(tenant, glossary_id), ["meta", "rev", "entries"]))
        meta, rev, entries = got
        if meta is None or rev is None or entries is None:
            return None
        m = json.loads(meta)
        return Glossary(
            tenant, glossary_id, m["name"], entries_from_json(json.loads(entries)), int(rev), m["created"], m["updated"]
        )

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

    async def replace(self, glossary: Glossary, expected_revision: int) -> Glossary:
        g = glossary
        old = await self.get(g.tenant, g.id)
        if old is None:
            raise NotFound(f"no glossary {g.id!r}: create it first (ListGlossaries shows the tenant's)")
        new = Glossary(g.tenant, g.id, g.display_name, g.entries, 0, old.created_ms, int(time.time() * 1000))
        got = int(
            await self._run(
                self._replace(keys=[self._key(g.tenant, g.id)], args=[expected_revision, _meta(new), _entries(new)])
            )
        )
        if got == -1:
            raise NotFound(f"no glossary {g.id!r}: create it first (ListGlossaries shows the tenant's)")
        if got < -1:
            raise Conflict(
                f"glossary {g.id!r} is at revision {-got - 2}, not {expected_revision}: read it again, then replace it"
            )
        return Glossary(new.tenant, new.id, new.display_name, new.entries, got, new.created_ms, new.updated_ms)

    async def delete(self, tenant: str, glossary_id: str) -> bool:
        keys = [self._key(tenant, glossary_id), self._set(tenant)]
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


def _entries(g: Glossary) -> str:
    return json.dumps(entries_json(g.entries), ensure_ascii=False, separators=(",", ":"))
