"""The browser door: OpenAI's WebRTC flow for realtime translation, on aiortc.

``POST /v1/realtime/translations/calls`` takes the browser's SDP offer (``application/sdp``,
``Authorization: Bearer <client secret or token>``) and answers with the server's SDP. Then:

- the browser's microphone track (Opus; aiortc decodes it to 48 kHz stereo) is downmixed to mono
  and fed to the stream as 48 kHz PCM16 (our resampler takes it to 16 kHz);
- a data channel named ``oai-events`` carries the same JSON events as the WebSocket door
  (``realtime.RealtimeSession``): ``session.update`` picks the language(s), transcript and
  translation deltas come back, ``session.close`` ends the session;
- each target language has an audio track back (the first on the microphone's transceiver, the
  others on further audio transceivers the offer brought), playing the translated speech at
  48 kHz as it comes and silence between: in simultaneous mode (the door's default) each commit's
  chunk while the segment is still spoken (a result whose speech was in its commits is not played
  again), else a segment's speech when its result comes. The targets a call will have are named at offer time:
  ``?language=es`` or ``?languages=es,fr`` (otherwise one track, for the first target).

Microphone audio that comes before ``session.update`` names a language is not used (the page
sends the update as soon as the channel opens). The session runs through the stream core like
every other door (admission, limits, drain, metrics).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fractions
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import av
import numpy as np
import soxr
from aiohttp import web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from translate_svc.audio.pcm import float_to_pcm16
from translate_svc.observability.access import CallInfo, new_request_id
from translate_svc.session.events import AudioIn, StreamConfig, StreamRequest
from translate_svc.session.manager import SessionManager
from translate_svc.transport.realtime import Caller, RealtimeSession, _event, serve_session

logger = logging.getLogger(__name__)

TRACK_RATE = 48000
_CLOSED = "\x00closed"  # the data channel or the peer connection closed (no client sends it: not JSON)
FRAME = 960  # 20 ms at 48 kHz


class SpeechTrack(MediaStreamTrack):
    """One target's translated speech as a live audio track: what was queued, else silence, in
    20 ms frames at real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._pts = 0
        self._t0: float | None = None
        #: samples of speech played so far (tests and stats)
        self.played = 0

    def play(self, pcm16: np.ndarray) -> None:
        self._queue.append(pcm16)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._t0 is None:
            self._t0 = time.perf_counter()
        await asyncio.sleep(max(0.0, self._t0 + self._pts / TRACK_RATE - time.perf_counter()))
        out = np.zeros(FRAME, np.int16)
        filled = 0
        while filled < FRAME and self._queue:
            head = self._queue[0]
            take = min(FRAME - filled, len(head))
            out[filled : filled + take] = head[:take]
            filled += take
            if take == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[take:]
        self.played += filled
        frame = av.AudioFrame.from_ndarray(out[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = TRACK_RATE, self._pts, fractions.Fraction(1, TRACK_RATE)
        self._pts += FRAME
        return frame


def mono_pcm16(frame: av.AudioFrame) -> bytes:
    """A decoded frame (aiortc: s16, stereo, 48 kHz) as mono PCM16 bytes (the channels' mean)."""
    x = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        samples = x.astype(np.int32).mean(axis=0)
    else:
        samples = x.reshape(-1, channels).astype(np.int32).mean(axis=1)
    return bytes(samples.astype("<i2").tobytes())


class WebRtcDoor:
    """``POST /calls`` on the realtime door's application; one peer connection per call."""

    def __init__(
        self,
        manager: SessionManager,
        app: web.Application,
        path: str,
        authorize: Callable[[web.Request], Caller | web.Response],
    ) -> None:
        self._m = manager
        self._authorize = authorize
        self._calls: set[RTCPeerConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        app.router.add_post(path + "/calls", self._offer)

    async def close(self) -> None:
        """After the drain: let ended calls send their last events, then close what is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=2.0)
        for pc in list(self._calls):
            await pc.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _offer(self, request: web.Request) -> web.Response:
        caller = self._authorize(request)
        if isinstance(caller, web.Response):
            return caller
        sdp = await request.text()
        if "m=audio" not in sdp:
            return web.json_response(
                {"error": {"message": "send the browser's SDP offer (application/sdp) with a microphone track",
                           "type": "invalid_request_error", "code": "invalid_value"}},
                status=400,
            )  # fmt: skip
        tags = [t for t in request.query.get("languages", request.query.get("language", "")).split(",") if t]
        pc = RTCPeerConnection()
        self._calls.add(pc)
        tracks = {tag: SpeechTrack() for tag in tags} or {"": SpeechTrack()}
        for track in tracks.values():
            pc.addTrack(track)
        info = CallInfo(new_request_id(request.headers.get("X-Request-Id")), "webrtc", request.remote or "")
        call = _Call(
            self._m, pc, tracks, request.query.get("model", ""), request.query.get("source_language"), caller, info
        )
        task = asyncio.create_task(call.run(), name="webrtc-call")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._calls.discard(pc))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except (ValueError, RuntimeError) as e:
            task.cancel()
            await pc.close()
            return web.json_response(
                {"error": {"message": f"the SDP offer cannot be used: {e}", "type": "invalid_request_error",
                           "code": "invalid_value"}},
                status=400,
            )  # fmt: skip
        return web.Response(
            status=201,
            text=pc.localDescription.sdp,
            content_type="application/sdp",
            headers={"X-Request-Id": info.request_id},
        )


class _Call:
    """One browser call: the data channel's events and the microphone into one stream."""

    def __init__(
        self,
        manager: SessionManager,
        pc: RTCPeerConnection,
        tracks: dict[str, SpeechTrack],
        model: str,
        source: str | None,
        caller: Caller,
        info: CallInfo,
    ) -> None:
        self._m = manager
        self.caller = caller
        self.info = info
        self.pc = pc
        self.tracks = tracks
        self.model = model
        self.source = source
        self.channel: Any = None
        self.messages: asyncio.Queue[str | None] = asyncio.Queue()
        self.requests: asyncio.Queue[StreamRequest | None] = asyncio.Queue(maxsize=500)  # 10 s of 20 ms frames
        self.ready = asyncio.Event()  # the data channel is open
        self.session: RealtimeSession | None = None
        self.started = False  # the config is in the queue: the microphone's audio may follow it
        pc.on("datachannel", self._on_channel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)

    def _on_channel(self, channel: Any) -> None:
        if channel.label != "oai-events" or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", lambda m: self.messages.put_nowait(m if isinstance(m, str) else None))
        channel.on("close", lambda: self.messages.put_nowait(_CLOSED))
        self.ready.set()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            task = asyncio.ensure_future(self._microphone(track))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.messages.put_nowait(_CLOSED)

    async def _microphone(self, track: MediaStreamTrack) -> None:
        """The microphone's frames as audio requests, once the session has a language."""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if self.started and isinstance(frame, av.AudioFrame):
                    await self.requests.put(AudioIn(mono_pcm16(frame)))

    async def _events(self) -> AsyncIterator[str | None]:
        while (m := await self.messages.get()) != _CLOSED:
            yield m

    def _speak(self, tag: str, audio: np.ndarray, rate: int) -> None:
        """Speech in ``tag`` onto its track, queued after what it still plays: a commit's chunk
        (simultaneous mode) or a segment's speech (without named tracks: the first target's onto
        the one track; the others have none)."""
        track = self.tracks.get(tag)
        if track is None and "" in self.tracks and self.session is not None and self.session.languages[:1] == [tag]:
            track = self.tracks[""]
        if track is None:
            return
        if rate != TRACK_RATE:
            audio = soxr.resample(audio, rate, TRACK_RATE)
        track.play(float_to_pcm16(audio))

    async def _send(self, text: str) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)

    async def run(self) -> None:
        try:
            async with asyncio.timeout(30):
                await self.ready.wait()
        except TimeoutError:
            logger.warning("a WebRTC call opened no oai-events data channel in 30 s; closing it")
            await self.pc.close()
            return
        session = RealtimeSession(
            self._send, self.model, self.source, self._m.vad_defaults, input_rate=TRACK_RATE, speak=self._speak
        )
        self.session = session
        await session.send(_event("session.created", session=session.session()))

        async def pump() -> None:  # the channel's events, converted, into the one request queue
            async for req in session.requests(self._events()):
                await self.requests.put(req)
                self.started |= isinstance(req, StreamConfig)
            await self.requests.put(None)

        async def requests() -> AsyncIterator[StreamRequest]:
            while (req := await self.requests.get()) is not None:
                yield req

        pumping = asyncio.create_task(pump())
        try:
            await serve_session(self._m, session, requests(), self.caller, self.info)
        finally:
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)
            await asyncio.sleep(0.5)  # the last events leave the data channel
            await self.pc.close()
