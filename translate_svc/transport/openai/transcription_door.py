"""Realtime transcription sessions on the HTTP port: ``GET /v1/realtime?intent=transcription`` (or
any ``/v1/realtime`` connection whose ``session.update`` says ``type: "transcription"``), a
WebSocket of OpenAI's transcription protocol (``transcription.py``), as the ``openai`` SDK's
``client.realtime.connect(extra_query={"intent": "transcription"})`` and the beta
``client.beta.realtime.connect(...)`` open it.

Who may connect is the translation sessions' rule (``OpenAIRoutes.authorize``: tokens with
``stream``, client secrets, the browser's Origin), checked before the upgrade; so are the stream's slots
(``SessionManager.admit_stream``): a refused handshake is an HTTP 401, 403, 429 or 503 with an
OpenAI-shaped body. The session then runs on the translation sessions' loop (``loop.py``): the same
limits, idle timeout, drain, revocation and access line (method ``realtime_transcription``).
Event loop only.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from translate_svc.session.manager import SessionManager
from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.http.caller import Caller
from translate_svc.transport.http.responses import http_error
from translate_svc.transport.http.websocket import OpenSockets
from translate_svc.transport.openai.loop import admit_and_serve, card_or_none
from translate_svc.transport.openai.transcription import TranscriptionProtocol

PATH = "/v1/realtime"
#: the access line's method
METHOD = "realtime_transcription"

Authorize = Callable[[web.Request], Caller | web.Response]


class TranscriptionSessions:
    """The route of transcription sessions."""

    def __init__(self, manager: SessionManager, authorize: Authorize, sockets: OpenSockets) -> None:
        self._m = manager
        self._authorize = authorize
        #: the route set's open sockets (closed when the port stops)
        self._sockets = sockets

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(PATH, self.connect)

    async def connect(self, request: web.Request) -> web.StreamResponse:
        caller = self._authorize(request)
        if isinstance(caller, web.Response):
            return caller
        intent = request.query.get("intent")
        if intent not in (None, "transcription"):
            return http_error(
                400,
                'intent must be "transcription": this server serves transcription sessions here and '
                "translation sessions at /v1/realtime/translations (conversation sessions are not served)",
                "invalid_value",
            )
        if "call_id" in request.query:
            return http_error(400, "joining a call (call_id) is not available on this server", "invalid_value")
        protocol = TranscriptionProtocol(
            request.query.get("model", ""),
            self._m.vad_defaults,
            self._m.limits,
            card=card_or_none(self._m),
            beta=request.headers.get("OpenAI-Beta", "").strip().lower().startswith("realtime"),
        )
        call = call_info(request.headers.get(REQUEST_ID), METHOD, request.remote or "")
        return await admit_and_serve(request, self._m, protocol, caller, call, resume=None, sockets=self._sockets)
