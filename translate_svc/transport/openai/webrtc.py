"""The browser door: OpenAI's WebRTC flow for realtime translation, on aiortc.

``POST /v1/realtime/translations/calls`` takes the browser's SDP offer (``application/sdp``,
``Authorization: Bearer <client secret or token>``) and answers with the server's SDP. Then:

- the browser's microphone track (Opus; aiortc decodes it to 48 kHz stereo) is downmixed to mono
  and fed to the stream as 48 kHz PCM16 (our resampler takes it to 16 kHz);
- a data channel named ``oai-events`` carries the same JSON events as the WebSocket door
  (``protocol.RealtimeProtocol``, driven by ``loop.py`` as a WebSocket's session is):
  ``session.update`` picks the language(s), transcript and translation deltas come back,
  ``session.close`` ends the session;
- each target language has an audio track back (the first on the microphone's transceiver, the
  others on further audio transceivers the offer brought), playing the translated speech at
  48 kHz as it comes and silence between: in simultaneous mode (the door's default) each commit's
  chunk while the segment is still spoken (a result whose speech was in its commits is not played
  again), else a segment's speech when its result comes. The targets a call will have are named at offer time:
  ``?language=es`` or ``?languages=es,fr`` (otherwise one track, for the first target).

Microphone audio that comes before ``session.update`` names a language is not used (the page
sends the update as soon as the channel opens). The session runs through the stream core like
every other door (admission, limits, drain, metrics).

What an offer may cost is bounded before any WebRTC work (security findings N9, N10; docs/security.md):
the body (``limits.webrtc_max_offer_bytes``, else 413), its sections (``screen_offer``: one audio
section per target, exactly one of them the microphone, one data channel, nothing else; else 400),
its remote ICE candidates (at the request's own address or ``limits.webrtc_candidate_networks``,
``limits.webrtc_max_candidates`` at most; the rest dropped: ``webrtc_offer.py`` screens the offer
as text before aiortc parses it), and the stream's slot is taken
(``SessionManager.admit_stream``: 429 or 503) before a peer connection or a thread exists. A call
that is not connected with its channel open and its microphone heard within
``limits.webrtc_connect_timeout_ms`` is closed and its slot released. No STUN server is contacted
unless ``limits.webrtc_stun_server`` names one (aiortc's default is Google's).
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
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from translate_svc.audio.limits import OPUS_RATE
from translate_svc.errors import InvalidInput
from translate_svc.observability.access import CallInfo
from translate_svc.session.admission import Admission
from translate_svc.session.events import AudioIn, StreamConfig, StreamRequest
from translate_svc.session.manager import SessionManager
from translate_svc.settings import LimitsSettings
from translate_svc.transport.calls import REQUEST_ID, call_info
from translate_svc.transport.http.body import read_body
from translate_svc.transport.http.caller import Caller
from translate_svc.transport.http.responses import http_error
from translate_svc.transport.http.websocket import admit
from translate_svc.transport.openai.loop import requests, serve_session
from translate_svc.transport.openai.protocol import RealtimeProtocol
from translate_svc.transport.openai.session_update import MAX_TAG_CHARS
from translate_svc.transport.openai.webrtc_offer import screen_offer
from translate_svc.transport.openai.wire import Speech, error_event
from translate_svc.wire.pcm import float_to_pcm16

logger = logging.getLogger(__name__)

TRACK_RATE = OPUS_RATE  # aiortc decodes (and encodes) Opus at its clock
_CLOSED = "\x00closed"  # the data channel or the peer connection closed (no client sends it: not JSON)
#: events a call's data channel may bring that its session has not taken (it stopped reading: its
#: client reads none of its answers); one more closes the call. aiortc takes every message the peer
#: sends, so unlike a WebSocket's there is no transport to hold them
MAX_UNTAKEN_MESSAGES = 64
FRAME = TRACK_RATE // 50  # 20 ms


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
    """``POST /calls`` beside the realtime sessions' path; one peer connection per call."""

    def __init__(
        self,
        manager: SessionManager,
        path: str,
        authorize: Callable[[web.Request], Caller | web.Response],
    ) -> None:
        self._m = manager
        self._path = path
        self._authorize = authorize
        self._calls: set[RTCPeerConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        limits = manager.limits
        #: no STUN server unless one is configured (``RTCConfiguration()`` would ask Google's)
        stun = [RTCIceServer(limits.webrtc_stun_server)] if limits.webrtc_stun_server else []
        self.configuration = RTCConfiguration(iceServers=stun)

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(self._path + "/calls", self._offer)

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
        limits = self._m.limits
        body = await read_body(
            request,
            limits.webrtc_max_offer_bytes,
            limits.http_header_timeout_s,
            too_large=f"the SDP offer is larger than {limits.webrtc_max_offer_bytes} bytes "
            "(limits.webrtc_max_offer_bytes); a browser's offer is a few KiB: send one call's offer",
            what="a WebRTC offer",
        )
        if isinstance(body, web.Response):
            return body
        try:
            tags = _targets(request, limits)
            offer = screen_offer(
                body.decode("utf-8"),
                max_audio_sections=max(1, len(tags)),
                peer=request.remote,
                networks=limits.webrtc_candidate_networks,
                max_candidates=limits.webrtc_max_candidates,
            )
        except UnicodeDecodeError:
            return http_error(400, "the SDP offer must be UTF-8 text", "invalid_value")
        except InvalidInput as e:
            return http_error(400, e.message, "invalid_value")
        admission = await admit(
            self._m, caller.tenant
        )  # before a peer connection or a thread exists (docs/security.md)
        if isinstance(admission, web.Response):
            return admission
        pc = RTCPeerConnection(self.configuration)
        self._calls.add(pc)
        tracks = {tag: SpeechTrack() for tag in tags} or {"": SpeechTrack()}
        for track in tracks.values():
            pc.addTrack(track)
        info = call_info(request.headers.get(REQUEST_ID), "webrtc", request.remote or "")
        call = _Call(
            self._m,
            pc,
            tracks,
            request.query.get("model", ""),
            request.query.get("source_language"),
            caller,
            info,
            admission,
        )
        task = asyncio.create_task(call.run(), name="webrtc-call")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._calls.discard(pc))
        task.add_done_callback(lambda _: admission.release())  # a task cancelled before it ran, too
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as e:  # aiortc's parser raises what it meets (ValueError, AssertionError, ...)
            task.cancel()
            await pc.close()
            admission.release()
            reason = str(e)[:200] or type(e).__name__
            return http_error(400, f"the SDP offer cannot be used: {reason}", "invalid_value")
        return web.Response(
            status=201,
            text=pc.localDescription.sdp,
            content_type="application/sdp",
            headers={REQUEST_ID: info.request_id},
        )


def _targets(request: web.Request, limits: LimitsSettings) -> list[str]:
    """The call's targets from ``?languages=`` (or ``?language=``): one track each; bounded before
    a track is made (``limits.max_target_languages``, a tag's characters)."""
    tags = [t for t in request.query.get("languages", request.query.get("language", "")).split(",") if t]
    if len(tags) > limits.max_target_languages:
        raise InvalidInput(
            f"{len(tags)} languages named; a call takes at most {limits.max_target_languages} "
            "(limits.max_target_languages)"
        )
    if any(len(t) > MAX_TAG_CHARS for t in tags):
        raise InvalidInput(f"a language tag is at most {MAX_TAG_CHARS} characters (e.g. es, fr, pt-BR)")
    return tags


class _Call:
    """One browser call: the data channel's events and the microphone into one stream. It holds
    its stream slot (``admission``) from the offer on and releases it on every way out: the call
    not live in time, the peer connection failing, the session's end."""

    def __init__(
        self,
        manager: SessionManager,
        pc: RTCPeerConnection,
        tracks: dict[str, SpeechTrack],
        model: str,
        source: str | None,
        caller: Caller,
        info: CallInfo,
        admission: Admission,
    ) -> None:
        self._m = manager
        self.caller = caller
        self.info = info
        self.pc = pc
        self.tracks = tracks
        self.model = model
        self.source = source
        self.admission = admission
        self.channel: Any = None
        self.messages: asyncio.Queue[str | None] = asyncio.Queue()
        self.requests: asyncio.Queue[StreamRequest | None] = asyncio.Queue(maxsize=500)  # 10 s of 20 ms frames
        self.ready = asyncio.Event()  # the data channel is open
        #: set while the data channel's buffer (what aiortc has not handed to SCTP: the peer has
        #: not acknowledged what came before) is under the send bound, or the channel is gone
        self.sendable = asyncio.Event()
        self.sendable.set()
        self._send_bound = manager.limits.ws_send_buffer_bytes
        self.heard = asyncio.Event()  # the microphone's first frame came
        self.gone = asyncio.Event()  # the peer connection failed or closed
        self.session: RealtimeProtocol | None = None
        self.started = False  # the config is in the queue: the microphone's audio may follow it
        pc.on("datachannel", self._on_channel)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_state)

    def _on_channel(self, channel: Any) -> None:
        if channel.label != "oai-events" or self.channel is not None:
            return
        self.channel = channel
        channel.bufferedAmountLowThreshold = self._send_bound // 2
        channel.on("message", self._on_message)
        channel.on("close", self._on_close)
        channel.on("bufferedamountlow", self.sendable.set)
        self.ready.set()

    def _on_message(self, message: str | bytes) -> None:
        if self.messages.qsize() >= MAX_UNTAKEN_MESSAGES:
            if not self.gone.is_set():
                logger.info(
                    "a WebRTC call's data channel brought %d events its session has not taken (its client reads "
                    "none of the answers); closing the call",
                    MAX_UNTAKEN_MESSAGES,
                    extra={"request_id": self.info.request_id},
                )
                self.gone.set()
                self.sendable.set()
                task = asyncio.ensure_future(self.pc.close())
                task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)
            return
        self.messages.put_nowait(message if isinstance(message, str) else None)

    def _on_close(self) -> None:
        self.sendable.set()
        self.messages.put_nowait(_CLOSED)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            task = asyncio.ensure_future(self._microphone(track))
            task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed"):
            self.gone.set()
            self.sendable.set()
            self.messages.put_nowait(_CLOSED)

    async def _microphone(self, track: MediaStreamTrack) -> None:
        """The microphone's frames as audio requests, once the session has a language."""
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                self.heard.set()
                if self.started and isinstance(frame, av.AudioFrame):
                    await self.requests.put(AudioIn(mono_pcm16(frame)))

    async def _events(self) -> AsyncIterator[str | None]:
        while (m := await self.messages.get()) != _CLOSED:
            yield m

    def _speak(self, speech: Speech) -> None:
        """Speech in its language onto its track, queued after what it still plays: a commit's
        chunk (simultaneous mode) or a segment's speech (without named tracks: the first target's
        onto the one track; the others have none)."""
        tag, audio, rate = speech.tag, speech.audio, speech.rate
        track = self.tracks.get(tag)
        if track is None and "" in self.tracks and self.session is not None and self.session.languages[:1] == [tag]:
            track = self.tracks[""]
        if track is None:
            return
        if rate != TRACK_RATE:
            audio = soxr.resample(audio, rate, TRACK_RATE)
        track.play(float_to_pcm16(audio))

    async def _send(self, text: str) -> None:
        """One event onto the data channel; then, while more than ``limits.ws_send_buffer_bytes``
        wait there for the peer (aiortc's send never waits), wait as a WebSocket's send does: the
        session's next events stay unread meanwhile, so it stops reading a client that reads
        nothing."""
        channel = self.channel
        if channel is None or channel.readyState != "open" or self.gone.is_set():
            return
        channel.send(text)
        while channel.bufferedAmount > self._send_bound and channel.readyState == "open" and not self.gone.is_set():
            self.sendable.clear()
            await self.sendable.wait()

    async def _live(self) -> str | None:
        """Until the call is live (connected, its channel open, its microphone heard): None, or
        what it lacked when ``limits.webrtc_connect_timeout_ms`` passed or the connection failed."""
        timeout_ms = self._m.limits.webrtc_connect_timeout_ms

        async def live() -> None:
            await self.ready.wait()
            await self.heard.wait()

        waits = [asyncio.ensure_future(live()), asyncio.ensure_future(self.gone.wait())]
        try:
            await asyncio.wait(waits, timeout=timeout_ms / 1000, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        if self.ready.is_set() and self.heard.is_set():
            return None
        if self.gone.is_set():
            return f"its connection {self.pc.connectionState} first"
        lacking = [] if self.pc.connectionState == "connected" else [f"connection {self.pc.connectionState}"]
        lacking += [] if self.ready.is_set() else ["no oai-events channel"]
        lacking += [] if self.heard.is_set() else ["no microphone audio"]
        return ", ".join(lacking)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.admission.release()  # unless the session took it
            await self.pc.close()

    async def _run(self) -> None:
        timeout_ms = self._m.limits.webrtc_connect_timeout_ms
        lacking = await self._live()
        if lacking is not None:
            logger.info(
                "a WebRTC call was not live within %d ms of its offer (%s); closing it, releasing its slot",
                timeout_ms,
                lacking,
                extra={"request_id": self.info.request_id},
            )
            message = (
                f"the call was not live within {timeout_ms} ms of its offer ({lacking}; "
                "limits.webrtc_connect_timeout_ms): open the oai-events channel and send the microphone's "
                "audio as soon as the call connects"
            )
            await self._send(error_event(message, "invalid_request_error", "connect_timeout"))
            if self.channel is not None and self.channel.readyState == "open":
                await asyncio.sleep(0.5)  # the error leaves the data channel
            return
        session = RealtimeProtocol(
            self.model,
            self.source,
            self._m.vad_defaults,
            input_rate=TRACK_RATE,
            tracks=True,
            limits=self._m.limits,
        )
        self.session = session
        await self._send(session.created())

        async def pump() -> None:  # the channel's events, converted, into the one request queue
            async for req in requests(session, self._events(), self._send):
                await self.requests.put(req)
                self.started |= isinstance(req, StreamConfig)
            await self.requests.put(None)

        async def queued() -> AsyncIterator[StreamRequest]:
            while (req := await self.requests.get()) is not None:
                yield req

        pumping = asyncio.create_task(pump())
        try:
            await serve_session(
                self._m,
                session,
                queued(),
                self.caller,
                self.info,
                send=self._send,
                play=self._speak,
                admission=self.admission,
            )
        finally:
            pumping.cancel()
            await asyncio.gather(pumping, return_exceptions=True)
            await asyncio.sleep(0.5)  # the last events leave the data channel
