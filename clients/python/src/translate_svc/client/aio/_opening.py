"""Opening a server-streaming call that must begin with ``started`` (a stream, a listen): on the
next address, retried elsewhere after RESOURCE_EXHAUSTED / UNAVAILABLE as the server's RetryInfo
says, any other refusal raised with the server's status and message. And ``StreamOwner``: the
client as far as its streams and listens use it.

Event loop only, like the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc

from translate_svc.client._retry import RetryPolicy, is_retryable
from translate_svc.client.errors import TranslateError

logger = logging.getLogger(__name__)


class StreamOwner(Protocol):
    """The ``AsyncTranslateClient`` a stream or a listen belongs to, as far as its calls use it: its
    settings and its call plumbing (a Protocol, so that they do not import the client that makes them)."""

    retry: RetryPolicy
    timeout_s: float
    max_resumes: int

    def _next_address(self, avoid: str | None = None) -> str: ...

    def _stub(self, address: str) -> Any: ...

    def _error(
        self, e: grpc.aio.AioRpcError, address: str, attempts: int, request_id: str | None = None
    ) -> TranslateError: ...

    def _metadata_for(self, request_id: str) -> tuple[tuple[str, str], ...]: ...


async def open_started(
    client: StreamOwner,
    *,
    what: str,
    request_id: str,
    avoid: str | None,
    make_call: Callable[[str], Awaitable[Any]],
    is_started: Callable[[Any], bool],
) -> tuple[Any, Any, str]:
    """A call on the next address (``make_call(address)``: made, its first message sent) whose first
    message ``is_started``: (the call, that message, the address). Each attempt waits ``timeout_s``
    for it; a refusal that is not retryable, or the last attempt's, raises ``TranslateError``
    (``attempts`` set). ``what`` names the call in messages ("the stream", "the listen")."""
    attempts = client.retry.max_attempts
    for attempt in range(1, attempts + 1):
        address = client._next_address(avoid)
        call = None
        try:
            call = await make_call(address)
            try:
                first = await asyncio.wait_for(call.read(), client.timeout_s)
            except TimeoutError:
                call.cancel()
                raise TranslateError(
                    grpc.StatusCode.UNAVAILABLE,
                    f"{address} did not start {what} within {client.timeout_s:g} s",
                    address=address,
                    request_id=request_id,
                ) from None
            if first is grpc.aio.EOF or not is_started(first):
                call.cancel()
                raise TranslateError(
                    grpc.StatusCode.INTERNAL,
                    f"{address} did not start {what} with `started`",
                    address=address,
                    request_id=request_id,
                )
        except grpc.aio.AioRpcError as e:
            err = client._error(e, address, attempt, request_id)
        except TranslateError as e:
            err = e
        else:
            return call, first, address
        # CANCELLED here is the server's (this client's own cancel raises CancelledError): a server
        # that stops ends the calls it holds so, an open among them; nothing was taken, so the next
        # address is tried as for UNAVAILABLE
        retry = is_retryable(err.code) or err.code is grpc.StatusCode.CANCELLED
        if not retry or attempt == attempts:
            err.attempts = attempt
            raise err
        delay = client.retry.delay_s(attempt, err.retry_delay_s)
        logger.warning(
            "opening %s on %s failed with %s (%s); trying again in %.2f s",
            what,
            address,
            err.code.name,
            err.message,
            delay,
        )
        avoid = address
        await asyncio.sleep(delay)
    raise AssertionError("unreachable")
