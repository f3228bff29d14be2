"""The HTTP port's error answers as aiohttp responses, in the one shape and by the one table of
``errors.py``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from translate_svc.errors import ServiceError
from translate_svc.transport.http.errors import HttpRefusal, error_body, refusal


def http_error(status: int, message: str, code: str, kind: str = "invalid_request_error", **extra: Any) -> web.Response:
    """An HTTP error, ``errors.error_body``'s shape."""
    return web.json_response(error_body(message, code, kind, **extra), status=status)


def answer(r: HttpRefusal) -> web.Response:
    return web.json_response(r.body, status=r.status, headers=r.headers)


def refused(e: ServiceError) -> web.Response:
    """One of our errors as the answer to the request it refuses (``errors.refusal``)."""
    return answer(refusal(e))
