"""Which cluster store a process runs, from its settings: the one place that picks an implementation
(``app.py`` for a single process, a node's worker for ``serve --workers N``; import-linter keeps the
doors and the sessions to ``store.py``).

- ``cluster.redis_url`` set: ``RedisStore`` (several pods; ``serve --workers N`` too: every worker
  is a holder of its own);
- else, a worker of a node (the hub's socket given): ``HubStore``;
- else: ``MemoryStore`` (one process).

Settings that cannot work are refused here, at start, with what to fix, never echoing the URL's
password.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from translate_svc.cluster.hub_client import HubStore
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.store import ClusterStore
from translate_svc.settings import ClusterSettings


class ClusterConfigError(Exception):
    """Cluster settings that cannot work (one line, saying what to fix)."""


def open_store(settings: ClusterSettings, *, hub: Path | None = None, worker: str = "") -> ClusterStore:
    """The store these settings ask for, not started yet (``start`` connects; it raises
    ``StoreUnavailable`` naming the store if it cannot be reached)."""
    if settings.redis_url is not None:
        # redis-py (and the OpenTelemetry it imports) only where Redis is used: a server with tracing
        # off imports no opentelemetry (tests/observability/test_tracing.py)
        from translate_svc.cluster.redis_store import RedisStore

        return RedisStore(
            check_redis_url(settings.redis_url),
            password=read_password(settings.redis_password_file),
            lease_s=settings.lease_s,
        )
    if settings.redis_password_file is not None:
        raise ClusterConfigError(
            "cluster.redis_password_file is set but cluster.redis_url is not: set both, or neither"
        )
    if hub is not None:
        return HubStore(hub, worker)
    return MemoryStore()


def open_node_store(hub: Path | None = None, worker: str = "") -> ClusterStore:
    """The node's own store, whatever the cluster's: the node's hub for a worker of a node, else this
    process's memory. The node's caps are counted there (``session/tenants/leases.py``), and a tenant's while
    Redis is lost with ``cluster.on_redis_loss=node``."""
    return HubStore(hub, worker) if hub is not None else MemoryStore()


def redis_location(settings: ClusterSettings) -> tuple[str | None, str | None]:
    """The pods' Redis (its URL, checked, and its password), or (None, None) without one: for what
    else keeps state there (the glossaries: ``glossaries/choose.py``)."""
    if settings.redis_url is None:
        return None, None
    return check_redis_url(settings.redis_url), read_password(settings.redis_password_file)


def check_redis_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        from translate_svc.cluster.redis_store import shown_url

        shown = shown_url(url) if parts.scheme in ("redis", "rediss") else "(not shown)"
        raise ClusterConfigError(
            f"cluster.redis_url {shown} is not a Redis URL: use redis://host:6379/0 (or rediss:// for TLS)"
        )
    return url


def read_password(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        text = path.read_text()
    except OSError as e:
        raise ClusterConfigError(f"cluster.redis_password_file {path}: {e.strerror or e}") from None
    password = text.strip("\r\n")
    if not password or "\n" in password:
        raise ClusterConfigError(f"cluster.redis_password_file {path}: put the password alone on one line")
    return password
