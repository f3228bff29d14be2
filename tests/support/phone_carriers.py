"""Fake carriers for the phone door's tests and benchmark, each written from the carrier's PUBLISHED
message format, not from our code (docs/design.md pitfall 26):

- ``MediaStreamCarrier``: what every carrier of Twilio's JSON shape does on a call (real-time
  ``media``, a player that plays what it is sent in order, ``mark`` sent back once the audio before
  it has played, ``clear``); each vendor's messages are its own subclass: ``FakeTwilio`` here,
  Telnyx, SignalWire and Exotel in ``phone_cousins.py``.
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

Each log keeps when the carrier sent each frame of the caller's audio (``CarrierLog.sent``) and
when it said each mark's audio had played (``CarrierLog.echoed``): the ear-voice lag as the
carrier saw it (``phone_lag.py``). The audio is encoded by libsndfile (soundfile's RAW ULAW /
ALAW / PCM_16), an encoder nobody here wrote.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
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


def alaw_bytes(pcm16: np.ndarray) -> bytes:
    """8 kHz int16 samples as A-law, by libsndfile."""
    buf = io.BytesIO()
    sf.write(buf, pcm16, 8000, format="RAW", subtype="ALAW")
    return buf.getvalue()


def alaw_decode(data: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(data), samplerate=8000, channels=1, format="RAW", subtype="ALAW", dtype="float32")[0]


@dataclass
class CarrierLog:
    """What a fake carrier saw of a call."""

    #: outbound speech bytes (the call's codec), in order, and the marks between them
    items: list[bytes | str] = field(default_factory=list)
    #: mark name -> (when its audio had played on the carrier's clock, when it was echoed)
    echoed: dict[str, tuple[float, float]] = field(default_factory=dict)
    clears: int = 0
    close_code: int | None = None
    #: when the carrier saw the server's close (its own clock), None: it closed first
    closed_at: float | None = None
    #: set on every message from the server (a test waits on it, never on a sleep)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    other: list[Any] = field(default_factory=list)
    #: (the call's timeline ms its audio reached, when the carrier sent the frame that reached it),
    #: one per frame sent: where a segment's source speech ended, on the carrier's clock
    sent: list[tuple[int, float]] = field(default_factory=list)
    #: the server's JSON messages' ``event`` names, in order
    events: list[str] = field(default_factory=list)

    @property
    def speech_bytes(self) -> int:
        return sum(len(i) for i in self.items if isinstance(i, bytes))

    @property
    def marks(self) -> list[str]:
        return [i for i in self.items if isinstance(i, str)]

    @property
    def media_sizes(self) -> list[int]:
        """The bytes of each outbound media message, in order."""
        return [len(i) for i in self.items if isinstance(i, bytes)]

    def sent_at(self, ms: int) -> float:
        """When the carrier sent the frame with which the call's audio reached ``ms``."""
        return next(at for reached, at in self.sent if reached >= ms)


class _Player:
    """Plays what a carrier is sent in real time, one queue: when each byte will have played."""

    def __init__(self, bytes_per_s: int) -> None:
        self.rate = bytes_per_s
        self.ends_at = 0.0

    def queue(self, n: int, now: float) -> float:
        self.ends_at = max(self.ends_at, now) + n / self.rate
        return self.ends_at


class MediaStreamCarrier:
    """What a carrier of Twilio's JSON shape does on one call, whoever its vendor (subclasses say
    each message as their vendor's page does): it sends ``connected`` (if it has one) and
    ``start``, then the caller's audio in ``media`` messages of ``frame_s`` at real time, then
    silence until nothing has come for ``quiet_s`` and every mark is echoed (at most
    ``linger_s``), then ``stop``. It plays the ``media`` it is sent in order in real time (one
    queue), sends each ``mark`` back once the audio sent before it has played, and on ``clear``
    drops what it holds (and, where its vendor says so, sends back the marks it dropped)."""

    #: the vendor's name (the door's path)
    carrier = ""
    #: the length of one inbound media message
    frame_s = FRAME_S
    #: whether ``clear`` sends back the marks it dropped (Twilio, SignalWire say so)
    clear_echoes_marks = True

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, rate: int = 8000, sample_bytes: int = 1):
        self.url = url
        self.headers = headers or {}
        self.rate = rate
        self.sample_bytes = sample_bytes
        self.log = CarrierLog()
        self.echo_marks = True

    # -- the vendor's messages (each subclass from its vendor's page) ------------------------------

    @property
    def silence(self) -> bytes:
        """One byte of the call's codec's silence (16-bit PCM: two)."""
        return b"\x00\x00" if self.sample_bytes == 2 else b"\xff"

    def connected(self) -> dict[str, Any] | None:
        return None

    def start(self) -> dict[str, Any]:
        raise NotImplementedError

    def media(self, chunk: int, timestamp_ms: int, payload: str) -> dict[str, Any]:
        raise NotImplementedError

    def mark(self, name: str) -> dict[str, Any]:
        raise NotImplementedError

    def stop(self) -> dict[str, Any]:
        raise NotImplementedError

    def check(self, message: dict[str, Any]) -> None:
        """Assert that a message from the server is addressed as the vendor's page says."""

    # -- one call ----------------------------------------------------------------------------------

    async def call(
        self, audio: bytes, *, linger_s: float = 12.0, quiet_s: float = 2.0, speed: float = 1, marks: int = 0
    ) -> CarrierLog:
        """Stream ``audio`` (the call's codec) at real time (``speed`` x), then silence until
        nothing has come for ``quiet_s``, every mark is echoed and at least ``marks`` marks came
        (at most ``linger_s``), then ``stop``."""
        loop = asyncio.get_running_loop()
        player = _Player(self.rate * self.sample_bytes)
        last_out = [loop.time()]
        pending: set[asyncio.TimerHandle] = set()
        stopped = False
        async with aiohttp.ClientSession() as http, http.ws_connect(self.url, headers=self.headers) as ws:

            async def echo(name: str, played_at: float) -> None:
                at = loop.time()
                if not ws.closed:
                    await ws.send_str(json.dumps(self.mark(name)))
                self.log.echoed[name] = (played_at, at)

            async def read() -> None:
                async for msg in ws:
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        self.log.other.append(msg.type)
                        continue
                    m = json.loads(msg.data)
                    last_out[0] = loop.time()
                    self.log.changed.set()
                    self.log.events.append(m["event"])
                    self.check(m)
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
                        if self.clear_echoes_marks:
                            for name in self.log.marks:
                                if name not in self.log.echoed:
                                    await echo(name, loop.time())
                    else:
                        self.log.other.append(m)
                if not stopped:
                    self.log.closed_at = loop.time()

            reader = loop.create_task(read())
            hello = self.connected()
            if hello is not None:
                await ws.send_str(json.dumps(hello))
            await ws.send_str(json.dumps(self.start()))
            t0 = loop.time()
            chunk = 0
            step = round(self.rate * self.frame_s) * self.sample_bytes
            silence = self.silence * (step // len(self.silence))
            reached = 0  # bytes of the call's audio sent

            async def send_frame(data: bytes) -> None:
                nonlocal chunk, reached
                chunk += 1
                payload = base64.b64encode(data).decode()
                message = self.media(chunk, round(1000 * reached / (self.rate * self.sample_bytes)), payload)
                await asyncio.sleep(max(0.0, t0 + chunk * self.frame_s / speed - loop.time()))
                if not ws.closed:
                    reached += len(data)
                    self.log.sent.append((round(1000 * reached / (self.rate * self.sample_bytes)), loop.time()))
                    await ws.send_str(json.dumps(message))

            for i in range(0, len(audio), step):
                await send_frame(audio[i : i + step])
            end_by = loop.time() + linger_s
            while loop.time() < end_by and not ws.closed:
                waiting = self.echo_marks and len(self.log.echoed) < len(self.log.marks)
                waiting = waiting or len(self.log.marks) < marks
                if not waiting and loop.time() - last_out[0] > quiet_s:
                    break
                await send_frame(silence)
            if not ws.closed:
                stopped = True
                await ws.send_str(json.dumps(self.stop()))
                await ws.close()
            await reader
            self.log.close_code = ws.close_code
        return self.log


class FakeTwilio(MediaStreamCarrier):
    """One bidirectional Media Stream of one call (``<Connect><Stream>``), µ-law 8 kHz in 20 ms
    ``media`` messages with ``chunk`` and ``timestamp``; every message of the stream but
    ``connected`` carries ``streamSid`` and a ``sequenceNumber``; ``stop`` carries the account and
    call; on ``clear`` it sends back the marks it dropped."""

    carrier = "twilio"

    def __init__(self, url: str, *, custom: dict[str, str] | None = None, headers: dict[str, str] | None = None):
        super().__init__(url, headers=headers)
        self.custom = custom or {}
        self.sid = "MZ" + uuid.uuid4().hex
        self.account = "AC" + "0" * 32
        self.call_sid = "CA" + uuid.uuid4().hex
        self._seq = 0

    def _msg(self, event: str, **body: Any) -> dict[str, Any]:
        self._seq += 1
        out = {"event": event, "sequenceNumber": str(self._seq), **body}
        if event != "connected":
            out["streamSid"] = self.sid
        return out

    def connected(self) -> dict[str, Any]:
        return self._msg("connected", protocol="Call", version="1.0.0")

    def start(self) -> dict[str, Any]:
        start = {
            "accountSid": self.account,
            "streamSid": self.sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "customParameters": self.custom,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        return self._msg("start", start=start)

    def media(self, chunk: int, timestamp_ms: int, payload: str) -> dict[str, Any]:
        media = {"track": "inbound", "chunk": str(chunk), "timestamp": str(timestamp_ms), "payload": payload}
        return self._msg("media", media=media)

    def mark(self, name: str) -> dict[str, Any]:
        return self._msg("mark", mark={"name": name})

    def stop(self) -> dict[str, Any]:
        return self._msg("stop", stop={"accountSid": self.account, "callSid": self.call_sid})

    def check(self, message: dict[str, Any]) -> None:
        assert message.get("streamSid") == self.sid, message


class FakeAsterisk:
    """One chan_websocket channel dialled to us (``Dial(WebSocket/<client>/c(<format>)f(<mode>))``)."""

    def __init__(self, url: str, *, fmt: str = "ulaw", json_mode: bool = False, frame_bytes: int = 160) -> None:
        self.url = url
        self.fmt = fmt
        self.json_mode = json_mode
        self.frame_bytes = frame_bytes
        self.log = CarrierLog()
        #: send MEDIA_XOFF after the first binary message, and never XON (a queue that stays full)
        self.xoff = False
        self.hangups = 0

    def _event(self, name: str, **params: Any) -> str:
        if self.json_mode:
            return json.dumps({"event": name, "channel_id": "1761245643.1", **params})
        return " ".join([name, *(f"{k}:{v}" for k, v in params.items())])

    async def call(self, media: bytes, *, linger_s: float = 12.0, quiet_s: float = 2.0) -> CarrierLog:
        """Send ``media`` (the channel's format) in 20 ms frames at real time, then silence until
        nothing has come for ``quiet_s`` and every mark is processed (at most ``linger_s``), then
        hang up (close the socket, as Asterisk does)."""
        loop = asyncio.get_running_loop()
        rate = {"ulaw": 8000, "alaw": 8000, "slin": 16000, "slin16": 32000}[self.fmt]  # bytes per second
        player = _Player(rate)
        last_out = [loop.time()]
        async with aiohttp.ClientSession() as http, http.ws_connect(self.url) as ws:

            async def processed(event: str, ident: str, played_at: float) -> None:
                if not ws.closed:
                    if self.json_mode:
                        await ws.send_str(self._event(event, correlation_id=ident))
                    else:
                        await ws.send_str(f"{event} {ident}")
                self.log.echoed[ident] = (played_at, loop.time())

            def later(event: str, ident: str) -> None:
                at = player.ends_at
                loop.call_at(max(at, loop.time()), lambda: loop.create_task(processed(event, ident, at)))

            async def read() -> None:
                async for msg in ws:
                    last_out[0] = loop.time()
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        assert len(msg.data) <= 65500, len(msg.data)
                        self.log.items.append(msg.data)
                        player.queue(len(msg.data), loop.time())
                        if self.xoff:
                            self.xoff = False
                            await ws.send_str(self._event("MEDIA_XOFF"))
                        continue
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        continue
                    text = msg.data
                    if self.json_mode:
                        cmd = json.loads(text)
                        name, ident = cmd["command"], str(cmd.get("correlation_id", ""))
                    else:
                        name, _, ident = text.partition(" ")
                    if name == "MARK_MEDIA":
                        self.log.items.append(ident)
                        later("MEDIA_MARK_PROCESSED", ident)
                    elif name == "STOP_MEDIA_BUFFERING":
                        self.log.items.append(ident)
                        later("MEDIA_BUFFERING_COMPLETED", ident)
                    elif name == "FLUSH_MEDIA":
                        self.log.clears += 1
                        player.ends_at = loop.time()
                    elif name == "HANGUP":
                        self.hangups += 1
                    else:
                        self.log.other.append(name)

            reader = loop.create_task(read())
            start = {
                "connection_id": uuid.uuid4().hex,
                "channel": "WebSocket/media_connection1/0x5140001a0040",
                "channel_id": "1761245643.1",
                "format": self.fmt,
                "optimal_frame_size": self.frame_bytes,
                "ptime": 20,
            }
            if self.json_mode:
                await ws.send_str(json.dumps({"event": "MEDIA_START", **start}))
            else:
                await ws.send_str("MEDIA_START " + " ".join(f"{k}:{v}" for k, v in start.items()))
            t0 = loop.time()
            n = 0
            step = int(rate * FRAME_S)
            silence = (b"\xff" if self.fmt == "ulaw" else b"\xd5" if self.fmt == "alaw" else b"\x00") * step

            async def send(data: bytes) -> None:
                nonlocal n
                n += 1
                await asyncio.sleep(max(0.0, t0 + n * FRAME_S - loop.time()))
                if not ws.closed:
                    await ws.send_bytes(data)

            for i in range(0, len(media), step):
                await send(media[i : i + step])
            end_by = loop.time() + linger_s
            while loop.time() < end_by and not ws.closed:
                if len(self.log.echoed) >= len(self.log.marks) and loop.time() - last_out[0] > quiet_s:
                    break
                await send(silence)
            await ws.close()
            await reader
            self.log.close_code = ws.close_code
        return self.log


@dataclass
class SocketLog:
    """What a fake AudioSocket peer received: (arrival time, kind, payload) per frame."""

    frames: list[tuple[float, int, bytes]] = field(default_factory=list)
    #: set on every frame from the server
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def audio(self) -> list[tuple[float, bytes]]:
        return [(t, p) for t, k, p in self.frames if 0x10 <= k <= 0x16]


def socket_frame(kind: int, payload: bytes = b"") -> bytes:
    return bytes([kind]) + len(payload).to_bytes(2, "big") + payload


class FakeAudioSocket:
    """Asterisk's AudioSocket() dialplan application dialled to us: the UUID, then slin 8 kHz frames
    of 20 ms at real time, then the hang-up frame."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.log = SocketLog()
        self.call_id = uuid.uuid4()
        #: stop reading after this many seconds (a peer whose socket fills up)
        self.stop_reading_after: float | None = None

    async def call(self, slin: bytes, *, tail_s: float = 6.0, kind: int = 0x10) -> SocketLog:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(self.host, self.port)
        t0 = loop.time()

        async def read() -> None:
            buf = b""
            while True:
                if self.stop_reading_after is not None and loop.time() - t0 > self.stop_reading_after:
                    await asyncio.sleep(3600)
                try:
                    data = await reader.read(4096)
                except ConnectionError:
                    return
                if not data:
                    return
                buf += data
                while len(buf) >= 3 and len(buf) >= 3 + int.from_bytes(buf[1:3], "big"):
                    n = int.from_bytes(buf[1:3], "big")
                    self.log.frames.append((loop.time(), buf[0], buf[3 : 3 + n]))
                    self.log.changed.set()
                    buf = buf[3 + n :]

        reading = loop.create_task(read())
        writer.write(socket_frame(0x01, self.call_id.bytes))
        step = 320 * {0x10: 1, 0x12: 2}[kind]
        frames = [slin[i : i + step] for i in range(0, len(slin), step)]
        frames += [bytes(step)] * int(tail_s / FRAME_S)
        try:
            for n, f in enumerate(frames, 1):
                writer.write(socket_frame(kind, f))
                await asyncio.sleep(max(0.0, t0 + n * FRAME_S - loop.time()))
            writer.write(socket_frame(0x00))
            await writer.drain()
        except ConnectionError:
            pass
        if self.stop_reading_after is None:
            await reading
        else:
            reading.cancel()
        writer.close()
        return self.log


class AccessLines(logging.Handler):
    """The access lines (``translate_svc.access``) a server in this process writes."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def of(self, method: str) -> list[dict[str, Any]]:
        return [r.__dict__ for r in self.records if getattr(r, "method", None) == method]


@contextlib.contextmanager
def access_lines() -> Iterator[AccessLines]:
    lines = AccessLines()
    log = logging.getLogger("translate_svc.access")
    log.addHandler(lines)
    old = log.level
    log.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        log.removeHandler(lines)
        log.setLevel(old)


def phone_settings(test_model_dir: Path, **phone: Any) -> Any:
    """Test settings with the phone door's WebSocket framings on a free HTTP port, and AudioSocket
    on a free port of its own."""
    from tests.support.live_server import make_settings

    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.phone.websocket = True
    settings.phone.audiosocket_port = 0
    for k, v in phone.items():
        setattr(settings.phone, k, v)
    return settings


def phone_url(server: Any, carrier: str, query: str = "source=eng&target=spa") -> str:
    return f"ws://127.0.0.1:{server.ports()['http_port']}/v1/phone/{carrier}?{query}"


async def calls_ended(server: Any, timeout_s: float = 15.0) -> None:
    """Every call of the server in this process has ended (its access line is written)."""
    async with asyncio.timeout(timeout_s):
        await server.app.sessions.wait_no_live()
