"""What the two gRPC doors (ours, ``grpc/``; Riva's, ``riva/``) share on the gRPC port: client
bytes parsed into a message with INVALID_ARGUMENT for what protobuf cannot parse (and, for a
message whose bulk may be audio, its other bytes held to a config's size on the wire before
protobuf parses them: ``parse_beside_audio``), the unary error mapping, the call's request id from
its metadata, the caller the port's token interceptor let in, and the shape of another door's
services on the port (``PortServices``). No door's protos: each door passes its own message types
and its own way of turning a ``ServiceError`` into its status. What every door shares, whatever
its wire, is ``calls.py``."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from grpc._cython import cygrpc  # ExecuteBatchError: what a failed write raises (grpc.aio imports it too)

from translate_svc.errors import InvalidInput, ServiceError, TooSlow, Unauthenticated
from translate_svc.observability.access import CallInfo
from translate_svc.session.calls.stream import internal_error
from translate_svc.session.tenants.tenant import DEFAULT_TENANT
from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.tokens.authorization import Authorized, bearer
from translate_svc.transport.tokens.file import Permission
from translate_svc.transport.tokens.store import TokenStore

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


def parse_beside_audio(
    kind: type[M],
    raw: bytes,
    limit: int | None,
    *,
    beside_limit: int,
    audio: Sequence[Sequence[int]],
    most_fields: int,
    too_large: str,
    beside_hint: str,
    unparsable: str = "",
) -> M:
    """``parse_message`` for a message whose bulk may be audio: ``raw`` may be ``limit`` bytes,
    but only ``beside_limit`` of them beside its audio (``audio_bytes``), and that is checked on
    the wire before protobuf parses anything. Protobuf copies an audio field's bytes at once, but
    parses everything else field by field on the event loop (1 MB of small terms in about 7 ms, of a
    map's entries in 50 ms); a config, an update, a clip's languages and terms need little
    (security finding F3). ``beside_hint`` says what to send instead."""
    if len(raw) > beside_limit:
        beside = len(raw) - audio_bytes(raw, audio, most_fields)
        if beside > beside_limit:
            raise InvalidInput(
                f"the {kind.DESCRIPTOR.name} message holds {beside} bytes that are not audio, over the "
                f"{beside_limit} bytes this method takes beside an audio chunk: " + beside_hint
            )
    return parse_message(kind, raw, limit, too_large=too_large, unparsable=unparsable)


def audio_path(kind: type[Message], dotted: str) -> tuple[int, ...]:
    """A field's path as ``audio_bytes`` takes it: ``"packet.data"`` -> its field numbers."""
    numbers, descriptor = [], kind.DESCRIPTOR
    for name in dotted.split("."):
        f = descriptor.fields_by_name[name]
        numbers.append(f.number)
        if f.message_type is not None:  # the last name may be a scalar field
            descriptor = f.message_type
    return tuple(numbers)


#: fields a nested message on an audio path (an AudioPacket, an AudioInput) may hold
_NESTED_FIELDS = 8


class _NotWire(Exception):
    """Bytes that are not a run of at most so many protobuf fields."""


def audio_bytes(raw: bytes, paths: Sequence[Sequence[int]], most_fields: int) -> int:
    """The length of ``raw``'s audio: the payload of the length-delimited field at one of ``paths``
    (field numbers, outermost first; of a field given more than once, its last), read from the
    wire's tags and lengths (a few varints a field, nothing parsed). 0 where there is none, where
    ``raw`` holds more than ``most_fields`` fields (``_NESTED_FIELDS`` in a nested message on the
    path), or where it is not a well-formed run of fields (protobuf refuses it then)."""
    best = 0
    for path in paths:
        start, end, most = 0, len(raw), most_fields
        try:
            for number in path:
                hits = [(s, e) for n, s, e in _delimited(raw, start, end, most) if n == number]
                if not hits:
                    break
                (start, end), most = hits[-1], _NESTED_FIELDS
            else:
                best = max(best, end - start)
        except _NotWire:
            continue
    return best


def _delimited(raw: bytes, at: int, end: int, most: int) -> list[tuple[int, int, int]]:
    """(number, payload start, payload end) of each length-delimited field of ``raw[at:end]``."""
    out, count = [], 0
    while at < end:
        count += 1
        if count > most:
            raise _NotWire
        tag, at = _varint(raw, at, end)
        wire_type = tag & 7
        if wire_type == 0:
            _, at = _varint(raw, at, end)
        elif wire_type == 1:
            at += 8
        elif wire_type == 5:
            at += 4
        elif wire_type == 2:
            length, at = _varint(raw, at, end)
            out.append((tag >> 3, at, at + length))
            at += length
        else:  # groups: no message of ours has one
            raise _NotWire
    if at != end:
        raise _NotWire
    return out


def _varint(raw: bytes, at: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while at < end and shift < 64:
        b = raw[at]
        at += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at
        shift += 7
    raise _NotWire


async def read_one(requests: AsyncIterator[bytes], what: str) -> bytes:
    """The one message of a call that is unary on the wire and served request-streaming (so that
    it is admitted before anything is read); INVALID_ARGUMENT for no message or several. ``what``:
    the request message's name.

    The call is read to its end (a unary client half-closes after its message): gRPC's reader
    holds the last message it gave until it is resumed."""
    messages = aiter(requests)
    raw = await anext(messages, None)
    if raw is None:
        raise InvalidInput(f"the call carried no {what}: send one")
    if await anext(messages, None) is not None:
        raise InvalidInput(f"this method takes one {what}: send one message")
    return raw


async def read_request(requests: AsyncIterator[bytes], deadline: float, limit_s: float, what: str) -> bytes:
    """``read_one`` by ``deadline`` (event-loop time: the call's start plus ``limit_s``,
    ``limits.request_read_timeout_s``); DEADLINE_EXCEEDED after it."""
    left = deadline - asyncio.get_running_loop().time()
    try:
        return await asyncio.wait_for(read_one(requests, what), max(0.0, left))
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


async def write_response(context: grpc.aio.ServicerContext[Any, Any], message: Message | bytes) -> None:
    """Send one response of a response stream. A door's stream handler writes its responses with
    this instead of yielding them to grpc (it stays an async generator that yields nothing, so grpc
    and the tracing interceptor still treat it as a response stream): a write that waits for a
    client that stopped reading fails once that client cancels (or its connection or deadline
    goes), and grpc logs the failure as an ERROR with a traceback whenever it reaches grpc before
    grpc has seen the cancel, which is the usual order. Here it ends the handler as the
    cancel would have: the call is over and nobody is left to tell."""
    try:
        await context.write(message)
    except (cygrpc.ExecuteBatchError, grpc.RpcError):
        raise asyncio.CancelledError("the call ended while a response was being sent") from None
