"""The HTTP port's one error shape and one refusal table, for every route set on it (OpenAI's, the
rooms', the phone's).

- The shape: ``{"error": {"message", "type", "code", "param"}}``, OpenAI's (the ``openai`` SDK
  raises it; every other client reads ``message``). ``type`` and ``code`` come from our error
  code (``error_type``), or from the limit or cap that refused (``ServiceError.reason``).
- The statuses (``STATUS``): 400 for what the client must fix, 401/403 for its credentials, 429 at
  a cap with ``Retry-After`` (the cap's hint), 503 while the server drains or loads with
  ``Retry-After`` (the hint, else 1 s: another replica takes it now), 507 when the server's disk
  refused what a request sent (``StorageFull``: nothing of it kept), 500 for anything else.
- A token's refusal (``tokens.authorize``): 401 without a valid token, 403 without the
  permission, in the same shape (``caller.py`` has its table and its one wording).

Pure: no web framework (the OpenAI protocols' ``error`` events use the same table); the responses
are ``responses.py``'s."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from translate_svc.errors import ErrorCode, ServiceError

#: our error codes -> OpenAI's error ``type`` and ``code``
ERROR_TYPES: dict[ErrorCode, tuple[str, str]] = {
    ErrorCode.INVALID_ARGUMENT: ("invalid_request_error", "invalid_value"),
    ErrorCode.NOT_FOUND: ("invalid_request_error", "not_found"),
    ErrorCode.ALREADY_EXISTS: ("invalid_request_error", "already_exists"),
    ErrorCode.ABORTED: ("invalid_request_error", "conflict"),
    ErrorCode.UNAUTHENTICATED: ("invalid_request_error", "invalid_api_key"),
    ErrorCode.PERMISSION_DENIED: ("invalid_request_error", "permission_denied"),
    ErrorCode.FAILED_PRECONDITION: ("invalid_request_error", "unsupported_feature"),
    ErrorCode.OUT_OF_RANGE: ("invalid_request_error", "limit_reached"),
    ErrorCode.RESOURCE_EXHAUSTED: ("server_error", "server_overloaded"),
    ErrorCode.UNAVAILABLE: ("server_error", "server_unavailable"),
    ErrorCode.INTERNAL: ("server_error", "internal_error"),
}
#: our error codes -> the HTTP status of a request they refuse (any other: 500)
STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.ALREADY_EXISTS: 409,
    ErrorCode.ABORTED: 409,
    ErrorCode.FAILED_PRECONDITION: 400,
    ErrorCode.OUT_OF_RANGE: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.UNAVAILABLE: 503,
}


#: named limits (``ServiceError.reason``) whose HTTP status is not their code's
REASON_STATUS: dict[str, int] = {"insufficient_storage": 507}


def error_type(code: ErrorCode) -> tuple[str, str]:
    """OpenAI's error ``type`` and ``code`` for one of ours."""
    return ERROR_TYPES.get(code, ("server_error", "internal_error"))


def error_body(message: str, code: str, kind: str = "invalid_request_error", **extra: Any) -> dict[str, Any]:
    """An HTTP error response's JSON body."""
    return {"error": {"message": message, "type": kind, "code": code, "param": None, **extra}}


@dataclass(frozen=True)
class HttpRefusal:
    """A refused request as an HTTP answer: its status, JSON body and headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def refusal(e: ServiceError) -> HttpRefusal:
    """One of our errors as the HTTP answer to the request it refuses (``STATUS``): 503 while the
    server drains (code ``server_shutting_down``, ``Retry-After`` 1 unless the error hints
    otherwise), 429 at a cap (code: the cap's name; ``Retry-After`` and ``x_retry_after_ms`` from
    its hint), 400/401/403 for what the client must fix, 500 for anything else. The body's message is
    the error's; a field at fault (``param``) goes with it."""
    kind, code = error_type(e.code)
    status = REASON_STATUS.get(e.reason or "", STATUS.get(e.code, 500))
    if status == 503:
        code = "server_shutting_down"
    elif e.reason is not None:  # a named limit or cap
        code = e.reason
    headers: dict[str, str] = {}
    extra: dict[str, Any] = {}
    param = getattr(e, "param", None)
    if param is not None:
        extra["param"] = param
    if e.retry_after_ms is not None:
        headers["Retry-After"] = str(max(1, math.ceil(e.retry_after_ms / 1000)))
        extra["x_retry_after_ms"] = e.retry_after_ms
    elif status == 503:  # draining: another replica takes it now
        headers["Retry-After"] = "1"
    return HttpRefusal(status, error_body(e.message, code, kind, **extra), headers)
