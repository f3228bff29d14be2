"""The main port's ordinary calls, counted by us below the process's own call limit (security finding F1).

gRPC's ``maximum_concurrent_rpcs`` is one count for every call of a server: when it is full, a
probe's health ``Check`` is refused like anything else (RESOURCE_EXHAUSTED "Concurrent RPC limit
exceeded"), and the pod is restarted. So the main port's server is given more slots than its
ordinary calls may hold (``door.py``: ``max_calls`` for them, and on top the health ``Check`` and
``Watch`` slots and the token-less refusals' drains), and ``CallSlots`` counts the ordinary calls
(every call the token check let in, health aside) and refuses the one past ``max_calls`` itself,
at once and unread, with RESOURCE_EXHAUSTED and RetryInfo. The slots above ``max_calls`` stay for
what they are kept for.

A call is counted while its handler runs. Every handler of the port is request-streaming on our
side (``servicer.py``, the Riva door's, reflection's streams), so it runs, and is counted, from the
moment its call opens, whether or not its client ever sends a byte.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from translate_svc.errors import Overloaded
from translate_svc.transport.grpc.auth import HEALTH_PREFIX
from translate_svc.transport.refusal_log import RefusalLog
from translate_svc.transport.rpc_errors import status_for

#: the reflection service's methods (a stream each): held to their caller's unary-call bounds too
REFLECTION_PREFIX = "/grpc.reflection."


class CallSlots(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts the port's ordinary calls in this process; the one past ``most`` is refused at once.
    Event loop only."""

    def __init__(
        self,
        most: int,
        refusals: RefusalLog | None = None,
        *,
        others: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None = None,
    ) -> None:
        """``others``: what a call of a service that is not a door's (reflection's: a stream its
        client may hold open, silent) is held to besides, for as long as it runs: the caller's
        unary-call bounds (``SessionManager.admit_unary``); raises ``Overloaded`` when full."""
        self.most = most
        #: ordinary calls whose handler runs now
        self.held = 0
        self._refusals = refusals or RefusalLog()
        self._others = others

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode("utf-8", "replace")
        if handler is None or method.startswith(HEALTH_PREFIX):
            return handler  # unknown (UNIMPLEMENTED), or health: counted by its own door
        others = self._others if method.startswith(REFLECTION_PREFIX) else None
        return self._counted(handler, others)

    async def _taken(
        self, others: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None
    ) -> contextlib.AsyncExitStack:
        """One call's slot (and ``others``' bounds), for as long as its handler runs; Overloaded
        when the process has ``most`` (or ``others`` is full)."""
        if self.held >= self.most:
            raise Overloaded(
                f"this server process has {self.most} calls in progress, its limit (limits.max_calls, divided "
                "between the node's workers): retry shortly or on another server",
                retry_after_ms=1000,
            )
        self.held += 1  # before the wait below: calls that wait at once still count against ``most``
        stack = contextlib.AsyncExitStack()
        stack.callback(self._give)
        if others is not None:
            try:
                await stack.enter_async_context(others())
            except BaseException:
                await stack.aclose()
                raise
        return stack

    def _give(self) -> None:
        self.held -= 1

    def _counted(
        self, handler: grpc.RpcMethodHandler, others: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None
    ) -> grpc.RpcMethodHandler:
        """``handler`` counted while it runs; over a bound, it only refuses (reading nothing)."""
        name = next(n for n in ("unary_unary", "unary_stream", "stream_unary", "stream_stream") if getattr(handler, n))
        behaviour = getattr(handler, name)
        slots = self
        wrapped: Callable[..., Any]
        if inspect.isasyncgenfunction(behaviour):

            async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                async with await slots._take(context, others):
                    async for response in behaviour(request, context):
                        yield response

            wrapped = stream
        elif inspect.iscoroutinefunction(behaviour):

            async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                async with await slots._take(context, others):
                    return await behaviour(request, context)

            wrapped = call
        else:  # a synchronous handler (none on this port): runs on gRPC's thread pool, not counted
            return handler
        replaced: grpc.RpcMethodHandler = handler._replace(**{name: wrapped})
        return replaced

    async def _take(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        others: Callable[[], contextlib.AbstractAsyncContextManager[None]] | None,
    ) -> contextlib.AsyncExitStack:
        try:
            return await self._taken(others)
        except Overloaded as e:
            self._refusals("call over its call limits", context.peer(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            status = status_for(e)
            await context.abort(status.code, status.details, status.trailing_metadata)
            raise AssertionError("abort raises") from e
