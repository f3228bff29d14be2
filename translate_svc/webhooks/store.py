"""The events' durable queue and the usage records, in one SQLite file (``webhooks.data_dir``/
``events.sqlite3``): what survives a restart and what ``translate-svc usage`` answers from.

Tables: ``outbox`` (one row per event and endpoint, with the event's tenant, until delivered,
given up or pushed out), ``open_sessions``
(a started session not yet ended: its owner process and what its ``session.ended`` would say if
that process died now), ``owners`` (each process's heartbeat) and ``usage`` (one row per
``session.ended``, kept ``usage_retention_days``, found by tenant and time or by session). A
``session.ended`` is written only together with the deletion of its open row, in one
transaction: whoever ends a session (its own process, or another that found its owner dead) ends
it once. Several processes of one node may share the file
(``serve --workers N``; WAL mode, writers serialized by SQLite); each delivery takes its rows with
a hold (``take_due``), so two processes never send one row at once.

The queue holds ``max_queued`` deliveries, every tenant's together; when it is full, a new one
takes the place of the oldest delivery of the tenant with the most waiting (its own oldest when
that is its own tenant, ties included): a tenant whose sessions flood the queue while a receiver
is slow loses its own oldest events, never another tenant's, so each keeps at least an equal
share (security finding H6: one tenant's flood dropped every other tenant's ``session.ended``). Each
delivery pushed out is reported to ``on_drop`` (tenant, count). The tenants' counts are kept in
memory (recounted at every ``beat``: other processes of the node add too), the oldest found by
the ``(tenant, seq)`` index.

Synchronous and blocking: call it from one thread (``outbox.Outbox``'s), never the event loop.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translate_svc.webhooks.events import SESSION_ENDED, SESSION_STARTED, Event, iso

logger = logging.getLogger(__name__)

FILE_NAME = "events.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    type TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    tenant TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (endpoint, next_at);
CREATE TABLE IF NOT EXISTS open_sessions (
    session_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    tenant TEXT NOT NULL,
    lost TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS open_owner ON open_sessions (owner);
CREATE TABLE IF NOT EXISTS owners (owner TEXT PRIMARY KEY, pid INTEGER NOT NULL, beat REAL NOT NULL);
CREATE TABLE IF NOT EXISTS usage (
    msg_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    door TEXT NOT NULL,
    session_id TEXT NOT NULL,
    ended REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_tenant ON usage (tenant, ended);
CREATE INDEX IF NOT EXISTS usage_session ON usage (session_id);
"""
#: after ``_SCHEMA`` and the ``tenant`` column, which a file made by an older version lacks
_TENANT_INDEX = "CREATE INDEX IF NOT EXISTS outbox_tenant ON outbox (tenant, seq)"
#: a report of deliveries pushed out of a full queue: (tenant, how many)
OnDrop = Callable[[str, int], None]


def no_report(tenant: str, n: int) -> None:
    pass


@dataclass(frozen=True)
class Delivery:
    """One queued delivery: an event's body for one endpoint."""

    seq: int
    endpoint: str
    msg_id: str
    body: bytes
    created: float
    attempts: int


def body_of(event: Event) -> bytes:
    """The payload every endpoint gets (Standard Webhooks' suggested shape: type, timestamp, data)."""
    return json.dumps({"type": event.type, "timestamp": iso(event.at), "data": event.data}).encode()


class EventStore:
    """The SQLite file of one node's data dir. ``route`` names the endpoints an event goes to."""

    def __init__(
        self,
        directory: Path,
        route: Callable[[Event], Sequence[str]],
        *,
        max_queued: int,
        on_drop: OnDrop = no_report,
    ) -> None:
        self.path = directory / FILE_NAME
        self._route = route
        self.max_queued = max_queued
        self._on_drop = on_drop
        self._db: sqlite3.Connection | None = None
        #: rows in ``outbox`` as last counted (refreshed by ``beat``: other processes add too)
        self.queued = 0
        #: the same by tenant
        self.tenants: Counter[str] = Counter()
        #: deliveries pushed out by the write in progress, by tenant (reported once it commits)
        self._dropped: Counter[str] = Counter()

    def open(self) -> None:
        """Open (or make) the file; OSError naming it and ``webhooks.data_dir`` if it cannot be."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            if "tenant" not in {row[1] for row in db.execute("PRAGMA table_info(outbox)")}:
                db.execute("ALTER TABLE outbox ADD COLUMN tenant TEXT NOT NULL DEFAULT ''")
            db.execute(_TENANT_INDEX)
        except (OSError, sqlite3.Error) as e:
            raise OSError(
                f"webhooks.data_dir: cannot open {self.path} ({e}): give the server a writable directory"
            ) from e
        self._db = db
        self._recount()

    @property
    def is_open(self) -> bool:
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        assert self._db is not None, "EventStore.open() first"
        return self._db

    def _recount(self) -> None:
        rows = self.db.execute("SELECT tenant, COUNT(*) FROM outbox GROUP BY tenant").fetchall()
        self.tenants = Counter({tenant: int(n) for tenant, n in rows})
        self.queued = sum(self.tenants.values())

    # -- writing events

    def add(self, event: Event, owner: str = "", lost: dict[str, Any] | None = None) -> int:
        """Queue ``event`` for its endpoints (and, for the session events, open or close its
        session, and keep its usage record). Returns the deliveries dropped: the queue was full.
        A ``session.ended`` whose session is no longer open (ended as lost meanwhile) is skipped."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if event.type == SESSION_STARTED and event.session_id is not None:
                db.execute(
                    "INSERT OR REPLACE INTO open_sessions VALUES (?, ?, ?, ?)",
                    (event.session_id, owner, event.tenant, json.dumps(lost or {})),
                )
            elif event.type == SESSION_ENDED and event.session_id is not None:
                gone = db.execute("DELETE FROM open_sessions WHERE session_id = ?", (event.session_id,)).rowcount
                if not gone:
                    db.execute("COMMIT")
                    logger.warning(
                        "session.ended of session %s skipped: it was already ended (as lost)", event.session_id
                    )
                    return 0
            dropped = self._queue(event)
            db.execute("COMMIT")
        except BaseException:
            self._rolled_back()
            raise
        self._report()
        return dropped

    def _queue(self, event: Event) -> int:
        db = self.db
        if event.type == SESSION_ENDED:
            db.execute(
                "INSERT OR IGNORE INTO usage VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.tenant,
                    str(event.data.get("door", "")),
                    event.session_id or "",
                    event.at,
                    json.dumps(event.data),
                ),
            )
        endpoints = self._route(event)
        if not endpoints:
            return 0
        if self.queued + len(endpoints) > self.max_queued:
            self._recount()  # exact before pushing anything out (other processes add too)
        body = body_of(event)
        dropped = 0
        for url in endpoints:
            if self.queued >= self.max_queued and not self._make_room(event.tenant):
                dropped += 1
                self._dropped[event.tenant] += 1
                continue
            db.execute(
                "INSERT INTO outbox (endpoint, msg_id, type, body, created, next_at, tenant) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (url, event.id, event.type, body, event.at, event.at, event.tenant),
            )
            self.queued += 1
            self.tenants[event.tenant] += 1
        return dropped

    def _make_room(self, tenant: str) -> bool:
        """Push out the oldest delivery of the tenant with the most waiting (``tenant``'s own when it
        has as many), reported to ``on_drop`` once the write commits; False if there is none (the queue's rows predate
        tenants, or it holds nothing)."""
        if not self.tenants:
            return False
        top, most = self.tenants.most_common(1)[0]
        victim = tenant if self.tenants[tenant] >= most else top
        row = self.db.execute("SELECT seq FROM outbox WHERE tenant = ? ORDER BY seq LIMIT 1", (victim,)).fetchone()
        if row is None:  # the count was stale: another process delivered them
            del self.tenants[victim]
            return self._make_room(tenant) if self.tenants else False
        self.db.execute("DELETE FROM outbox WHERE seq = ?", (row[0],))
        self.queued -= 1
        self._less(victim)
        self._dropped[victim] += 1
        return True

    def _report(self) -> None:
        """The deliveries pushed out by a committed write, to ``on_drop``."""
        dropped, self._dropped = self._dropped, Counter()
        for tenant, n in dropped.items():
            self._on_drop(tenant, n)

    def _rolled_back(self) -> None:
        self.db.execute("ROLLBACK")
        self._dropped.clear()
        self._recount()

    def _less(self, tenant: str) -> None:
        self.tenants[tenant] -= 1
        if self.tenants[tenant] <= 0:
            del self.tenants[tenant]

    # -- deliveries

    def take_due(self, endpoint: str, now: float, limit: int, hold_s: float) -> list[Delivery]:
        """Up to ``limit`` deliveries due for ``endpoint``, held for ``hold_s`` (not taken again,
        here or by another process, until then: a process that dies mid-send has them retried)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(
                "SELECT seq, endpoint, msg_id, body, created, attempts FROM outbox "
                "WHERE endpoint = ? AND next_at <= ? ORDER BY next_at LIMIT ?",
                (endpoint, now, limit),
            ).fetchall()
            db.executemany("UPDATE outbox SET next_at = ? WHERE seq = ?", [(now + hold_s, r[0]) for r in rows])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return [Delivery(*r) for r in rows]

    def next_due(self, endpoint: str) -> float | None:
        row = self.db.execute("SELECT MIN(next_at) FROM outbox WHERE endpoint = ?", (endpoint,)).fetchone()
        return None if row[0] is None else float(row[0])

    def delivered(self, seq: int) -> None:
        gone = self.db.execute("DELETE FROM outbox WHERE seq = ? RETURNING tenant", (seq,)).fetchall()
        if gone:
            self.queued = max(0, self.queued - 1)
            self._less(gone[0][0])

    def retry(self, seq: int, at: float) -> None:
        self.db.execute("UPDATE outbox SET attempts = attempts + 1, next_at = ? WHERE seq = ?", (at, seq))

    # -- processes and their sessions

    def beat(self, owner: str, pid: int, now: float, lost: Sequence[tuple[str, str]]) -> None:
        """``owner`` (a process) is alive: its heartbeat, and each of its live sessions' checkpoint
        (``lost``: session id, what its ``session.ended`` would say if the process died now)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("INSERT OR REPLACE INTO owners VALUES (?, ?, ?)", (owner, pid, now))
            db.executemany(
                "UPDATE open_sessions SET lost = ? WHERE session_id = ? AND owner = ?",
                [(data, sid, owner) for sid, data in lost],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._recount()

    def leave(self, owner: str) -> None:
        """``owner`` stopped on purpose (its sessions ended first)."""
        self.db.execute("DELETE FROM owners WHERE owner = ?", (owner,))

    def sweep(self, now: float, stale_s: float) -> int:
        """End every open session whose owner has not beaten for ``stale_s`` (a killed process) or
        is unknown, from its last checkpoint: ``session.ended`` with ``ending: lost``. Returns how
        many were ended."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            rows = db.execute(
                "SELECT s.session_id, s.tenant, s.lost FROM open_sessions s LEFT JOIN owners o ON o.owner = s.owner "
                "WHERE o.beat IS NULL OR o.beat < ?",
                (now - stale_s,),
            ).fetchall()
            for session_id, tenant, lost in rows:
                db.execute("DELETE FROM open_sessions WHERE session_id = ?", (session_id,))
                self._queue(Event(SESSION_ENDED, tenant, json.loads(lost), session_id=session_id))
            db.execute("DELETE FROM owners WHERE beat < ?", (now - stale_s,))
            db.execute("COMMIT")
        except BaseException:
            self._rolled_back()
            raise
        self._report()
        for session_id, _, _ in rows:
            logger.warning("session %s ended as lost: its process stopped without ending it", session_id)
        return len(rows)

    def expire_usage(self, before: float) -> None:
        self.db.execute("DELETE FROM usage WHERE ended < ?", (before,))

    def session_data(self, session_id: str) -> dict[str, Any] | None:
        """What the usage records say of ``session_id`` now: its last checkpoint while it is open
        (what its ``session.ended`` would say if its process died), its ``session.ended`` once it
        ended; None if neither (never started here, or its record expired). Read open first: a
        session ends in one transaction that closes it and records it, so it is found either way."""
        row = self.db.execute("SELECT lost FROM open_sessions WHERE session_id = ?", (session_id,)).fetchone()
        if row is None:
            row = self.db.execute(
                "SELECT data FROM usage WHERE session_id = ? ORDER BY ended DESC LIMIT 1", (session_id,)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))


def usage_report(directory: Path, tenant: str | None, since: float, until: float) -> list[dict[str, Any]]:
    """Each tenant's usage (``tenant``: that one only) from the sessions that ended in
    [``since``, ``until``), summed from the records the ``session.ended`` webhooks carried."""
    path = directory / FILE_NAME
    if not path.exists():
        raise FileNotFoundError(f"no usage records at {path}: is webhooks.data_dir this directory?")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        query = "SELECT tenant, data FROM usage WHERE ended >= ? AND ended < ?"
        args: tuple[Any, ...] = (since, until)
        if tenant is not None:
            query += " AND tenant = ?"
            args += (tenant,)
        rows = db.execute(query + " ORDER BY tenant, ended", args).fetchall()
    finally:
        db.close()
    return summed(rows)


def summed(rows: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Each tenant's usage summed from (tenant, ``session.ended`` data as JSON) rows, in tenant order."""
    out: dict[str, dict[str, Any]] = {}
    for name, data in rows:
        usage = json.loads(data).get("usage", {})
        t = out.setdefault(
            name,
            {
                "tenant": name,
                "sessions": 0,
                "audio_in_s": 0.0,
                "speech_out_s": {},
                "segments": 0,
                "text_in_chars": 0,
                "text_out_chars": {},
            },
        )
        t["sessions"] += 1
        t["audio_in_s"] += usage.get("audio_in_s", 0.0)
        t["segments"] += usage.get("segments_total", 0)
        t["text_in_chars"] += usage.get("text_in_chars", 0)
        for key in ("speech_out_s", "text_out_chars"):
            for lang, v in usage.get(key, {}).items():
                t[key][lang] = t[key].get(lang, 0) + v
    return list(out.values())
