"""The MCP endpoint's refusals of a request before the SDK reads it (a token, a cap, a body too
large or too slow, a browser page of another site): the HTTP status the port gives everywhere,
with a JSON-RPC error as the body, which MCP clients read at any status (the ``mcp`` SDK raises it
as the call's ``MCPError``; a plain HTTP client reads ``error.message``). ``error.data`` carries
the port's error code (``invalid_api_key``, ``request_too_large``, a cap's name...), the status,
and at a cap ``retry_after_ms`` (and ``Retry-After``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from translate_svc.errors import ServiceError
from translate_svc.transport.http.errors import refusal as http_refusal

#: JSON-RPC error codes by HTTP status (the server-defined range, -32000 to -32099)
_JSONRPC_CODES = {401: -32001, 403: -32003, 408: -32008, 413: -32013, 429: -32029, 503: -32050}
INVALID_REQUEST = -32600


def refusal(
    status: int, message: str, code: str, *, headers: dict[str, str] | None = None, **data: Any
) -> web.Response:
    body = {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": _JSONRPC_CODES.get(status, INVALID_REQUEST),
            "message": message,
            "data": {"code": code, "status": status, **data},
        },
    }
    return web.json_response(body, status=status, headers=headers)


def service_refusal(e: ServiceError) -> web.Response:
    """One of our errors (a cap, a drain) by the port's one table (``http.errors.refusal``)."""
    r = http_refusal(e)
    extra = {"retry_after_ms": e.retry_after_ms} if e.retry_after_ms is not None else {}
    return refusal(r.status, e.message, str(r.body["error"]["code"]), headers=r.headers, **extra)
