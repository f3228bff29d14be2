"""A browser's WebRTC call as the tests make it, with aiortc as the browser (the OpenAI-compatible
door's ``/calls``): a clip as a live microphone, the ``oai-events`` data channel and the tracks it
gets back."""

from __future__ import annotations

import asyncio
import fractions
import json
import time
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


class Microphone(MediaStreamTrack):
    """A clip as a live microphone: 20 ms frames of 48 kHz mono at real time, then silence."""

    kind = "audio"

    def __init__(self, pcm48k: np.ndarray) -> None:
        super().__init__()
        self.pcm = pcm48k
        self.pts = 0
        self.t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self.t0 is None:
            self.t0 = time.perf_counter()
        await asyncio.sleep(max(0.0, self.t0 + self.pts / 48000 - time.perf_counter()))
        x = np.zeros(960, np.int16)
        chunk = self.pcm[self.pts : self.pts + 960]
        x[: len(chunk)] = chunk
        frame = av.AudioFrame.from_ndarray(x[None, :], format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, self.pts, fractions.Fraction(1, 48000)
        self.pts += 960
        return frame


class Call:
    """A browser's call: a microphone, the ``oai-events`` channel, the tracks it gets back."""

    def __init__(
        self,
        pcm48k: np.ndarray,
        language: str = "es",
        *,
        transcription: bool = True,
        session: dict[str, Any] | None = None,
    ) -> None:
        """``session``: more fields of the first ``session.update`` (e.g. ``x_simultaneous_step_ms``)."""
        self.pc = RTCPeerConnection()
        self.mic = Microphone(pcm48k)
        self.pc.addTrack(self.mic)
        self.channel = self.pc.createDataChannel("oai-events")
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self.frames: list[np.ndarray] = []
        #: when each event and each frame came (perf_counter)
        self.event_times: list[float] = []
        self.frame_times: list[float] = []
        self.readers: list[asyncio.Future[None]] = []
        update: dict[str, Any] = {"audio": {"output": {"language": language}}}
        if transcription:
            update["audio"]["input"] = {"language": "en", "transcription": {"model": "any"}}
        update.update(session or {})
        self.channel.on("open", lambda: self.channel.send(json.dumps({"type": "session.update", "session": update})))
        self.channel.on("message", self._message)
        self.pc.on("track", self._track)

    def _message(self, message: str) -> None:
        self.events.append(json.loads(message))
        self.event_times.append(time.perf_counter())
        self.changed.set()

    def _track(self, track: MediaStreamTrack) -> None:
        async def read() -> None:
            try:
                while True:
                    frame = await track.recv()
                    self.frames.append(frame.to_ndarray())  # type: ignore[union-attr]
                    self.frame_times.append(time.perf_counter())
            except MediaStreamError:
                return

        self.readers.append(asyncio.ensure_future(read()))

    async def dial(self, http: aiohttp.ClientSession, url: str, key: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await http.post(
            url,
            data=self.pc.localDescription.sdp,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/sdp"},
        )
        assert answer.status == 201 and answer.content_type == "application/sdp"
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=await answer.text(), type="answer"))

    async def until(self, kind: str, timeout_s: float = 30) -> dict[str, Any]:
        """The first event of ``kind`` (waiting for it)."""
        async with asyncio.timeout(timeout_s):
            while True:
                for e in self.events:
                    if e["type"] == kind:
                        return e
                self.changed.clear()
                await self.changed.wait()

    def kinds(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def hang_up(self) -> None:
        await self.pc.close()
        await asyncio.gather(*self.readers)
