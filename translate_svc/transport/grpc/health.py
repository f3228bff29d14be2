"""Health on a gRPC port: ``grpc.health.v1.Health`` over the shared ``HealthServicer``, bounded.

Health needs no token (kubelet's probes and gRPC's client-side health checking carry none), so
what a caller can hold through it is bounded here, per port of one server process, from the call's
first byte:

- ``Check`` (and ``List``): at most ``max_checks`` in progress; beyond, RESOURCE_EXHAUSTED at once.
  On the main port these are slots of their own, on top of every other call's (``door.py``): a
  probe's ``Check`` is answered while the port's ordinary calls are all taken (security finding F1).
- ``Watch``: at most ``max_watches`` open; beyond, RESOURCE_EXHAUSTED at once (security finding N1).

Every method is request-streaming on this side (the wire is unchanged): grpc-health-checking's own
handlers are unary, which gRPC runs only once the request has arrived, so a client that never sent
it held a call slot, uncounted, until it left. Here a call is counted as it opens, and its request
must arrive within ``limits.request_read_timeout_s`` of that (DEADLINE_EXCEEDED after).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

from translate_svc.errors import ServiceError
from translate_svc.transport.refusal_log import RefusalLog
from translate_svc.transport.rpc import call_deadline, parse_message, read_request

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: ServiceError) -> NoReturn:
    await context.abort(grpc.StatusCode[err.code.value], err.message)
    raise AssertionError("abort raises")  # for mypy: context.abort is NoReturn, await of it is not


class HealthDoor:
    """One port's door to the shared ``HealthServicer``: Check bounded to ``max_checks`` at once,
    Watch to ``max_watches``, each request read by a deadline. Event loop only."""

    def __init__(
        self,
        health: HealthServicer,
        max_watches: int,
        refusals: RefusalLog,
        *,
        max_checks: int,
        read_timeout_s: float,
    ) -> None:
        self._health = health
        self.max_watches = max_watches
        self.max_checks = max_checks
        self.read_timeout_s = read_timeout_s
        self.watching = 0
        self.checking = 0
        self._refusals = refusals

    def handler(self) -> grpc.GenericRpcHandler:
        response = health_pb2.HealthCheckResponse.SerializeToString
        return grpc.method_handlers_generic_handler(
            HEALTH_SERVICE,
            {
                "Check": grpc.stream_unary_rpc_method_handler(self.Check, response_serializer=response),
                "Watch": grpc.stream_stream_rpc_method_handler(self.Watch, response_serializer=response),
                "List": grpc.stream_unary_rpc_method_handler(self.List),
            },
        )

    async def _request(self, requests: AsyncIterator[bytes], deadline: float) -> health_pb2.HealthCheckRequest:
        raw = await read_request(requests, deadline, self.read_timeout_s, "HealthCheckRequest")
        message: health_pb2.HealthCheckRequest = parse_message(
            health_pb2.HealthCheckRequest, raw, 4096, too_large="send a service name"
        )
        return message

    async def Check(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        deadline = call_deadline(self.read_timeout_s)
        if self.checking >= self.max_checks:
            self._refusals("health Check", context.peer(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.max_checks} health Check calls are in progress on this port, its limit "
                "(limits.max_health_checks): send each Check's request at once, or retry shortly",
            )
        self.checking += 1
        try:
            try:
                request = await self._request(requests, deadline)
            except ServiceError as e:
                await _abort(context, e)
            return await self._health.Check(request, context)
        finally:
            self.checking -= 1

    async def List(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> None:
        """Not served (grpc-health-checking's asyncio servicer has no List): answered at once, unread."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "health List is not served: use Check or Watch")

    async def Watch(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> None:
        deadline = call_deadline(self.read_timeout_s)
        if self.watching >= self.max_watches:
            self._refusals("health Watch", context.peer(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"{self.max_watches} health Watch calls are open on this port, its limit "
                "(limits.max_health_watches): poll with Check instead, or retry Watch later",
            )
        self.watching += 1
        try:
            try:
                request = await self._request(requests, deadline)
            except ServiceError as e:
                await _abort(context, e)
            await self._health.Watch(request, context)
        finally:
            self.watching -= 1
