"""The OpenAI-compatible door on the HTTP port (``server.http_port``): the realtime WebSocket
(``realtime.py``), its WebRTC flow (``webrtc.py``), client secrets (``client_secrets.py``) and the
demo page (``demo.py``), on one aiohttp application. The host (``../host.py``) builds it from the
settings, the shared token store and revocation, and drives its lifetime.
"""

from __future__ import annotations

from translate_svc.session.manager import SessionManager
from translate_svc.settings import Settings
from translate_svc.transport.openai.client_secrets import ClientSecrets
from translate_svc.transport.openai.demo import DemoPage, page_url
from translate_svc.transport.openai.realtime import PATH, RealtimeDoor, tls_context
from translate_svc.transport.openai.webrtc import WebRtcDoor
from translate_svc.transport.tokens import Revocation, TokenStore


class OpenAIDoor:
    """The HTTP port's doors. Event loop only."""

    def __init__(
        self,
        sessions: SessionManager,
        settings: Settings,
        tokens: TokenStore | None,
        revocation: Revocation | None,
    ) -> None:
        self.settings = settings
        auth = settings.auth
        secrets = ClientSecrets(auth.client_secret_key, auth.client_secret_ttl_s)
        self.realtime = RealtimeDoor(sessions, tokens, secrets, revocation)
        self.webrtc = WebRtcDoor(sessions, self.realtime.app, PATH, self.realtime.authorize)
        if settings.server.demo_page:
            DemoPage(sessions, self.realtime.app, secrets)

    async def start(self, *, reuse_port: bool) -> int:
        s = self.settings.server
        assert s.http_port is not None
        tls = None
        if s.tls_cert_file is not None and s.tls_key_file is not None:
            tls = tls_context(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
        return await self.realtime.start(s.host, s.http_port, reuse_port=reuse_port, tls=tls)

    def describe(self, where: str) -> list[str]:
        """``where``: the port's host:port as the host writes it."""
        s = self.settings.server
        tls = s.tls_cert_file is not None and s.tls_key_file is not None
        parts = [f"OpenAI-compatible realtime door on {'wss' if tls else 'ws'}://{where}{PATH}"]
        if s.demo_page:
            page = page_url(s.host, self.realtime.port, tls=tls)
            parts.append(f"demo page on {page} (it mints client secrets for anyone who reaches it)")
        return parts

    async def stop(self) -> None:
        """After the drain: the WebRTC calls, then the sockets and the port."""
        await self.webrtc.close()
        await self.realtime.stop()
