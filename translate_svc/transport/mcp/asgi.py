"""An ASGI application served from an aiohttp handler: the ``mcp`` SDK's streamable HTTP transport
(an ASGI app) on the HTTP port's one aiohttp application, so that MCP shares the port, its TLS,
its connection cap and its header bounds with every other route set (docs/decisions.md).

The request's body has been read whole and bounded by the door before (``door.py``); the app gets
it as one ``http.request`` message. Its response is streamed as it writes it (a JSON answer, or
server-sent events for a long call or a listen stream). A write the client no longer takes (it
closed the connection) is the app's ``http.disconnect``, which it waits for on ``receive`` (the
SDK's streams then end: its SSE pings, every 15 s, find a client that left without a word); the
response's end is one too. Event loop only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from translate_svc.transport.refusal_log import RefusalLog

Message = MutableMapping[str, Any]
App = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class ClientGone(OSError):
    """The client closed its connection: the app's write failed."""


class ClientGoneLog(logging.Filter):
    """The SDK logs an answer whose client left while it was written as an ERROR with a traceback
    (``SSE response error``, ~2 KB), as often as any token holder cares to leave: such a record
    (one whose exception is, holds or was caused by ``ClientGone``) is dropped, and said instead
    as one of ``refusals``' rate-limited INFO lines (``../refusal_log.py``), as the HTTP port says
    a reset connection. Every other record of the SDK is its own."""

    #: the SDK's loggers that log a failed write of an answer
    LOGGERS = ("mcp.server.streamable_http", "mcp.server.streamable_http_manager")

    def __init__(self, refusals: RefusalLog) -> None:
        super().__init__()
        self.refusals = refusals

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None or not _gone(exc):
            return True
        self.refusals("MCP answer", "its client", "the client left while it was sent")
        return False

    @classmethod
    def install(cls) -> None:
        """On the SDK's loggers, once per process."""
        log = cls(RefusalLog())
        for name in cls.LOGGERS:
            logger = logging.getLogger(name)
            if not any(isinstance(f, cls) for f in logger.filters):
                logger.addFilter(log)


def _gone(exc: BaseException, depth: int = 0) -> bool:
    if isinstance(exc, ClientGone):
        return True
    if depth > 8:
        return False
    if isinstance(exc, BaseExceptionGroup):
        return any(_gone(e, depth + 1) for e in exc.exceptions)
    cause = exc.__cause__ or exc.__context__
    return cause is not None and _gone(cause, depth + 1)


async def serve(app: App, request: web.Request, body: bytes, extra: dict[str, Any]) -> web.StreamResponse:
    """Run ``app`` for ``request`` (its ``body`` read already), with ``extra`` in its scope."""
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": "https" if request.secure else "http",
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode("utf-8", "surrogateescape"),
        "query_string": request.query_string.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "client": (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) and len(peer) >= 2 else None,
        "server": (str(sock[0]), int(sock[1])) if isinstance(sock, tuple) and len(sock) >= 2 else None,
        "state": {},
        **extra,
    }
    ended = asyncio.Event()  # the client left, or the response is complete
    pending: list[bytes] = [body]
    response: web.StreamResponse | None = None

    async def receive() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        await ended.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal response
        if ended.is_set():
            raise ClientGone("the response has ended")
        try:
            if message["type"] == "http.response.start":
                headers: CIMultiDict[str] = CIMultiDict(
                    (bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in message.get("headers", ())
                )
                response = web.StreamResponse(status=int(message["status"]), headers=headers)
                await response.prepare(request)
            elif message["type"] == "http.response.body":
                assert response is not None, "http.response.body before http.response.start"
                data = message.get("body", b"")
                if data:
                    await response.write(data)
                if not message.get("more_body", False):
                    await response.write_eof()
                    ended.set()
        except (ConnectionError, RuntimeError) as e:  # aiohttp: reset, or writing to a closing transport
            ended.set()
            raise ClientGone(str(e)) from e

    try:
        await app(scope, receive, send)
    except* ClientGone:  # (raised inside the SDK's task groups too)
        pass
    finally:
        ended.set()
    if response is None:  # the app answered nothing (a bug of ours or its): the port's 500
        return web.json_response(
            {
                "error": {
                    "message": "the MCP endpoint failed to answer",
                    "type": "server_error",
                    "code": "internal_error",
                }
            },
            status=500,
        )
    return response
