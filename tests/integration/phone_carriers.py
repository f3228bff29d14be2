"""Fake carriers for the phone door's tests and benchmark, each written from the carrier's PUBLISHED
message format, not from our code (docs/design.md pitfall 26):

- ``FakeTwilio``: Twilio's "Media Streams - WebSocket Messages" page
  (https://www.twilio.com/docs/voice/media-streams/websocket-messages): ``connected``, ``start``,
  ``media`` every 20 ms (base64 µ-law 8 kHz, ``chunk`` and ``timestamp``), ``stop``; it plays the
  ``media`` it is sent in order in real time, echoes each ``mark`` once the audio sent before it has
  played, and on ``clear`` drops what it holds and echoes the pending marks.
- ``FakeAsterisk``: Asterisk's "WebSocket" channel driver page (docs.asterisk.org,
  Configuration/Channel-Drivers/WebSocket): ``MEDIA_START`` (plain text or JSON), binary frames of
  the channel's format every 20 ms; it queues binary frames and plays one per 20 ms, answers
  ``MARK_MEDIA`` with ``MEDIA_MARK_PROCESSED`` and ``STOP_MEDIA_BUFFERING <id>`` with
  ``MEDIA_BUFFERING_COMPLETED <id>`` when the mark reaches the front of its queue, drops its queue
  on ``FLUSH_MEDIA``, can send ``MEDIA_XOFF``.
- ``FakeAudioSocket``: Asterisk's "AudioSocket" page: a TCP stream of frames, a 3-byte header
  (kind, big-endian length): ``0x01`` the UUID, ``0x10`` slin 8 kHz, ``0x00`` hang-up.

The audio is encoded by libsndfile (soundfile's RAW ULAW / PCM_16), an encoder nobody here wrote.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import soundfile as sf

FRAME_S = 0.02


def ulaw_bytes(pcm16: np.ndarray) -> bytes:
    """8 kHz int16 samples as µ-law, by libsndfile."""
    buf = io.BytesIO()
    sf.write(buf, pcm16, 8000, format="RAW", subtype="ULAW")
    return buf.getvalue()


def ulaw_decode(data: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(data), samplerate=8000, channels=1, format="RAW", subtype="ULAW", dtype="float32")[0]


@dataclass
class CarrierLog:
    """What a fake carrier saw of a call."""

    #: outbound speech bytes (the call's codec), in order, and the marks between them
    items: list[bytes | str] = field(default_factory=list)
    #: mark name -> (when its audio had played on the carrier's clock, when it was echoed)
    echoed: dict[str, tuple[float, float]] = field(default_factory=dict)
    clears: int = 0
    close_code: int | None = None
    other: list[Any] = field(default_factory=list)

    @property
    def speech_bytes(self) -> int:
        return sum(len(i) for i in self.items if isinstance(i, bytes))

    @property
    def marks(self) -> list[str]:
        return [i for i in self.items if isinstance(i, str)]


class _Player:
    """Plays what a carrier is sent in real time, one queue: when each byte will have played."""

    def __init__(self, bytes_per_s: int) -> None:
        self.rate = bytes_per_s
        self.ends_at = 0.0

    def queue(self, n: int, now: float) -> float:
        self.ends_at = max(self.ends_at, now) + n / self.rate
        return self.ends_at


class FakeTwilio:
    """One bidirectional Media Stream of one call (``<Connect><Stream>``)."""

    def __init__(self, url: str, *, custom: dict[str, str] | None = None, headers: dict[str, str] | None = None):
        self.url = url
        self.custom = custom or {}
        self.headers = headers or {}
        self.sid = "MZ" + uuid.uuid4().hex
        self.log = CarrierLog()
        self.echo_marks = True
        self._seq = 0

    def _msg(self, event: str, **body: Any) -> str:
        self._seq += 1
        out = {"event": event, "sequenceNumber": str(self._seq), **body}
        if event != "connected":
            out["streamSid"] = self.sid
        return json.dumps(out)

    async def call(self, ulaw: bytes, *, linger_s: float = 12.0, quiet_s: float = 2.0, speed: float = 1) -> CarrierLog:
        """Stream ``ulaw`` at real time (``speed`` x), then silence until nothing has come for
        ``quiet_s`` and every mark is echoed (at most ``linger_s``), then ``stop``."""
        loop = asyncio.get_running_loop()
        player = _Player(8000)
        last_out = [loop.time()]
        pending: set[asyncio.TimerHandle] = set()
        async with aiohttp.ClientSession() as http, http.ws_connect(self.url, headers=self.headers) as ws:

            async def echo(name: str, played_at: float) -> None:
                if not ws.closed:
                    await ws.send_str(self._msg("mark", mark={"name": name}))
                self.log.echoed[name] = (played_at, loop.time())

            async def read() -> None:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        self.log.other.append(msg.type)
                        continue
                    m = json.loads(msg.data)
                    last_out[0] = loop.time()
                    assert m.get("streamSid") == self.sid, m
                    if m["event"] == "media":
                        data = base64.b64decode(m["media"]["payload"], validate=True)
                        self.log.items.append(data)
                        player.queue(len(data), loop.time())
                    elif m["event"] == "mark":
                        name = m["mark"]["name"]
                        self.log.items.append(name)
                        if self.echo_marks:
                            at = player.ends_at
                            h = loop.call_at(max(at, loop.time()), lambda n=name, a=at: loop.create_task(echo(n, a)))
                            pending.add(h)
                    elif m["event"] == "clear":
                        self.log.clears += 1
                        player.ends_at = loop.time()
                        for h in list(pending):
                            h.cancel()
                        pending.clear()
                        for name in self.log.marks:
                            if name not in self.log.echoed:
                                await echo(name, loop.time())
                    else:
                        self.log.other.append(m)

            reader = loop.create_task(read())
            await ws.send_str(self._msg("connected", protocol="Call", version="1.0.0"))
            start = {
                "accountSid": "AC" + "0" * 32,
                "streamSid": self.sid,
                "callSid": "CA" + uuid.uuid4().hex,
                "tracks": ["inbound"],
                "customParameters": self.custom,
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            }
            await ws.send_str(self._msg("start", start=start))
            t0 = loop.time()
            chunk = 0
            silence = b"\xff" * 160

            async def send_frame(data: bytes) -> None:
                nonlocal chunk
                chunk += 1
                media = {
                    "track": "inbound",
                    "chunk": str(chunk),
                    "timestamp": str(chunk * 20),
                    "payload": base64.b64encode(data).decode(),
                }
                await asyncio.sleep(max(0.0, t0 + chunk * FRAME_S / speed - loop.time()))
                if not ws.closed:
                    await ws.send_str(self._msg("media", media=media))

            for i in range(0, len(ulaw), 160):
                await send_frame(ulaw[i : i + 160])
            end_by = loop.time() + linger_s
            while loop.time() < end_by and not ws.closed:
                waiting = self.echo_marks and len(self.log.echoed) < len(self.log.marks)
                if not waiting and loop.time() - last_out[0] > quiet_s:
                    break
                await send_frame(silence)
            if not ws.closed:
                ids = {"accountSid": start["accountSid"], "callSid": start["callSid"]}
                await ws.send_str(self._msg("stop", stop=ids))
                await ws.close()
            await reader
            self.log.close_code = ws.close_code
        return self.log
