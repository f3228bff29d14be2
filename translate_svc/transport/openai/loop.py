"""The realtime session loop: the I/O around one session of the sans-I/O protocol (``protocol.py``).

It reads the client's messages (a WebSocket's frames here, WebRTC's data channel in ``webrtc.py``),
feeds them to the protocol (``RealtimeProtocol``, or a transcription session's
``TranscriptionProtocol``), sends what it answers at once, drives the stream core
(``session.StreamDriver``) with its requests, and sends what it renders of the core's events. Each
session is one stream of the shared stream core, so the first-message rule, admission, limits, the
idle timeout and the drain are the gRPC door's; a WebSocket's client that answers pings is alive,
so its configured session outlives the idle timeout while it sends nothing (a muted speaker). A
session opened with a token ends if the token is removed from the tokens file (``Revocation``).
Event loop only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Protocol

from aiohttp import hdrs, web

from translate_svc.errors import NotReady, ServiceError
from translate_svc.observability import tracing
from translate_svc.observability.access import CallInfo
from translate_svc.session.admission import Admission
from translate_svc.session.calls.stream import StreamDriver
from translate_svc.session.events import Gone, StreamEnded, StreamEvent, StreamRequest, StreamStarted
from translate_svc.session.manager import SessionManager
from translate_svc.transport.calls import SMALL_MESSAGE_BYTES
from translate_svc.transport.http.caller import Caller, stream_driver
from translate_svc.transport.http.handshake import read_offer
from translate_svc.transport.http.websocket import OpenSockets, SocketLife, Unreadable, admit, received
from translate_svc.transport.openai.wire import REALTIME, Out, Reply, Speech, service_error_event
from translate_svc.types import ModelCard

#: sends one event to the client (the WebSocket, or WebRTC's data channel)
Send = Callable[[str], Awaitable[None]]
#: plays translated speech on WebRTC's track of its language
Play = Callable[[Speech], None]


class SessionProtocol(Protocol):
    """What the loop drives, sans I/O: a translation session's ``RealtimeProtocol`` or a
    transcription session's ``TranscriptionProtocol``."""

    #: how the socket closes (1012 after a drain); ``closed``: the client half-closed
    close_code: int
    closed: bool

    def created(self) -> str: ...

    def resume(self, value: str) -> Iterator[Reply]: ...

    def receive(self, text: str | None) -> Iterator[Reply]: ...

    def render(self, ev: StreamStarted | StreamEvent) -> Iterator[Out]: ...


def ws_message_bytes(max_append_bytes: int) -> int:
    """The largest WebSocket message the door reads: one append of ``max_append_bytes`` of audio as
    base64, and room for its JSON as a stream message has for its other fields (what one socket can
    make the server buffer at once)."""
    return 4 * (max_append_bytes + 2) // 3 + SMALL_MESSAGE_BYTES


async def replied(outs: Iterable[Reply], send: Send) -> list[StreamRequest]:
    """What the protocol gave for one client message: its answers sent, in order; its requests."""
    requests: list[StreamRequest] = []
    for out in outs:
        if isinstance(out, str):
            await send(out)
        else:
            requests.append(out)
    return requests


async def requests(
    protocol: SessionProtocol,
    messages: AsyncIterator[str | None],
    send: Send,
    first: StreamRequest | None = None,
    *,
    gone_at_end: bool = False,
) -> AsyncIterator[StreamRequest]:
    """The stream core's requests from the client's ``messages`` (None: a binary one), through the
    protocol: ``first`` (a resumed session's config), then what each message gives, its answers
    sent before its requests go on; ends on ``session.close`` or when the messages end, then with
    ``Gone`` if ``gone_at_end`` (a WebSocket closed without ``session.close``: the client went away,
    nothing more is computed for it)."""
    if first is not None:
        yield first
    async for text in messages:
        for out in protocol.receive(text):  # an append's chunks one at a time, as the core takes them
            if isinstance(out, str):
                await send(out)
            else:
                yield out
        if protocol.closed:
            return
    if gone_at_end:
        yield Gone()


async def serve_session(
    manager: SessionManager,
    protocol: SessionProtocol,
    requests: AsyncIterator[StreamRequest],
    caller: Caller,
    call: CallInfo | None = None,
    *,
    send: Send,
    play: Play | None = None,
    admission: Admission | None = None,
    peer_alive: Callable[[], bool] | None = None,
) -> None:
    """Run one session of ``caller`` through the stream core until it ends; every event goes to the
    client (``send``; speech for a track to ``play``). ``call``: for the access log. ``admission``:
    the stream's slots, when the door took them before it upgraded the connection
    (``SessionManager.admit_stream``); the driver owns them. ``peer_alive``: whether the client
    still answers the transport's pings (``StreamDriver``: a muted client is not idle)."""
    driver = stream_driver(manager, caller, call, admission=admission, peer_alive=peer_alive)
    method = call.method if call is not None else "realtime"
    request_id = {"translate_svc.request_id": call.request_id} if call is not None else {}
    with tracing.call_span(f"{method} session", **request_id):  # no instrumentation covers these doors
        try:
            with caller.watching(driver):
                await _drive(driver, protocol, requests, send, play)
        except ServiceError as e:
            await send(service_error_event(e))


async def _drive(
    driver: StreamDriver,
    protocol: SessionProtocol,
    requests: AsyncIterator[StreamRequest],
    send: Send,
    play: Play | None,
) -> None:
    """The driver's events as OpenAI's, until the stream ends."""
    async with contextlib.aclosing(driver.run(requests)) as events:
        async for ev in events:
            for out in protocol.render(ev):  # a result's speech one delta at a time
                if isinstance(out, str):
                    await send(out)
                elif play is not None:
                    play(out)
            if isinstance(ev, StreamEnded):
                break  # the stream is over: nothing is held open for a WebSocket


def card_or_none(manager: SessionManager) -> ModelCard | None:
    """The model card once the model is loaded; None before (a session opened early learns it later)."""
    try:
        return manager.card
    except NotReady:
        return None


async def admit_and_serve(
    request: web.Request,
    manager: SessionManager,
    protocol: SessionProtocol,
    caller: Caller,
    call: CallInfo,
    *,
    resume: str | None,
    sockets: OpenSockets,
) -> web.StreamResponse:
    """One realtime session over a WebSocket (``../http/websocket.py``): the stream's slots before
    the upgrade (a tenant at its cap, a full or a draining server is answered 429 or 503 and no
    socket opens), then the upgrade (its largest message an append's, the subprotocol the caller
    check accepted), ``session.created``, the session (resumed at once with ``resume``, a drained
    session's ``x_resume``), then the close with the protocol's code. The client is pinged after
    ``heartbeat_s`` without a frame from it and the socket closed without its pong: while it
    answers, a configured session that gets no audio (a muted speaker) is not idle."""
    admission = await admit(manager, caller.tenant)
    if isinstance(admission, web.Response):
        return admission
    offered = read_offer(request.headers.get(hdrs.SEC_WEBSOCKET_PROTOCOL), REALTIME).protocol
    # one event at most: an audio append of ws_max_append_bytes (base64) and its JSON; what an
    # unconfigured socket can make the server hold is a few of these
    life = SocketLife(
        request,
        manager.limits,
        call,
        sockets,
        max_msg_size=ws_message_bytes(manager.limits.ws_max_append_bytes),
        subprotocol=offered,
        release=admission.release,  # the session's own once it started (then this does nothing)
    )
    async with life as ws:

        async def send(text: str) -> None:
            if not ws.closed:
                await ws.send_str(text)

        try:
            await send(protocol.created())
            # a client back from a drained server resumes its stream at once (x_resume, from the
            # last session.closed): its appends go on with no session.update first
            first = (await replied(protocol.resume(resume), send))[0] if resume else None
            flow = requests(protocol, _texts(ws), send, first, gone_at_end=True)
            await serve_session(
                manager, protocol, flow, caller, call, send=send, admission=admission, peer_alive=lambda: not ws.closed
            )
        finally:
            life.close_code = protocol.close_code
    return ws


async def _texts(ws: web.WebSocketResponse) -> AsyncIterator[str | None]:
    """The client's messages as the protocol reads them: text, or None for a binary one."""
    async for message in received(ws):
        if isinstance(message, Unreadable):
            return
        yield message if isinstance(message, str) else None
