"""A node's glossaries in an SQLite file (``<glossaries.data_dir>/glossaries.sqlite3``): one row per
glossary, its entries as one compact JSON value and what it counts in the byte budgets
(``bytes``). WAL and a busy timeout let every worker of the node open the same file; each write is
one ``BEGIN IMMEDIATE`` transaction (the tenant's caps and the file's byte budget are counted
inside it). The calls run on one thread of the store's own, entries turned into JSON and back
there too (not on the event loop); each is bounded by ``timeout_s``. A file from before the byte
budgets gets its ``bytes`` column, counted, when it is opened.
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
  bytes INTEGER,
  PRIMARY KEY (tenant, id)
)
"""
#: what a row counts in the byte budgets, for rows kept before they were counted (``stored_bytes``:
#: SQLite keeps text as UTF-8)
COUNT_BYTES = (
    "UPDATE glossaries SET bytes = length(CAST(entries AS BLOB)) + length(CAST(display_name AS BLOB)) "
    "WHERE bytes IS NULL"
)
COLUMNS = "tenant, id, display_name, revision, created_ms, updated_ms, entry_count, targets, entries, bytes"


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
        db.execute("BEGIN IMMEDIATE")  # one worker of the node adds the column, and counts the rows
        try:
            if "bytes" not in {row[1] for row in db.execute("PRAGMA table_info(glossaries)")}:
                db.execute("ALTER TABLE glossaries ADD COLUMN bytes INTEGER")
            db.execute(COUNT_BYTES)
        finally:
            db.execute("COMMIT")
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

    async def create(self, glossary: Glossary, limits: GlossaryLimits) -> None:
        g = glossary

        def write(db: sqlite3.Connection) -> tuple[str, int, int]:
            row = _row(g)
            size = int(str(row[-1]))
            db.execute("BEGIN IMMEDIATE")
            try:
                if db.execute("SELECT 1 FROM glossaries WHERE tenant=? AND id=?", (g.tenant, g.id)).fetchone():
                    return "exists", 0, size
                n, held = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM glossaries WHERE tenant=?", (g.tenant,)
                ).fetchone()
                if n >= limits.max_glossaries:
                    return "full", 0, size
                if held + size > limits.max_tenant_bytes:
                    return "tenant bytes", held, size
                (everyone,) = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM glossaries").fetchone()
                if everyone + size > limits.max_total_bytes:
                    return "total bytes", everyone, size
                db.execute(f"INSERT INTO glossaries ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", row)
                return "ok", 0, size
            finally:
                db.execute("COMMIT")

        outcome, held, size = await self._run(write)
        if outcome == "exists":
            raise AlreadyExists(f"glossary {g.id!r} exists: replace it, or create one of another id")
        _refuse(outcome, g, held, size, limits)

    async def get(self, tenant: str, glossary_id: str) -> Glossary | None:
        def read(db: sqlite3.Connection) -> Glossary | None:
            row: tuple[object, ...] | None = db.execute(
                "SELECT display_name, revision, created_ms, updated_ms, entries FROM glossaries "
                "WHERE tenant=? AND id=?",
                (tenant, glossary_id),
            ).fetchone()
            if row is None:
                return None
            name, revision, created, updated, entries = row
            return Glossary(
                tenant,
                glossary_id,
                str(name),
                entries_from_json(json.loads(str(entries))),  # on the store's thread
                int(str(revision)),
                int(str(created)),
                int(str(updated)),
            )

        return await self._run(read)

    async def version(self, tenant: str, glossary_id: str) -> tuple[int, int] | None:
        def read(db: sqlite3.Connection) -> tuple[int, int] | None:
            row = db.execute(
                "SELECT revision, updated_ms FROM glossaries WHERE tenant=? AND id=?", (tenant, glossary_id)
            ).fetchone()
            return None if row is None else (int(row[0]), int(row[1]))

        return await self._run(read)

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

    async def replace(self, glossary: Glossary, expected_revision: int, limits: GlossaryLimits) -> Glossary:
        g = glossary

        def write(db: sqlite3.Connection) -> Glossary | tuple[str, int, int]:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT revision, created_ms, COALESCE(bytes, 0) FROM glossaries WHERE tenant=? AND id=?",
                    (g.tenant, g.id),
                ).fetchone()
                if row is None:
                    return "missing", 0, 0
                revision, created, old = int(row[0]), int(row[1]), int(row[2])
                if expected_revision and expected_revision != revision:
                    return f"revision {revision}", 0, 0
                new = Glossary(g.tenant, g.id, g.display_name, g.entries, revision + 1, created, _now_ms())
                values = _row(new)
                size = int(str(values[-1]))
                if size > old:  # a glossary that shrinks is always taken
                    (held,) = db.execute(
                        "SELECT COALESCE(SUM(bytes), 0) FROM glossaries WHERE tenant=?", (g.tenant,)
                    ).fetchone()
                    if held - old + size > limits.max_tenant_bytes:
                        return "tenant bytes", held - old, size
                    (everyone,) = db.execute("SELECT COALESCE(SUM(bytes), 0) FROM glossaries").fetchone()
                    if everyone - old + size > limits.max_total_bytes:
                        return "total bytes", everyone - old, size
                db.execute("DELETE FROM glossaries WHERE tenant=? AND id=?", (g.tenant, g.id))
                db.execute(f"INSERT INTO glossaries ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", values)
                return new
            finally:
                db.execute("COMMIT")

        outcome = await self._run(write)
        if isinstance(outcome, Glossary):
            return outcome
        what, held, size = outcome
        if what == "missing":
            raise NotFound(f"no glossary {g.id!r}: create it first (ListGlossaries shows the tenant's)")
        if what.startswith("revision"):
            raise Conflict(f"glossary {g.id!r} is at {what}, not {expected_revision}: read it again, then replace it")
        _refuse(what, g, held, size, limits)
        raise AssertionError(what)  # pragma: no cover

    async def delete(self, tenant: str, glossary_id: str) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM glossaries WHERE tenant=? AND id=?", (tenant, glossary_id)).rowcount > 0

        return await self._run(write)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _row(g: Glossary) -> tuple[object, ...]:
    """The glossary's row (on the store's thread: its entries become JSON here)."""
    entries = stored_entries(g.entries)
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
        stored_bytes(g.display_name, entries),
    )


def _refuse(outcome: str, g: Glossary, held: int, size: int, limits: GlossaryLimits) -> None:
    """A write's outcome other than done, as its refusal (``ok``: none)."""
    if outcome == "full":
        raise too_many(g.tenant, limits.max_glossaries)
    if outcome == "tenant bytes":
        raise over_tenant_bytes(g.tenant, held, size, limits.max_tenant_bytes)
    if outcome == "total bytes":
        raise over_total_bytes(size, limits.max_total_bytes)
