"""The phone-call example (examples/twilio_interpreter.py) answering a call placed as Twilio
places one: a WebSocket client speaks Twilio Media Streams to the example's web app (served by
uvicorn on loopback), the caller's 8 kHz mu-law goes in, and Twilio messages come back.

Pipecat's own transport, serializer, VAD and turn processor run, with the service between them,
against a real translate_svc server (random weights: only message kinds and order are checked).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.util
import json
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import uvicorn
from pipecat.audio.utils import create_stream_resampler, pcm_to_ulaw
from pipeline_harness import FRAME_MS, chunks
from websockets.asyncio.client import ClientConnection, connect

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "twilio_interpreter.py"
STREAM_SID = "MZ00000000000000000000000000000001"
PHONE_RATE = 8000


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("twilio_interpreter", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    """``app`` served by uvicorn on a loopback port (listening before this yields)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)
        sock.close()


class TwilioCall:
    """The Twilio side of a call: sends the caller's audio as ``media`` messages, 20 ms each at
    real time, and keeps every message the app sends back."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._resampler = create_stream_resampler()
        self._chunk = 0

    async def start(self) -> None:
        await self.ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        start = {
            "streamSid": STREAM_SID,
            "accountSid": "AC00000000000000000000000000000001",
            "callSid": "CA00000000000000000000000000000001",
            "tracks": ["inbound"],
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": PHONE_RATE, "channels": 1},
        }
        await self.ws.send(
            json.dumps({"event": "start", "sequenceNumber": "1", "start": start, "streamSid": STREAM_SID})
        )

    async def read(self) -> None:
        async for message in self.ws:
            self.received.append(json.loads(message))
            self._changed.set()

    def events(self) -> list[str]:
        return [m["event"] for m in self.received]

    async def say(self, frames: list[bytes]) -> None:
        """Send 8 kHz PCM16 frames as the caller's audio."""
        for pcm in frames:
            payload = await pcm_to_ulaw(pcm, PHONE_RATE, PHONE_RATE, self._resampler)
            self._chunk += 1
            media = {"track": "inbound", "chunk": str(self._chunk), "payload": base64.b64encode(payload).decode()}
            await self.ws.send(json.dumps({"event": "media", "streamSid": STREAM_SID, "media": media}))
            await asyncio.sleep(FRAME_MS / 1000)

    async def silence(self, ms: int) -> None:
        await self.say([bytes(PHONE_RATE * FRAME_MS // 1000 * 2)] * (ms // FRAME_MS))

    async def silence_until(self, predicate: Callable[[TwilioCall], bool], timeout_s: float) -> None:
        """The caller stays silent (a phone line sends silence too) until ``predicate`` holds."""

        async def loop() -> None:
            while not predicate(self):
                await self.silence(FRAME_MS)

        await asyncio.wait_for(loop(), timeout_s)


async def test_the_phone_example_speaks_the_translation_into_the_call_and_a_new_turn_clears_it(
    server: str, speech16k: np.ndarray
) -> None:
    """With ``--barge-in``: the caller's first phrase starts a turn (Twilio gets a ``clear``;
    nothing plays yet) and its translation comes back as ``media`` messages (pipecat's transport
    sends them ahead of real time; Twilio buffers and plays them). The caller listens a second and
    speaks again: the new turn is an interruption, and Twilio gets a ``clear``, which empties what
    it still has to play. Every message is for the call's stream."""
    example = load_example()
    app = example.make_app(server, "en", "es", barge_in=True)
    phrase1 = chunks(speech16k[: 16000 * 5 // 2], PHONE_RATE)  # speech 0.0-2.0 s, then silence
    phrase2 = chunks(speech16k[16000 * 5 // 2 : 16000 * 5], PHONE_RATE)  # speech 2.7-4.7 s

    async with serving(app) as port, connect(f"ws://127.0.0.1:{port}/ws") as ws:
        call = TwilioCall(ws)
        reader = asyncio.create_task(call.read())
        await call.start()
        await call.say(phrase1)
        await call.silence_until(lambda c: "media" in c.events(), timeout_s=60)
        first_media = call.events().index("media")
        await call.silence(1000)  # the caller listens: the turn ends on the VAD's silence
        await call.say(phrase2)
        await call.silence_until(lambda c: "clear" in c.events()[first_media:], timeout_s=30)
        await ws.close()
        await asyncio.wait_for(reader, 30)

    events = call.events()
    assert set(events) == {"media", "clear"}, events
    assert all(m["streamSid"] == STREAM_SID for m in call.received)
    assert events.index("clear") < first_media  # the first turn's, before anything played
    speech = b"".join(base64.b64decode(m["media"]["payload"]) for m in call.received if m["event"] == "media")
    assert len(speech) >= PHONE_RATE * FRAME_MS // 1000  # mu-law at 8 kHz: a byte a sample
