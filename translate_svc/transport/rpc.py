"""What the two gRPC doors (ours, ``grpc/``; Riva's, ``riva/``) share on the gRPC port: client
bytes parsed into a message with INVALID_ARGUMENT for what protobuf cannot parse, the unary error
mapping, the call's request id from its metadata, and the caller the port's token interceptor let
in, and the shape of another door's services on the port (``PortServices``). No door's protos:
each door passes its own message types and its own way of turning a ``ServiceError`` into its
status. What every door shares, whatever its wire, is ``calls.py``."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message

from translate_svc.errors import InvalidInput, ServiceError, TooSlow, Unauthenticated
from translate_svc.observability.access import CallInfo
from translate_svc.session.driver import internal_error
from translate_svc.session.quota import DEFAULT_TENANT
from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.tokens import Authorized, Permission, TokenStore, bearer

M = TypeVar("M", bound=Message)
Abort = Callable[[grpc.aio.ServicerContext[Any, Any], ServiceError], Awaitable[None]]

#: the caller of the call a task serves, as the token interceptor let it in (``let_in``); each gRPC
#: call runs in a task of its own, so this is the call's
_CALLER: contextvars.ContextVar[Authorized | None] = contextvars.ContextVar("translate_svc_rpc_caller", default=None)
_BEHAVIOURS = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")


class PortServices(Protocol):
    """Another door's services on the gRPC port's server (Riva's): they share its port, TLS, token
    interceptor, call limits and lifetime, and are added to it before it starts."""

    #: the permission each of their methods (``/service/method``) needs; the interceptor checks them
    permissions: Mapping[str, Permission]

    def handlers(self) -> Sequence[grpc.GenericRpcHandler]:
        """Their method handlers."""

    def describe(self) -> list[str]:
        """Their parts of the host's one line."""


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


async def read_request(requests: AsyncIterator[bytes], deadline: float, limit_s: float, what: str) -> bytes:
    """The one message of a call that is unary on the wire and served request-streaming (so that
    it is admitted before anything is read), read by ``deadline`` (event-loop time: the call's
    start plus ``limit_s``, ``limits.request_read_timeout_s``); DEADLINE_EXCEEDED after it, and
    INVALID_ARGUMENT for no message or several. ``what``: the request message's name.

    The call is read to its end (a unary client half-closes after its message): gRPC's reader
    holds the last message it gave until it is resumed."""

    async def one() -> bytes:
        messages = aiter(requests)
        raw = await anext(messages, None)
        if raw is None:
            raise InvalidInput(f"the call carried no {what}: send one")
        if await anext(messages, None) is not None:
            raise InvalidInput(f"this method takes one {what}: send one message")
        return raw

    left = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(one(), max(0.0, left))
    except TimeoutError:
        raise TooSlow(
            f"the {what} did not arrive within {limit_s:g} s of the call's start "
            "(ServerLimits.request_read_timeout_ms): send the request at once"
        ) from None


def call_deadline(limit_s: float) -> float:
    """The event-loop time by which a call opened now must have sent its request."""
    return asyncio.get_running_loop().time() + limit_s


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


def call_of(context: grpc.aio.ServicerContext[Any, Any], method: str) -> CallInfo:
    """The call's identity for the access log: the caller's ``x-request-id`` (or a new one), the
    method, the peer."""
    given = next((v for k, v in context.invocation_metadata() or () if k == REQUEST_ID), None)
    return call_info(given, method, context.peer())


def let_in(handler: grpc.RpcMethodHandler, caller: Authorized) -> grpc.RpcMethodHandler:
    """``handler`` as it runs for ``caller``: the token interceptor's one lookup reaches the handler
    (``caller_of``) this way, and the handler looks nothing up again. Each behaviour keeps its
    kind (an async generator, a coroutine, a plain function), which grpc.aio tells apart."""
    name = next(n for n in _BEHAVIOURS if getattr(handler, n) is not None)
    behaviour = getattr(handler, name)
    wrapped: Callable[..., Any]
    if inspect.isasyncgenfunction(behaviour):

        async def stream(request: Any, context: Any) -> Any:
            _CALLER.set(caller)
            async for response in behaviour(request, context):
                yield response

        wrapped = stream
    elif inspect.iscoroutinefunction(behaviour):

        async def call(request: Any, context: Any) -> Any:
            _CALLER.set(caller)
            return await behaviour(request, context)

        wrapped = call
    else:

        def plain(request: Any, context: Any) -> Any:
            _CALLER.set(caller)
            return behaviour(request, context)

        wrapped = plain
    replaced: grpc.RpcMethodHandler = handler._replace(**{name: wrapped})
    return replaced


def token_key(caller: Authorized) -> bytes | None:
    """What a caller's unary calls are counted by (``SessionManager.admit_unary``): its token's
    digest; None on a server without tokens."""
    return caller.token.sha256 if caller.token is not None else None


def caller_of(tokens: TokenStore | None) -> Authorized:
    """The caller of the call this task serves, as the port's token interceptor let it in (its
    tenant, and its token's digest for revocation); the ``default`` tenant on a server without
    tokens (no interceptor)."""
    caller = _CALLER.get()
    if caller is not None:
        return caller
    if tokens is None:
        return Authorized(DEFAULT_TENANT)
    # the interceptor lets no call in without a caller: never, but never the default tenant either
    raise Unauthenticated("the token is not valid; send a current token of this server (tokens may have been rotated)")
