"""A node's glossaries in an SQLite file (``<glossaries.data_dir>/glossaries.sqlite3``): one row per
glossary, its entries as one compact JSON value. WAL and a busy timeout let every worker of the node
open the same file; each write is one ``BEGIN IMMEDIATE`` transaction (the tenant's cap is counted
inside it). The calls run on one thread of the store's own; each is bounded by ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from translate_svc.errors import AlreadyExists, Conflict, NotFound, NotReady, Overloaded
from translate_svc.glossaries.model import Glossary, Summary, entries_from_json, entries_json

T = TypeVar("T")

FILE = "glossaries.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS glossaries (
  tenant TEXT NOT NULL,
  id TEXT NOT NULL,
  display_name TEXT NOT NULL,
  revision INTEGER NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  entry_count INTEGER NOT NULL,
  targets TEXT NOT NULL,
  entries TEXT NOT NULL,
  PRIMARY KEY (tenant, id)
)
"""


class SqliteGlossaries:
    """``GlossaryStore`` on one node (see the module). Event loop only; its SQLite connection is
    used on its one thread only."""

    def __init__(self, data_dir: Path, *, timeout_s: float) -> None:
        self.path = data_dir / FILE
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="glossaries")
        self._db: sqlite3.Connection | None = None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(SCHEMA)
        self._db = db

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._db is not None
            return fn(self._db)

        try:
            async with asyncio.timeout(self.timeout_s):
                return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except (TimeoutError, sqlite3.OperationalError) as e:
            raise NotReady(
                f"the glossaries' store ({self.path}) did not answer ({e or 'timed out'}): retry shortly",
                retry_after_ms=1000,
            ) from None

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._open)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.get_running_loop().run_in_executor(self._pool, db.close)
        self._pool.shutdown(wait=False)

    async def create(self, glossary: Glossary, max_glossaries: int) -> None:
        g = glossary

        def write(db: sqlite3.Connection) -> str:
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT 1 FROM glossaries WHERE tenant=? AND id=?", (g.tenant, g.id)).fetchone():
                    return "exists"
                (n,) = db.execute("SELECT COUNT(*) FROM glossaries WHERE tenant=?", (g.tenant,)).fetchone()
                if n >= max_glossaries:
                    return "full"
                db.execute("INSERT INTO glossaries VALUES (?,?,?,?,?,?,?,?,?)", _row(g))
                return "ok"
            finally:
                db.execute("COMMIT")

        outcome = await self._run(write)
        if outcome == "exists":
            raise AlreadyExists(f"glossary {g.id!r} exists: replace it, or create one of another id")
        if outcome == "full":
            raise Overloaded(
                f"tenant {g.tenant!r} has {max_glossaries} glossaries, its most (glossaries.max_glossaries): "
                "delete one first"
            )

    async def get(self, tenant: str, glossary_id: str) -> Glossary | None:
        def read(db: sqlite3.Connection) -> tuple[object, ...] | None:
            row: tuple[object, ...] | None = db.execute(
                "SELECT display_name, revision, created_ms, updated_ms, entries FROM glossaries "
                "WHERE tenant=? AND id=?",
                (tenant, glossary_id),
            ).fetchone()
            return row

        row = await self._run(read)
        if row is None:
            return None
        name, revision, created, updated, entries = row
        return Glossary(
            tenant,
            glossary_id,
            str(name),
            entries_from_json(json.loads(str(entries))),
            int(str(revision)),
            int(str(created)),
            int(str(updated)),
        )

    async def list(self, tenant: str) -> list[Summary]:
        def read(db: sqlite3.Connection) -> list[tuple[object, ...]]:
            return db.execute(
                "SELECT id, display_name, entry_count, targets, revision, created_ms, updated_ms FROM glossaries "
                "WHERE tenant=? ORDER BY id",
                (tenant,),
            ).fetchall()

        return [
            Summary(str(i), str(n), int(str(c)), tuple(json.loads(str(t))), int(str(r)), int(str(cr)), int(str(u)))
            for i, n, c, t, r, cr, u in await self._run(read)
        ]

    async def replace(self, glossary: Glossary, expected_revision: int) -> Glossary:
        g = glossary

        def write(db: sqlite3.Connection) -> Glossary | str:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT revision, created_ms FROM glossaries WHERE tenant=? AND id=?", (g.tenant, g.id)
                ).fetchone()
                if row is None:
                    return "missing"
                revision, created = int(row[0]), int(row[1])
                if expected_revision and expected_revision != revision:
                    return f"revision {revision}"
                new = Glossary(g.tenant, g.id, g.display_name, g.entries, revision + 1, created, _now_ms())
                db.execute("DELETE FROM glossaries WHERE tenant=? AND id=?", (g.tenant, g.id))
                db.execute("INSERT INTO glossaries VALUES (?,?,?,?,?,?,?,?,?)", _row(new))
                return new
            finally:
                db.execute("COMMIT")

        outcome = await self._run(write)
        if outcome == "missing":
            raise NotFound(f"no glossary {g.id!r}: create it first (ListGlossaries shows the tenant's)")
        if isinstance(outcome, str):
            raise Conflict(
                f"glossary {g.id!r} is at {outcome}, not {expected_revision}: read it again, then replace it"
            )
        return outcome

    async def delete(self, tenant: str, glossary_id: str) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM glossaries WHERE tenant=? AND id=?", (tenant, glossary_id)).rowcount > 0

        return await self._run(write)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _row(g: Glossary) -> tuple[object, ...]:
    entries = json.dumps(entries_json(g.entries), ensure_ascii=False, separators=(",", ":"))
    return (
        g.tenant,
        g.id,
        g.display_name,
        g.revision,
        g.created_ms,
        g.updated_ms,
        len(g.entries),
        json.dumps(list(g.target_languages)),
        entries,
    )
