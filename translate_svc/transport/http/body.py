"""A small request body on the HTTP port (a client secret's mint request, a WebRTC offer), read with
the port's bounds before anything of it is parsed: within ``limits.http_header_timeout_s`` (a body
sent slowly holds a connection), at most so many bytes (read no further: 413), and one INFO line
when the client goes away while it sends (499: nobody to answer). One wording for every route set.
Event loop only."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from translate_svc.transport.http.responses import http_error

logger = logging.getLogger(__name__)


async def read_body(
    request: web.Request, limit: int, timeout_s: float, *, too_large: str, what: str
) -> bytes | web.Response:
    """The request's body, or the answer that refuses it: 408 when it is not whole within
    ``timeout_s``, 413 (``too_large`` says what to send) once it is longer than ``limit`` bytes,
    499 when the client left. ``what``: the request, for the log line."""
    try:
        async with asyncio.timeout(timeout_s):
            body = await _read_at_most(request, limit)
    except TimeoutError:
        message = f"the request's body did not come within {timeout_s:g} s (limits.http_header_timeout_s)"
        return http_error(408, message, "request_timeout")
    except ConnectionError as e:
        logger.info("%s's client went away while it sent its request (%s)", what, type(e).__name__)
        return web.Response(status=499)
    if body is None:
        return http_error(413, too_large, "request_too_large")
    return body


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or None once it is longer than ``limit`` bytes (read no further)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)
