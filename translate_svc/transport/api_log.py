"""The access line of an API call that is no session (the jobs and glossaries APIs on both ports,
which have no session to write one, as every door's calls do): one line when it ends, with its method,
its tenant and its code (the refusal's, ``INTERNAL`` for a bug, ``CANCELLED`` when the caller went
away; an HTTP answer given rather than raised says it by its status, also on the line as
``status``), and the tenant's call counter by method (``translate_svc_tenant_calls_total``), as
every door's calls have. Door-neutral: each door names its call (``calls.call_info``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from translate_svc.errors import ServiceError
from translate_svc.observability import access, metrics
from translate_svc.observability.access import CallInfo

#: the code of an HTTP answer given, not raised (a body too large or too slow, a client gone)
_BY_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    503: "UNAVAILABLE",
    507: "RESOURCE_EXHAUSTED",
}


@dataclass
class ApiCall:
    """One call being logged (``logged``)."""

    call: CallInfo
    tenant: str
    code: str = "OK"

    def answered(self, status: int) -> None:
        """The HTTP status of the call's answer (one that refuses it gives its code)."""
        self.call.extra["status"] = status
        if status >= 400:
            self.code = _BY_STATUS.get(status, "INTERNAL")


@contextlib.contextmanager
def logged(call: CallInfo, tenant: str) -> Iterator[ApiCall]:
    """Log ``call`` of ``tenant`` when the block ends, with its code, and count it."""
    out = ApiCall(call, tenant)
    try:
        yield out
    except ServiceError as e:
        out.code = e.code.value
        raise
    except (asyncio.CancelledError, ConnectionError, GeneratorExit):
        out.code = "CANCELLED"
        raise
    except Exception:
        out.code = "INTERNAL"
        raise
    finally:
        metrics.tenant_call(tenant, call.method, out.code)
        access.log_call(call, code=out.code, tenant=tenant)


#: a unary method of a gRPC door: (door, request stream, context) -> its answer
Method = Callable[..., Awaitable[Any]]


def logged_method(
    call_of: Callable[[Any, str], CallInfo], tenant_of: Callable[[Any], str]
) -> Callable[[Method], Method]:
    """A decorator for a gRPC door's unary method ``(self, raw, context)``, inside the one that maps
    its refusals (``rpc.unary_errors``): ``logged`` as the method's name. ``call_of(context,
    method)``: the call (``rpc.call_of``); ``tenant_of(door)``: its caller's tenant."""

    def wrap(handler: Method) -> Method:
        @functools.wraps(handler)
        async def run(self: Any, raw: Any, context: Any) -> Any:
            with logged(call_of(context, handler.__name__), tenant_of(self)):
                return await handler(self, raw, context)

        return run

    return wrap
