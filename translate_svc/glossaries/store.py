"""Where glossaries are kept: the ``GlossaryStore`` seam and its two implementations,
chosen by ``open_glossary_store`` from the settings:

- ``SqliteGlossaries`` (``sqlite_store.py``): one node, an SQLite file in ``glossaries.data_dir``
  (WAL: every worker of the node opens it; a write is one transaction);
- ``RedisGlossaries`` (``redis_store.py``): several pods sharing ``cluster.redis_url``.

Neither caches: the book (``book.py``) keeps what it read by glossary and revision, and reads
the revision of each glossary a request names as the request starts, so a change is seen by every
stream, clip and text call that starts after it, on every worker and pod. Every call is bounded
in time (``glossaries.timeout_s``): a store that does not answer raises UNAVAILABLE. Entries are
turned into JSON and back on the store's own thread, never on the event loop. Each glossary
counts its ``stored_bytes`` in its tenant's and the store's byte budgets (security finding J12), checked
inside the write that adds them.
Event loop only.
"""

from __future__ import annotations

from typing import Protocol

from translate_svc.errors import Overloaded
from translate_svc.glossaries.model import Glossary, GlossaryLimits, Summary


class GlossaryConfigError(Exception):
    """Glossary settings that cannot work (one line, saying what to fix)."""


class GlossaryStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, glossary: Glossary, limits: GlossaryLimits) -> None:
        """Keep a new glossary: ``AlreadyExists`` if its tenant has one of that id, ``Overloaded``
        if its tenant has ``max_glossaries`` already, or it would take its tenant's bytes past
        ``max_tenant_bytes`` or the store's past ``max_total_bytes``."""
        ...

    async def get(self, tenant: str, glossary_id: str) -> Glossary | None: ...

    async def version(self, tenant: str, glossary_id: str) -> tuple[int, int] | None:
        """Its revision and when it was last written (Unix ms; None: there is none): one small
        read, without its entries. Both, since a glossary deleted and created again on another
        worker starts again at revision 1."""
        ...

    async def list(self, tenant: str) -> list[Summary]:
        """The tenant's glossaries, by id."""
        ...

    async def replace(self, glossary: Glossary, expected_revision: int, limits: GlossaryLimits) -> Glossary:
        """Its entries and name replaced (revision + 1): ``NotFound`` if there is none;
        ``Conflict`` if ``expected_revision`` (0: any) is not the current one; ``Overloaded`` if
        what it grows by takes a byte budget past its bound (shrinking one is always taken)."""
        ...

    async def delete(self, tenant: str, glossary_id: str) -> bool:
        """Whether there was one to delete."""
        ...


def too_many(tenant: str, most: int) -> Overloaded:
    return Overloaded(
        f"tenant {tenant!r} has {most} glossaries, its most (glossaries.max_glossaries): delete one first"
    )


def over_tenant_bytes(tenant: str, held: int, size: int, most: int) -> Overloaded:
    return Overloaded(
        f"tenant {tenant!r}'s glossaries take {held} bytes in the store; this one ({size} bytes as stored) would "
        f"take them past {most} (glossaries.max_tenant_bytes): delete or shrink one first"
    )


def over_total_bytes(size: int, most: int) -> Overloaded:
    return Overloaded(
        f"this server's glossary store is full: this glossary ({size} bytes as stored) would take every "
        f"tenant's together past {most} bytes (glossaries.max_total_bytes): delete one, or ask the operator"
    )
