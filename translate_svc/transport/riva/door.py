"""The Riva-compatible door on the gRPC port: its services are added to the gRPC door's server
(``rpc.PortServices``), so they share its port, TLS, token interceptor (``permissions``), call
limits and lifetime (health, drain). The host (``../host.py``) builds it when ``server.riva`` is on
and hands it to the gRPC door."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc

from translate_svc.transport.door import DoorContext
from translate_svc.transport.riva.servicer import ASR_SERVICE, METHOD_PERMISSIONS, NMT_SERVICE, RivaServicer
from translate_svc.transport.tokens.file import Permission

__all__ = ["ASR_SERVICE", "METHOD_PERMISSIONS", "NMT_SERVICE", "RivaDoor"]


class RivaDoor:
    """The Riva services of one process (``rpc.PortServices``). Event loop only."""

    def __init__(self, ctx: DoorContext) -> None:
        self.servicer = RivaServicer(
            ctx.sessions,
            error_drain_s=ctx.settings.server.error_drain_s,
            tokens=ctx.tokens,
            revocation=ctx.revocation(),
        )
        self.permissions: Mapping[str, Permission] = METHOD_PERMISSIONS

    def handlers(self) -> Sequence[grpc.GenericRpcHandler]:
        return self.servicer.handlers()

    def describe(self) -> list[str]:
        return [f"Riva-compatible door ({NMT_SERVICE}, {ASR_SERVICE}.StreamingRecognize) on the same port"]
