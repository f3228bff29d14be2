"""The glossaries' byte budgets in both stores (issue 87 J12, ``glossaries/sqlite_store.py``,
``glossaries/redis_store.py``): a tenant's glossaries take at most ``max_tenant_bytes`` and every
tenant's together at most ``max_total_bytes``, counted as ``stored_bytes`` (the entries as stored
and the name) inside the write that adds them; a replace that grows is checked against what the
old one took, one that shrinks is always taken; a delete gives its bytes back. The SQLite file and
a real ``redis-server`` answer alike, and a store kept before the budgets is counted when opened.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis

from tests.support.redis_server import redis_server
from translate_svc.errors import Overloaded
from translate_svc.glossaries.model import Glossary, GlossaryEntry, GlossaryLimits, stored_bytes, stored_entries
from translate_svc.glossaries.redis_store import RedisGlossaries
from translate_svc.glossaries.sqlite_store import SqliteGlossaries
from translate_svc.glossaries.store import GlossaryStore

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def glossary(tenant: str, gid: str, n: int, name: str = "") -> Glossary:
    return Glossary(tenant, gid, name, tuple(GlossaryEntry(f"térm {k:03}", f"t {k:03}", "spa") for k in range(n)))


def size(g: Glossary) -> int:
    return stored_bytes(g.display_name, stored_entries(g.entries))


TEN = size(glossary("t", "x", 10))
LIMITS = GlossaryLimits(
    max_entries=100, max_glossaries=10, max_per_request=4, max_import_bytes=1 << 20, max_term_chars=40,
    max_tenant_bytes=3 * TEN, max_total_bytes=5 * TEN,
)  # fmt: skip


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GlossaryStore]:
    if request.param == "sqlite":
        s: GlossaryStore = SqliteGlossaries(tmp_path, timeout_s=5)
        await s.start()
        yield s
        await s.close()
    else:
        with redis_server() as r:
            s = RedisGlossaries(r.url, None, timeout_s=5)
            await s.start()
            yield s
            await s.close()


async def refused(call: object) -> str:
    with pytest.raises(Overloaded) as e:
        await call  # type: ignore[misc]
    return e.value.message


async def test_a_tenant_and_every_tenant_are_bounded_in_bytes(store: GlossaryStore) -> None:
    for k in range(3):
        await store.create(glossary("acme", f"g{k}", 10), LIMITS)
    message = await refused(store.create(glossary("acme", "g3", 1), LIMITS))
    assert message.startswith(f"tenant 'acme''s glossaries take {3 * TEN} bytes in the store; this one (")
    assert message.endswith(f"would take them past {3 * TEN} (glossaries.max_tenant_bytes): delete or shrink one first")
    await store.create(glossary("other", "g0", 10), LIMITS)
    await store.create(glossary("other", "g1", 10), LIMITS)
    message = await refused(store.create(glossary("third", "g0", 1), LIMITS))
    assert "(glossaries.max_total_bytes)" in message and "this server's glossary store is full" in message
    assert "acme" not in message and str(3 * TEN) not in message  # nothing of other tenants told
    # a replace that grows is checked against what it replaces; one that shrinks is taken
    message = await refused(store.replace(glossary("acme", "g0", 11), 0, LIMITS))
    assert "(glossaries.max_tenant_bytes)" in message
    await store.replace(glossary("acme", "g0", 10), 0, LIMITS)  # the same size: taken
    await store.replace(glossary("acme", "g0", 2), 0, LIMITS)
    await store.create(glossary("third", "g0", 5), LIMITS)  # what acme gave back
    # a delete gives its bytes back
    assert await store.delete("other", "g1")
    await store.create(glossary("third", "g1", 10), LIMITS)
    assert [s.id for s in await store.list("third")] == ["g0", "g1"]


async def test_a_sqlite_file_from_before_the_budgets_is_counted_when_opened(tmp_path: Path) -> None:
    old = sqlite3.connect(tmp_path / "glossaries.sqlite3")
    old.execute(
        "CREATE TABLE glossaries (tenant TEXT NOT NULL, id TEXT NOT NULL, display_name TEXT NOT NULL, "
        "revision INTEGER NOT NULL, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, "
        "entry_count INTEGER NOT NULL, targets TEXT NOT NULL, entries TEXT NOT NULL, PRIMARY KEY (tenant, id))"
    )
    g = glossary("acme", "old", 10, name="Ñame")
    old.execute(
        "INSERT INTO glossaries VALUES (?,?,?,?,?,?,?,?,?)",
        ("acme", "old", g.display_name, 1, 0, 0, 10, '["spa"]', stored_entries(g.entries)),
    )
    old.commit()
    old.close()
    store = SqliteGlossaries(tmp_path, timeout_s=5)
    await store.start()
    try:
        assert (await store.get("acme", "old")) is not None
        await store.create(glossary("acme", "a", 10), LIMITS)
        message = await refused(store.create(glossary("acme", "b", 10), LIMITS))
        assert f"take {size(g) + TEN} bytes" in message
    finally:
        await store.close()


async def test_redis_glossaries_from_before_the_budgets_are_counted_once() -> None:
    with redis_server() as r:
        g = glossary("acme", "old", 10, name="Ñame")
        store = RedisGlossaries(r.url, None, timeout_s=5)
        await store.start()
        await store.create(g, LIMITS)
        await store.close()
        raw = redis.Redis.from_url(r.url)  # as a server before the budgets kept it: no bytes counted
        raw.hdel("translate-svc:glossary:acme:old", "bytes")
        raw.delete(
            "translate-svc:glossary-bytes:acme", "translate-svc:glossary-bytes", "translate-svc:glossary-bytes-counted"
        )
        for _ in range(2):  # two servers start: counted once
            store = RedisGlossaries(r.url, None, timeout_s=5)
            await store.start()
            await store.close()
        assert int(raw.get("translate-svc:glossary-bytes:acme") or 0) == size(g)
        assert int(raw.get("translate-svc:glossary-bytes") or 0) == size(g)
        raw.close()
