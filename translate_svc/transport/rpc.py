"""What the two gRPC doors (ours, ``grpc/``; Riva's, ``riva/``) share on the gRPC port: client
bytes parsed into a message with INVALID_ARGUMENT for what protobuf cannot parse, the unary
error mapping, and the calling tenant. No door's protos: each door passes its own message types
and its own way of turning a ``ServiceError`` into its status."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc._cython import cygrpc  # ExecuteBatchError: what a failed write raises (grpc.aio imports it too)

from translate_svc.errors import InvalidInput, ServiceError, Unauthenticated
from translate_svc.session.driver import internal_error
from translate_svc.session.quota import DEFAULT_TENANT, Tenant
from translate_svc.transport.tokens import TokenStore, bearer

M = TypeVar("M", bound=Message)
Abort = Callable[[grpc.aio.ServicerContext[Any, Any], ServiceError], Awaitable[None]]


def parse_message(kind: type[M], raw: bytes, limit: int | None, *, too_large: str, unparsable: str = "") -> M:
    """Client bytes -> message; INVALID_ARGUMENT (not UNKNOWN) when they are over the method's
    ``limit`` (``too_large`` says what to do) or protobuf cannot parse them (``unparsable``: the
    rest of that message)."""
    if limit is not None and len(raw) > limit:
        raise InvalidInput(
            f"the {kind.DESCRIPTOR.name} message is {len(raw)} bytes, over this method's {limit}-byte limit: "
            + too_large
        )
    try:
        message: M = kind.FromString(raw)
        return message
    except (DecodeError, ValueError, RuntimeError):
        raise InvalidInput(f"the request is not a valid {kind.DESCRIPTOR.full_name} message{unparsable}") from None


def unary_errors(abort: Abort) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """A decorator for a unary method ``(self, raw, context)``: a ServiceError (and anything
    unexpected, as INTERNAL) ends the call through ``abort``."""

    def wrap(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(handler)
        async def wrapper(self: Any, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                return await handler(self, raw, context)
            except ServiceError as e:
                await abort(context, e)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                await abort(context, internal_error(e))

        return wrapper

    return wrap


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of the call's ``authorization: Bearer <token>`` metadata; None if there is none;
    "" if the header is there but is not a bearer token."""
    values = [v for k, v in (metadata or ()) if k.lower() == "authorization"]
    if not values:
        return None
    if len(values) > 1 or not isinstance(values[0], str):
        return ""
    return bearer(values[0])


def tenant_of(store: TokenStore | None, metadata: Iterable[tuple[str, Any]] | None) -> Tenant:
    """The calling tenant (``default`` on a server without tokens). The interceptor has checked
    the token; one removed since then is refused here."""
    if store is None:
        return DEFAULT_TENANT
    grant = store.lookup(bearer_token(metadata) or "")
    if grant is None:
        raise Unauthenticated(
            "the token is not valid; send a current token of this server (tokens may have been rotated)"
        )
    return grant.tenant


async def write_response(context: grpc.aio.ServicerContext[Any, Any], message: Message) -> None:
    """Send one response of a response stream. A door's stream handler writes its responses with
    this instead of yielding them to grpc (it stays an async generator that yields nothing, so grpc
    and the tracing interceptor still treat it as a response stream): a write that waits for a
    client that stopped reading fails once that client cancels (or its connection or deadline
    goes), and grpc logs the failure as an ERROR with a traceback whenever it reaches grpc before
    grpc has seen the cancel, which is the usual order (issue 53). Here it ends the handler as the
    cancel would have: the call is over and nobody is left to tell."""
    try:
        await context.write(message)
    except (cygrpc.ExecuteBatchError, grpc.RpcError):
        raise asyncio.CancelledError("the call ended while a response was being sent") from None
