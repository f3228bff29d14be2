"""Glossary imports at once in one process. A create's, replace's or import's file (a
CSV or a TBX of up to ``glossaries.max_import_bytes``, 16 MiB) is held whole while it comes and
while it is parsed, so a process takes at most ``glossaries.max_imports`` of them at once, and
one tenant at most ``glossaries.max_imports_per_tenant`` of those; beyond, the call is refused at
once (RESOURCE_EXHAUSTED, or 429, with a retry delay), before any byte of its file is read. What
the process holds of files is then at most ``max_imports`` times ``max_import_bytes`` whatever the
number of tenants or callers (their unary caps alone allowed 64 calls a tenant). Per process,
like the memory it bounds. Event loop only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from translate_svc.errors import Overloaded

#: an ``ImportGlossary`` message at most: its header, or a chunk of the file and its framing
#: (``ServerLimits.glossary_import_message_bytes``); the client sends the file in chunks within it
IMPORT_MESSAGE_BYTES = 64 * 1024
#: how soon a refused import is asked to try again
RETRY_MS = 2000


class ImportSlots:
    """The imports a process takes at once: ``most`` in all, ``per_tenant`` of one tenant."""

    def __init__(self, most: int, per_tenant: int) -> None:
        self.most = most
        self.per_tenant = per_tenant
        self._tenants: dict[str, int] = {}
        self.held = 0

    @contextlib.contextmanager
    def taken(self, tenant: str) -> Iterator[None]:
        """One import of ``tenant`` in the block; ``Overloaded`` when the process or the tenant is
        at its cap."""
        mine = self._tenants.get(tenant, 0)
        if mine >= self.per_tenant:
            raise Overloaded(
                f"tenant {tenant!r} has {mine} glossary imports in progress on this server process "
                "(glossaries.max_imports_per_tenant): send them one after another",
                retry_after_ms=RETRY_MS,
            )
        if self.held >= self.most:
            raise Overloaded(
                f"this server process is taking {self.held} glossary imports at once "
                "(glossaries.max_imports): retry in a moment",
                retry_after_ms=RETRY_MS,
            )
        self._tenants[tenant] = mine + 1
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1
            left = self._tenants[tenant] - 1
            if left:
                self._tenants[tenant] = left
            else:
                del self._tenants[tenant]
