"""The OpenAI-compatible route set on the HTTP port (``server.http_port``): OpenAI's realtime
translation protocol over a WebSocket (``GET /v1/realtime/translations?model=...``, JSON events in
and out, as ``openai``'s ``client.realtime.translations.connect()`` speaks them), client secrets for
browsers (``POST .../client_secrets``), its WebRTC flow (``webrtc.py``), realtime transcription
sessions (``transcription_door.py``), the audio REST endpoints (``audio_api.py``) and the demo page
(``demo.py``). The host (``../host.py``) builds it and hands it to the HTTP port's door
(``../http/door.py``: ``HttpDoor``), which owns the application and the port.

This module is the route set: its routes, who may open a session, and the connect. The protocol is
``protocol.py`` (sans I/O), a session's I/O ``loop.py``; what every route set of the port shares
is ``../http/``.

Tokens are the gRPC door's (``Authorization: Bearer``, or a browser's
``openai-insecure-api-key.<token>`` subprotocol entry; permission ``stream``), checked before the
WebSocket upgrade by the port's one caller check (``http.caller.Authorizer``), and so are a
browser's Origin (``limits.http_allowed_origins``) and the stream's slots
(``SessionManager.admit_stream``): a refused handshake is an HTTP 401, 403, 429 or 503 (400 for
subprotocols it cannot serve) with an OpenAI-shaped JSON body, and no socket is opened.
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.door import DoorContext
from translate_svc.transport.http.body import read_body
from translate_svc.transport.http.caller import Authorizer, Caller
from translate_svc.transport.http.door import Served
from translate_svc.transport.http.responses import http_error
from translate_svc.transport.http.websocket import OpenSockets
from translate_svc.transport.openai.audio_api import PATHS as AUDIO_PATHS
from translate_svc.transport.openai.audio_api import AudioApi
from translate_svc.transport.openai.demo import DemoPage, page_url
from translate_svc.transport.openai.detections import PATH as DETECTIONS_PATH
from translate_svc.transport.openai.detections import DetectionApi
from translate_svc.transport.openai.loop import admit_and_serve, card_or_none
from translate_svc.transport.openai.mint import MAX_SESSION_CHARS, SHAPE, BadRequest, parse_request
from translate_svc.transport.openai.protocol import RealtimeProtocol
from translate_svc.transport.openai.transcription_door import PATH as TRANSCRIPTION_PATH
from translate_svc.transport.openai.transcription_door import TranscriptionSessions
from translate_svc.transport.openai.webrtc import WebRtcDoor
from translate_svc.transport.openai.wire import REALTIME

logger = logging.getLogger(__name__)

PATH = "/v1/realtime/translations"
#: the most a mint request's body may hold (aiohttp's own ``client_max_size``)
MINT_MAX_BYTES = 1024 * 1024


class OpenAIRoutes:
    """The OpenAI-compatible routes of the HTTP port (an ``http.door.RouteSet``). ``callers``: the
    port's one caller check, with its client secrets. Event loop only."""

    def __init__(self, ctx: DoorContext, callers: Authorizer) -> None:
        settings, sessions = ctx.settings, ctx.sessions
        self.settings = settings
        self._m = sessions
        self.callers = callers
        self.secrets = callers.secrets
        #: its open WebSockets (closed when the port stops)
        self.sockets = OpenSockets()
        self.webrtc = WebRtcDoor(sessions, PATH, self.authorize)
        self.demo = DemoPage(sessions, self.secrets) if settings.server.demo_page else None
        # OpenAI's realtime transcription sessions and the audio REST endpoints
        self.transcription = TranscriptionSessions(sessions, self.authorize, self.sockets)
        self.audio = AudioApi(sessions, callers)
        self.detections = DetectionApi(sessions, callers)  # our own: is a clip our marked speech?

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(PATH, self._connect)
        router.add_post(PATH + "/client_secrets", self._mint)
        self.webrtc.add_routes(router)
        if self.demo is not None:
            self.demo.add_routes(router)
        self.transcription.add_routes(router)
        self.audio.add_routes(router)
        self.detections.add_routes(router)

    def describe(self, served: Served) -> list[str]:
        parts = [
            f"OpenAI-compatible realtime door on {served.url(PATH, socket=True)}",
            f"realtime transcription sessions on {served.url(TRANSCRIPTION_PATH, socket=True)}",
            "audio endpoints on " + " and ".join(served.url(p) for p in AUDIO_PATHS.values()),
            f"speech watermark detection on {served.url(DETECTIONS_PATH)}",
        ]
        if self.demo is not None:
            page = page_url(served.host, served.port, tls=served.tls)
            parts.append(f"demo page on {page} (it mints client secrets for anyone who reaches it)")
        return parts

    async def stop(self) -> None:
        """After the drain: the WebRTC calls, then the sockets still open."""
        await self.webrtc.close()
        await self.sockets.close_all()

    def authorize(
        self, request: web.Request, *, secret_ok: bool = True, what: str = "a realtime session"
    ) -> Caller | web.Response:
        """Who may open a realtime session (``secret_ok``: a client secret will do), or the HTTP
        error to answer with (``Authorizer.authorize_request``, with OpenAI's ``realtime``
        subprotocol)."""
        return self.callers.authorize_request(request, what=what, protocol=REALTIME, secret_ok=secret_ok)

    async def _mint(self, request: web.Request) -> web.Response:
        """A short-lived client secret for a browser (a server token with ``stream`` mints it;
        a client secret cannot mint another)."""
        caller = self.authorize(request, secret_ok=False)
        if isinstance(caller, web.Response):
            return caller
        raw = await read_body(
            request,
            MINT_MAX_BYTES,
            self._m.limits.http_header_timeout_s,
            too_large=f"the request's body is too large: {SHAPE}, the session at most {MAX_SESSION_CHARS} characters",
            what="a client secret",
        )
        if isinstance(raw, web.Response):
            return raw
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON (nor UTF-8), or nested deeper than Python's parser goes
            body = None
        try:
            asked, session = parse_request(body)
        except BadRequest as e:
            return http_error(400, str(e), "invalid_value")
        value, expires = self.secrets.mint(asked, tenant=caller.tenant.name)
        return web.json_response({"value": value, "expires_at": expires, "session": {"type": "translation", **session}})

    async def _connect(self, request: web.Request) -> web.StreamResponse:
        caller = self.authorize(request)
        if isinstance(caller, web.Response):
            return caller
        limits = self._m.limits
        call = call_info(request.headers.get(REQUEST_ID), "realtime", request.remote or "")
        protocol = RealtimeProtocol(
            request.query.get("model", ""),
            request.query.get("source_language"),
            self._m.vad_defaults,
            max_languages=limits.max_target_languages,
            max_append_bytes=limits.ws_max_append_bytes,
            chunk_bytes=limits.max_chunk_bytes,
            card=card_or_none(self._m),
            limits=limits,
            resume_lead_in=request.query.get("x_resume_lead_in_ms"),
        )
        resume = request.query.get("x_resume") or None
        return await admit_and_serve(request, self._m, protocol, caller, call, resume=resume, sockets=self.sockets)
