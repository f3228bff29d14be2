"""A carrier that stops reading its WebSocket (issue 57: the phone door left its socket buffers to
the kernel, ~500 KB of speech waited there unseen and ``phone.max_held_s`` never fired). The door
now bounds them as the OpenAI door does (``limits.ws_send_buffer_bytes`` above the socket and in
the kernel, ``transport/sockets.py``), so a carrier that stops reading ends ``carrier_stalled``
once what the bounded buffers hold is full and ``phone.max_held_s`` passes. The carrier is
Twilio's Media Streams client as its published messages define it (connected, start, media;
https://www.twilio.com/docs/voice/media-streams/websocket-messages), on the ``websockets``
library with a small receive buffer and a receive queue of one message, never read: a carrier
whose reading stopped."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import websockets

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import (
    AccessLines,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    ulaw_bytes,
)
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]

MAX_HELD_S = 2.0
SEND_BUFFER = 8192  # limits.ws_send_buffer_bytes, small so the test is short
SPEED = 6.0  # the caller's speech, this many times real time
SPEECH_S = 66  # jfk.flac six times


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = phone_settings(test_model_dir, max_held_s=MAX_HELD_S, simultaneous=False)
    settings.limits.ws_send_buffer_bytes = SEND_BUFFER
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


async def test_a_carrier_that_stops_reading_ends_carrier_stalled(
    phone: LiveServer, shared_audio: Path, access: AccessLines, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="translate_svc.transport.phone")
    caplog.set_level(logging.INFO, logger="translate_svc.transport.telephony")
    speech = ulaw_bytes(np.tile(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000), 6))
    assert len(speech) == SPEECH_S * 8000
    speech += b"\xff" * 8000 * 20  # then 20 s of silence, at real time
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    port = phone.server.ports()["http_port"]
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    sid = "MZ" + uuid.uuid4().hex
    start = {
        "streamSid": sid,
        "callSid": "CA" + uuid.uuid4().hex,
        "tracks": ["inbound"],
        "customParameters": {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    loop = asyncio.get_running_loop()
    sent_s = 0.0
    async with websockets.connect(
        phone_url(phone.server, "twilio"), sock=sock, max_queue=1, ping_interval=None, close_timeout=1, compression=None
    ) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": sid, "start": start}))
        t0 = loop.time()
        try:
            for n, i in enumerate(range(0, len(speech), 160), 1):
                media = {
                    "track": "inbound",
                    "chunk": str(n),
                    "timestamp": str(20 * n),
                    "payload": base64.b64encode(speech[i : i + 160]).decode(),
                }
                await ws.send(json.dumps({"event": "media", "streamSid": sid, "media": media}))
                sent_s = n * 0.02
                await asyncio.sleep(
                    max(0.0, t0 + min(sent_s, SPEECH_S) / SPEED + max(0.0, sent_s - SPEECH_S) - loop.time())
                )
        except websockets.ConnectionClosed:
            pass
    await calls_ended(phone.server)
    (line,) = access.of("phone_twilio")
    # the call was cut while its caller still spoke: the bounded buffers filled, then more than
    # phone.max_held_s of speech waited (or a write did not finish within it)
    assert line["code"] == "OUT_OF_RANGE", line
    stalls = [r.getMessage() for r in caplog.records if r.getMessage().startswith("phone call ended:")]
    assert stalls and ("phone.max_held_s" in stalls[0] or "did not finish" in stalls[0]), stalls
    assert sent_s < SPEECH_S, f"the call lived through all {sent_s:.0f} s of its caller's speech"
