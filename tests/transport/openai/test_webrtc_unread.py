"""Issue 52 F4 on WebRTC's data channel, whose send never waits (aiortc buffers what the peer has
not acknowledged without bound) and whose peer's messages arrive whether the session reads them or
not: a call's send waits while its buffer is over ``limits.ws_send_buffer_bytes``, as a
WebSocket's does, and a call whose channel brings more events than its session takes is closed.
The channel and the peer connection are stand-ins with aiortc's surface."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

import pytest

from translate_svc.observability.access import CallInfo
from translate_svc.session.manager import SessionManager
from translate_svc.settings import LimitsSettings
from translate_svc.transport.openai.webrtc import MAX_UNTAKEN_MESSAGES, _Call

pytestmark = pytest.mark.unit


class Emitter:
    def __init__(self) -> None:
        self.handlers: dict[str, Callable[..., Any]] = {}

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        self.handlers[event] = handler


class Channel(Emitter):
    """aiortc's RTCDataChannel as far as the call uses it: what is sent stays buffered until the
    peer takes it (``take``), which says ``bufferedamountlow`` when it crosses the threshold."""

    label = "oai-events"
    readyState = "open"

    def __init__(self) -> None:
        super().__init__()
        self.bufferedAmount = 0
        self.bufferedAmountLowThreshold = 0
        self.sent: list[str] = []

    def send(self, text: str) -> None:
        self.sent.append(text)
        self.bufferedAmount += len(text)

    def take(self, n: int) -> None:
        crosses = self.bufferedAmount > self.bufferedAmountLowThreshold >= self.bufferedAmount - n
        self.bufferedAmount -= n
        if crosses:
            self.handlers["bufferedamountlow"]()


class PeerConnection(Emitter):
    closed = False

    async def close(self) -> None:
        self.closed = True


class Manager:
    limits = LimitsSettings(ws_send_buffer_bytes=8192)


def _call() -> tuple[_Call, Channel, PeerConnection]:
    pc, channel = PeerConnection(), Channel()
    info = CallInfo("req-1", "realtime.call")
    call = _Call(cast(SessionManager, Manager()), cast(Any, pc), {}, "m", None, cast(Any, None), info, cast(Any, None))
    pc.handlers["datachannel"](channel)
    return call, channel, pc


async def test_a_send_waits_while_the_peer_has_not_taken_the_bound() -> None:
    call, channel, _ = _call()
    await call._send("x" * 8000)  # under the bound: at once
    sending = asyncio.create_task(call._send("y" * 1000))  # over it: waits for the peer
    await asyncio.sleep(0.01)
    assert not sending.done() and len(channel.sent) == 2
    channel.take(4000)  # still over half the bound: waits on
    await asyncio.sleep(0.01)
    assert not sending.done()
    channel.take(1000)  # at half: the send returns, the next may go
    await asyncio.wait_for(sending, 1)


async def test_a_channel_that_brings_more_events_than_the_session_takes_closes_the_call() -> None:
    call, channel, pc = _call()
    for _ in range(MAX_UNTAKEN_MESSAGES):
        channel.handlers["message"]('{"type": "session.update"}')
    assert call.messages.qsize() == MAX_UNTAKEN_MESSAGES and not call.gone.is_set()
    channel.handlers["message"]('{"type": "session.update"}')
    await asyncio.sleep(0)
    assert call.gone.is_set() and pc.closed and call.messages.qsize() == MAX_UNTAKEN_MESSAGES
    await asyncio.wait_for(call._send("z" * 100_000), 1)  # gone: nothing more waits to be sent
