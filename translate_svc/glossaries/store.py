"""Where glossaries are kept (issue 73): the ``GlossaryStore`` seam and its two implementations,
chosen by ``open_glossary_store`` from the settings:

- ``SqliteGlossaries`` (``sqlite_store.py``): one node, an SQLite file in ``glossaries.data_dir``
  (WAL: every worker of the node opens it; a write is one transaction);
- ``RedisGlossaries`` (``redis_store.py``): several pods sharing ``cluster.redis_url``.

Neither caches: a request reads the glossaries it names when it starts, so a change is seen by
every stream, clip and text call that starts after it, on every worker and pod. Every call is
bounded in time (``glossaries.timeout_s``): a store that does not answer raises UNAVAILABLE.
Event loop only.
"""

from __future__ import annotations

from typing import Protocol

from translate_svc.glossaries.model import Glossary, Summary


class GlossaryConfigError(Exception):
    """Glossary settings that cannot work (one line, saying what to fix)."""


class GlossaryStore(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, glossary: Glossary, max_glossaries: int) -> None:
        """Keep a new glossary: ``AlreadyExists`` if its tenant has one of that id, ``Overloaded``
        if its tenant has ``max_glossaries`` already."""
        ...

    async def get(self, tenant: str, glossary_id: str) -> Glossary | None: ...

    async def list(self, tenant: str) -> list[Summary]:
        """The tenant's glossaries, by id."""
        ...

    async def replace(self, glossary: Glossary, expected_revision: int) -> Glossary:
        """Its entries and name replaced (revision + 1): ``NotFound`` if there is none;
        ``Conflict`` if ``expected_revision`` (0: any) is not the current one."""
        ...

    async def delete(self, tenant: str, glossary_id: str) -> bool:
        """Whether there was one to delete."""
        ...
