"""Bearer tokens on the gRPC door: a server interceptor over the shared store (``../tokens/``).

Health (``grpc.health.v1``) stays open: probes carry no token. The interceptor decides before the
handler runs, for unary and streaming calls alike (``tokens.authorize``: the call's one lookup): a
refused call gets a handler of the same shape that only aborts, so a stream's handler never starts;
a call let in runs with its caller (``rpc.let_in``), which the handler takes from there
(``rpc.caller_of``) instead of looking the token up again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.transport.refusal_log import RefusalLog
from translate_svc.transport.rpc import bearer_token, let_in
from translate_svc.transport.tokens.authorization import Authorized, authorize
from translate_svc.transport.tokens.file import Permission
from translate_svc.transport.tokens.refusals import Refusal, RefusalKind, Wording
from translate_svc.transport.tokens.store import TokenStore

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Translator"].full_name

HEALTH_PREFIX = "/grpc.health.v1.Health/"
HOW_TO_SEND = 'send metadata "authorization: Bearer <token>"'
#: the gRPC port's refusals (``tokens.authorize``), as its clients have seen them
WORDING = Wording(
    how_to_send=HOW_TO_SEND,
    malformed=f"malformed authorization metadata: {HOW_TO_SEND}",
    unknown="the token is not valid; send a current token of this server (tokens may have been rotated)",
    lacks='the token lacks the permission "{permission}" that {what} needs; ask for a token with it',
)
#: each refusal's status
STATUS: dict[RefusalKind, grpc.StatusCode] = {
    RefusalKind.NO_TOKEN: grpc.StatusCode.UNAUTHENTICATED,
    RefusalKind.MALFORMED: grpc.StatusCode.UNAUTHENTICATED,
    RefusalKind.UNKNOWN_TOKEN: grpc.StatusCode.UNAUTHENTICATED,
    RefusalKind.NO_PERMISSION: grpc.StatusCode.PERMISSION_DENIED,
}


#: the permission each Translator method needs; other methods (reflection) need any valid token
METHOD_PERMISSIONS: dict[str, Permission] = {
    f"/{SERVICE_NAME}/ListLanguages": Permission.LANGUAGES,
    f"/{SERVICE_NAME}/Translate": Permission.TRANSLATE,
    f"/{SERVICE_NAME}/TranslateChunked": Permission.TRANSLATE,
    f"/{SERVICE_NAME}/StreamingTranslate": Permission.STREAM,
    f"/{SERVICE_NAME}/TranslateText": Permission.TRANSLATE,
    f"/{SERVICE_NAME}/DetectSynthetic": Permission.TRANSLATE,
}


#: Listen needs no permission of the list but room rights: a listen= (or room=) pattern, or every
#: permission; a token without them is refused as the call opens, before its request is read
LISTEN_METHOD = f"/{SERVICE_NAME}/Listen"
NO_ROOM_TO_HEAR = (
    "the token may listen to no room: Listen needs a token whose line in the tokens file has a listen= "
    "(or room=) pattern, or grants every permission; ask for a token with one"
)

#: methods served as streams whose client sends one message: a refusal never reads it
UNARY_REQUEST_METHODS = frozenset({LISTEN_METHOD})

Denial = tuple[grpc.StatusCode, str]


def decide(
    store: TokenStore,
    method: str,
    metadata: Iterable[tuple[str, Any]] | None,
    permissions: Mapping[str, Permission] = METHOD_PERMISSIONS,
) -> Authorized | Denial | None:
    """The caller if the call may go on (None: a health call, open to all), else the status and
    message to end it with (``permissions``: what each method needs; other doors on this port add
    theirs; any other method needs a valid token; Listen needs room rights to listen with)."""
    if method.startswith(HEALTH_PREFIX):
        return None
    name = method.rsplit("/", 1)[-1]
    decision = authorize(store, bearer_token(metadata), permissions.get(method), WORDING, name)
    if isinstance(decision, Refusal):
        return STATUS[decision.kind], decision.message
    if method == LISTEN_METHOD and not decision.rooms.listen:
        return grpc.StatusCode.PERMISSION_DENIED, NO_ROOM_TO_HEAR
    return decision


async def _discard(requests: AsyncIterator[Any]) -> None:
    async for _ in requests:
        pass


class DrainSlots:
    """Refused streams that may drain their client's sends at once. Each holds a call slot of the
    server meanwhile (the server keeps ``most`` on top of ``limits.max_calls``), so beyond them a
    refused stream ends at once: callers without a token cannot hold slots for long. Event loop only."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.held = 0

    def take(self) -> bool:
        if self.held >= self.most:
            return False
        self.held += 1
        return True

    def give(self) -> None:
        self.held -= 1


def _denying(
    handler: Any,
    code: grpc.StatusCode,
    message: str,
    drain_s: float,
    log: RefusalLog,
    slots: DrainSlots,
    *,
    unary_request: bool = False,
) -> Any:
    """A handler that only ends the call.

    A call that is not a bidirectional stream (``Translate``: up to the port's receive limit) is
    **never read**: the refusal is a request-streaming handler that ends the call at once, so gRPC does not take in
    the message (only what HTTP/2 flow control lets the client send first), and a refused call
    costs about as little as a refused stream. A refused stream first drops what the client still
    sends, until it half-closes or for at most ``drain_s`` (``server.error_drain_s``), as the
    servicer does for a failed stream: grpc-python's asyncio client reports INTERNAL instead of
    the real status when one of its writes fails after the call ended (grpc/grpc#36066). Nothing
    read is parsed. At most ``slots.most`` refused streams drain at once; beyond them (a flood) a
    refused stream ends at once, whatever its client then reports. ``unary_request``: a method
    served as a stream whose client sends one message (Listen): refused unread, as a unary call.
    """

    async def deny_unread(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> None:
        log("call", context.peer(), code)
        await context.abort(code, message)

    async def deny_stream(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> None:
        log("stream", context.peer(), code)
        if not slots.take():
            await context.abort(code, message)
        drain = asyncio.ensure_future(_discard(requests))
        try:
            await asyncio.wait({drain}, timeout=drain_s)
            await context.abort(code, message)
        finally:
            drain.cancel()
            slots.give()

    if handler is not None and handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny_unread if unary_request else deny_stream)
    # the unary methods (request-streaming on this side, unary calls on the wire) and unknown methods
    streaming_out = handler is not None and handler.response_streaming
    maker = grpc.stream_stream_rpc_method_handler if streaming_out else grpc.stream_unary_rpc_method_handler
    return maker(deny_unread)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Checks ``authorization: Bearer <token>`` on every call but health. Event loop only.

    What a caller without a token may hold (docs/security.md): a health Check is answered at once;
    a health Watch stays open, bounded per port (``server.HealthDoor``); any other call is refused,
    at once, or (a stream) after draining its client's sends for at most ``error_drain_s``, with at
    most ``max_drains`` refused streams draining at once."""

    def __init__(
        self,
        store: TokenStore,
        *,
        error_drain_s: float = 2.0,
        max_drains: int = 16,
        permissions: Mapping[str, Permission] | None = None,
    ) -> None:
        self.store = store
        #: what each method needs: the Translator's, and those of other doors on this port
        self.permissions = {**METHOD_PERMISSIONS, **(permissions or {})}
        self._drain_s = error_drain_s
        self.refusals = RefusalLog()
        self.drains = DrainSlots(max_drains)

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        method = handler_call_details.method
        if isinstance(method, bytes):
            method = method.decode("utf-8", "replace")
        decision = decide(self.store, method, handler_call_details.invocation_metadata, self.permissions)
        handler = await continuation(handler_call_details)
        if decision is None:  # health
            return handler
        if isinstance(decision, Authorized):  # None for an unknown method: UNIMPLEMENTED
            return None if handler is None else let_in(handler, decision)
        unary_request = method in UNARY_REQUEST_METHODS
        return _denying(handler, *decision, self._drain_s, self.refusals, self.drains, unary_request=unary_request)
