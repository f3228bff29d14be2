"""The Riva-compatible door on the gRPC port: its services are added to the gRPC door's server, so
they share its port, TLS, token interceptor (``METHOD_PERMISSIONS``), call limits and lifetime
(health, drain). The host (``../host.py``) builds it when ``server.riva`` is on."""

from __future__ import annotations

from typing import Any

from translate_svc.session.manager import SessionManager
from translate_svc.settings import Settings
from translate_svc.transport.riva.servicer import ASR_SERVICE, METHOD_PERMISSIONS, NMT_SERVICE, RivaServicer
from translate_svc.transport.tokens import Revocation, TokenStore

__all__ = ["ASR_SERVICE", "METHOD_PERMISSIONS", "NMT_SERVICE", "RivaDoor"]


class RivaDoor:
    """The Riva services of one process. Event loop only."""

    def __init__(
        self, sessions: SessionManager, settings: Settings, tokens: TokenStore | None, revocation: Revocation | None
    ) -> None:
        self.servicer = RivaServicer(
            sessions, error_drain_s=settings.server.error_drain_s, tokens=tokens, revocation=revocation
        )

    def attach(self, server: Any) -> None:
        """Add the services to the gRPC port's server (before it starts)."""
        server.add_generic_rpc_handlers(self.servicer.handlers())

    def describe(self) -> list[str]:
        return [f"Riva-compatible door ({NMT_SERVICE}, {ASR_SERVICE}.StreamingRecognize) on the same port"]
