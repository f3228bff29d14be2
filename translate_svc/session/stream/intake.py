"""One stream's audio in: wire messages, timestamped packets or a whole clip, onto its timeline and
to the shared VAD.

``AudioIntake`` owns the stream's input path: a message's size checked, the gap a timestamp skips
filled (or concealed), the bytes decoded and resampled (a large message or a clip's block on the
decode pool), the noise suppressed (on the ear's pool) and the 16 kHz samples scored by the VAD
(``VadBridge``), in order; the recording taps the input here. Each feed first waits while its
session has no room (the reader or the VAD behind: ``room``) and raises its session's failure
(``failure``) or its abort. ``drain`` ends the audio once: the resampler's and the denoiser's tails go to the VAD,
and a feed still waiting for room then ingests nothing. Event loop only (a decode or a denoise
runs on a worker thread while the loop awaits it).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from translate_svc.audio.denoise import Denoiser
from translate_svc.errors import InvalidInput
from translate_svc.session.stream.ear import EarLane
from translate_svc.session.stream.reorder import Reorder
from translate_svc.session.stream.timeline import Timeline
from translate_svc.session.stream.vad_bridge import VadBridge
from translate_svc.session.tenants.recording import Recorder
from translate_svc.settings import LimitsSettings
from translate_svc.types import AudioFormat

#: messages (bytes) and samples (x4) above this are decoded and resampled off the event loop
#: (smaller ones cost less than the thread hand-off: a 20 ms chunk takes ~20 us)
OFFLOAD_BYTES = 64 * 1024
#: a whole clip is fed a block of this many seconds at a time, each after its session has room
CLIP_BLOCK_S = 30


class AudioIntake:
    """The input side of one ``StreamSession``; event loop only."""

    def __init__(
        self,
        fmt: AudioFormat,
        limits: LimitsSettings,
        timeline: Timeline,
        vad: VadBridge,
        *,
        denoiser: Denoiser | None,
        lane: EarLane | None,
        decode: Callable[[Callable[[], Any]], Awaitable[Any]],
        room: asyncio.Event,
        failure: Callable[[], BaseException | None],
    ) -> None:
        """``denoiser``/``lane``: noise suppression and the ear's pool it runs on (both or
        neither); ``decode``: the pool a large message or a clip's block is decoded on; ``room``:
        set while its session may take more audio; ``failure``: its session's failure, if any (a
        closure over its job tracker, not the session: the intake holds no reference back to the
        session, so a closed stream's state is freed without waiting for the cyclic collector)."""
        self._fmt = fmt
        self._limits = limits
        self.timeline = timeline
        window = round(limits.reorder_window_ms * fmt.sample_rate_hz / 1000)
        self.reorder = Reorder(window, timeline.packet_frames, timeline.input_frames)
        self._vad = vad
        self._denoiser = denoiser if lane is not None else None
        self._lane = lane if denoiser is not None else None
        self._decode = decode
        self._room = room
        self._failure = failure
        #: the session was aborted (its client gone, or it failed): a feed raises
        self.aborted = False
        #: the session's recording, tapped with every input sample (None: not recorded)
        self.recorder: Recorder | None = None
        #: the audio has ended (``drain``): a feed that waited for room meanwhile ingests nothing.
        #: The lock keeps an ingest (perhaps on a worker thread) and that drain apart
        self._over = False
        self._ingesting = asyncio.Lock()
        #: ingests holding or waiting for ``_ingesting`` (while none does, a small one runs inline)
        self._turns = 0

    async def feed(self, data: bytes, timestamp: int | None = None) -> None:
        """One audio message in the stream's format (OPUS: one packet). ``timestamp``: where its first
        sample belongs on the timeline, in input samples; a skipped stretch is filled with silence.
        Waits while the session has no room."""
        if len(data) > self._limits.max_chunk_bytes:
            raise InvalidInput(
                f"audio chunk of {len(data)} bytes exceeds the limit of {self._limits.max_chunk_bytes} bytes; "
                "send smaller chunks (20-200 ms each is typical)"
            )
        tl = self.timeline
        gap = 0 if timestamp is None else tl.gap(timestamp)
        if not data and not gap:
            return
        if not self._room.is_set():
            await self._room.wait()
        self._check()
        carried = (tl.packet_frames(data) or 0) if data else 0  # an undecodable packet: refused below
        tl.pay(gap + carried, len(data))  # audio running ahead of its bytes and time: refused
        if gap:
            tl.fill(gap)
            concealed = tl.conceal(gap, data)
            if concealed is None:
                await self._fill(gap)
            else:
                await self._ingest(concealed)
        if not data:
            return
        samples = (
            tl.decode(data) if len(data) <= OFFLOAD_BYTES else await self._decode(functools.partial(tl.decode, data))
        )
        await self._ingest(samples)

    async def feed_packet(self, data: bytes, timestamp: int) -> None:
        """One timestamped packet (``AudioPacket``), through the reorder window: what it releases
        is fed in timeline order; duplicates and late packets are dropped (and counted)."""
        if len(data) > self._limits.max_chunk_bytes:
            await self.feed(data, timestamp)  # refused there, with the message that says why
        self.timeline.check_skip(timestamp)  # a wrong unit is refused now, not when it is released
        for ready, at in self.reorder.push(data, timestamp, self.timeline.input_frames):
            await self.feed(ready, at)

    async def release_held(self) -> None:
        """Feed the packets the reorder window holds for a missing one that is not coming."""
        for ready, at in self.reorder.flush():
            await self.feed(ready, at)

    async def feed_samples(self, samples: np.ndarray) -> None:
        """Mono float32 samples at the stream's input rate (a whole clip), resampled off the loop a
        block at a time, each after the session has room: a clip takes its fair share of the
        engine's queue like any stream, however many segments it holds."""
        step = CLIP_BLOCK_S * self._fmt.sample_rate_hz
        for i in range(0, len(samples), step):
            await self._room.wait()
            self._check()
            block = samples[i : i + step]
            if self.recorder is not None:
                self.recorder.audio(block)
            self._vad.score(await self._decode(functools.partial(self._vad_input, block)))

    async def drain(self) -> None:
        """The audio is over (once): the resampler's tail (and the denoiser's) to the VAD, marked
        last; later feeds ingest nothing."""
        self._turns += 1
        try:
            async with self._ingesting:
                if not self._over:
                    self._over = True
                    rest = self.timeline.drain_resampler()
                    if self._lane is not None and self._denoiser is not None:
                        rest = await self._lane.run(functools.partial(self._denoiser.process, rest, last=True))
                    self._vad.score(rest, last=True)
        finally:
            self._turns -= 1

    async def _ingest(self, samples: np.ndarray | None, frames: int | None = None) -> None:
        """Samples at the timeline's ``heard_rate`` onto the timeline and to the VAD (large ones
        resampled on a worker thread, noise suppressed on the ear's pool); nothing once the audio
        has ended. ``None``: silence for ``frames`` timeline samples, made as it goes in."""
        tl = self.timeline
        size = tl.heard(frames or 0) if samples is None else len(samples)
        inline = size <= OFFLOAD_BYTES // 4  # cheap inline: ~0.0013 s of the loop an audio second
        if inline and not self._turns and self._lane is None:
            # nothing is awaited, and no ingest holds or waits for the lock: in order without it
            if not self._over:
                self._vad.score(tl.ingest(self._recorded(samples, frames), frames))
            return
        self._turns += 1
        try:
            async with self._ingesting:
                if self._over:
                    return
                samples = self._recorded(samples, frames)
                if inline:
                    x = tl.ingest(samples, frames)
                else:
                    x = await self._decode(functools.partial(tl.ingest, samples, frames))
                if self._lane is not None and self._denoiser is not None:
                    x = await self._lane.run(functools.partial(self._denoiser.process, x))
                self._vad.score(x)
        finally:
            self._turns -= 1

    def _recorded(self, samples: np.ndarray | None, frames: int | None) -> np.ndarray:
        """``_ingest``'s samples, or the silence for its ``frames`` made now (at the timeline's
        end), handed to the recording (on the loop) on their way in."""
        if samples is None:
            samples = np.zeros(self.timeline.heard(frames or 0), np.float32)
        if self.recorder is not None:
            self.recorder.audio(samples)
        return samples

    def _check(self) -> None:
        """Raise the session's failure, or its abort, before taking more audio."""
        failure = self._failure()
        if failure is not None:
            raise failure
        if self.aborted:
            raise asyncio.CancelledError("the session was aborted")

    def _vad_input(self, samples: np.ndarray) -> np.ndarray:
        """Input-rate samples onto the timeline -> what the VAD and the model get: their 16 kHz
        samples, noise suppressed when the stream asked (as many samples, in the same places)."""
        x = self.timeline.ingest(samples)
        return x if self._denoiser is None else self._denoiser.process(x)

    async def _fill(self, frames: int) -> None:
        """Silence for a stretch the client skipped (lost packets, DTX), a second at a time."""
        step = self._fmt.sample_rate_hz
        for n in range(frames, 0, -step):
            await self._room.wait()
            self._check()
            await self._ingest(None, min(n, step))
