"""What crosses streams (``Settings.cluster``): Redis, what a lost one costs, and leases."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field


class ClusterSettings(BaseModel):
    """What crosses streams (``translate_svc/cluster/``): rooms, two-party calls, tenant
    caps and audio budgets. One process keeps it in memory; ``serve --workers N`` in the node's hub
    (the supervisor); several pods share it in Redis when ``redis_url`` is set."""

    #: Redis 7 that every pod shares (``redis://host:6379/0``; ``rediss://`` for TLS); None: none
    #: (each node on its own). Checked at start (``cluster/choose.py``), where a refusal does not
    #: echo it: it may hold a password
    redis_url: str | None = None
    #: a file holding Redis's password (one line; read at start), so that it is in no environment
    #: variable and no process listing; a password in the URL works too
    redis_password_file: Path | None = None
    #: when Redis is lost mid-run: "node" goes on with this node's own caps and rooms (logged, on
    #: /metrics and health) until it is back; "refuse" refuses new calls (UNAVAILABLE, retry
    #: after). Either way, calls already admitted go on.
    on_redis_loss: Literal["node", "refuse"] = "node"
    #: a holder's leases (streams, rooms, listeners) and presence (a room's listeners, a call's leg)
    #: outlive it by at most this long when it dies without giving them back; renewed every third of it
    lease_s: float = Field(15.0, ge=1, le=300)
