"""Which glossary store a process keeps, from its settings: the one place that picks an
implementation (``app.py`` for a single process, a node's worker for ``serve --workers N``, as
``cluster/choose.py`` picks the cluster store, which checks the Redis URL and reads its password).

- ``glossaries.enabled`` off: none;
- ``cluster.redis_url`` set: ``RedisGlossaries`` (every pod);
- else ``SqliteGlossaries`` in ``glossaries.data_dir`` (every worker of the node).
"""

from __future__ import annotations

from translate_svc.glossaries.sqlite_store import SqliteGlossaries
from translate_svc.glossaries.store import GlossaryConfigError, GlossaryStore
from translate_svc.settings import Settings


def open_glossaries(settings: Settings, redis_url: str | None, password: str | None) -> GlossaryStore | None:
    """The store, not started yet (``redis_url`` and ``password``: as ``cluster/choose.py`` checked
    and read them). Settings that cannot work: ``GlossaryConfigError``."""
    g = settings.glossaries
    if not g.enabled:
        return None
    if redis_url is not None:
        from translate_svc.glossaries.redis_store import RedisGlossaries

        return RedisGlossaries(redis_url, password, timeout_s=g.timeout_s)
    if g.data_dir is None:
        raise GlossaryConfigError(
            "glossaries.enabled needs somewhere to keep them: set glossaries.data_dir (one node), or cluster.redis_url"
        )
    return SqliteGlossaries(g.data_dir, timeout_s=g.timeout_s)
