"""The doors' one shape: what each is built from (``DoorContext``) and what the host asks of it
(``Door``). The host (``host.py``) builds the configured doors from one context and then only
iterates them: start, describe, the ports for the ready file, health, drain, stop. Door-neutral:
no wire library, no door."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from translate_svc.cluster.store import ClusterStore
from translate_svc.jobs.worker import JobWorker
from translate_svc.recordings.service import Recordings
from translate_svc.session.manager import SessionManager
from translate_svc.settings import Settings
from translate_svc.transport.tokens.revocation import Revocation
from translate_svc.transport.tokens.store import TokenStore


@dataclass(frozen=True)
class DoorContext:
    """What every door is built from: the sessions it drives, the settings, the one token store
    (None: no tokens file), a new ``Revocation`` over it for each door that watches live streams
    (None without tokens), the cluster store, and ``reuse_port``: the front-end workers of one node listen on the
    same ports together (``SO_REUSEPORT``)."""

    sessions: SessionManager
    settings: Settings
    tokens: TokenStore | None
    revocation: Callable[[], Revocation | None]
    #: what crosses streams (two-party calls' legs, ...): the seam, whichever store runs
    cluster: ClusterStore
    reuse_port: bool = False
    #: the sessions' recordings, served by the recordings API (None: ``recordings.dir`` unset)
    recordings: Recordings | None = None
    #: background jobs, served by the jobs API (None: ``jobs.dir`` unset)
    jobs: JobWorker | None = None


class Door(Protocol):
    """A door of the process as the host drives it. Event loop only.

    The host's order: ``start`` each (health NOT_SERVING); ``set_serving(True)`` once the model is
    warm (``False`` when it dies); on SIGTERM ``drain`` each (NOT_SERVING for good), the live streams
    drain, ``stop`` each (calls in flight get what is left of the grace), and ``close`` each last."""

    async def start(self) -> None:
        """Listen."""

    def describe(self) -> list[str]:
        """Where it listens and how it is protected, as parts of the host's one line."""

    def ports(self) -> dict[str, int]:
        """The ports it listens on once started, by their key in the ready file (``port``,
        ``health_port``, ``http_port``)."""

    async def set_serving(self, serving: bool) -> None:
        """What its health says (a door without health: nothing)."""

    async def drain(self) -> None:
        """The drain begins: NOT_SERVING for good; the stream core refuses new streams."""

    async def stop(self, grace: float) -> None:
        """After the drain: stop listening; calls still in flight get ``grace`` seconds."""

    async def close(self) -> None:
        """Last of all (after every door stopped): what stays open to the end (a health port)."""


def address(host: str, port: int) -> str:
    """host:port, with brackets around an IPv6 address."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """Whether a listening address is this machine's loopback (a host name: taken as reachable)."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume it is reachable
