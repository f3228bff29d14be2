"""The process's file descriptors (RLIMIT_NOFILE, ``ulimit -n``) as the ports that hold one per
connection share them: the HTTP port (``limits.http_max_connections``) and SIP over TCP
and TLS (``sip.max_tcp_connections``, both of its ports together) take, together, at most half of
them; the other half stays for the gRPC port, the calls' RTP sockets, the model's files and the
engine. When the settings ask for more than that half, each port gets its share of it in
proportion to what it asked for (a warning names the settings and what each port takes).

Before this budget the HTTP port alone was held to half, and the SIP door to a constant of 1,024:
under ``ulimit -n 1024`` its connections took every descriptor, and every door failed (security
finding H2). Door-neutral; pure but for reading the limit.
"""

from __future__ import annotations

import logging
import resource
from collections.abc import Mapping

from translate_svc.settings import Settings

logger = logging.getLogger(__name__)

#: the share of RLIMIT_NOFILE the connection-holding ports take together
PORTS_SHARE = 0.5


def open_files_limit() -> int | None:
    """This process's soft RLIMIT_NOFILE; None: unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def shares(wants: Mapping[str, int], limit: int | None) -> dict[str, int]:
    """Each port's cap: what it asks for while the ports together stay within ``PORTS_SHARE`` of
    ``limit`` (None: unlimited), else its share of that in proportion to what it asked (at least 1)."""
    budget = None if limit is None else max(len(wants), int(limit * PORTS_SHARE))
    total = sum(wants.values())
    if budget is None or total <= budget:
        return dict(wants)
    return {name: max(1, budget * want // total) for name, want in wants.items()}


def connection_caps(settings: Settings, limit: int | None = None) -> dict[str, int]:
    """The connection caps of the ports this process serves (``http``, ``sip``), sized together
    from RLIMIT_NOFILE (``limit`` given: that instead); a warning when a setting was lowered."""
    wants: dict[str, int] = {}
    if settings.server.http_port is not None:
        wants["http"] = settings.limits.http_max_connections
    if settings.sip.port is not None:
        wants["sip"] = settings.sip.max_tcp_connections
    limit = open_files_limit() if limit is None else limit
    caps = shares(wants, limit)
    if caps != wants:
        setting = {"http": "limits.http_max_connections", "sip": "sip.max_tcp_connections"}
        logger.warning(
            "the ports' connection caps ask for %d connections, more than half of this process's %s file descriptors "
            "(ulimit -n): %s",
            sum(wants.values()),
            limit,
            "; ".join(f"{setting[k]}={wants[k]} takes at most {caps[k]}" for k in wants),
        )
    return caps
