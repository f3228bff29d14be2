"""Every open of a job's upload, in sandbox processes (``translate_svc/sandbox/``, ``media.*``
settings): the probe at ``complete`` and after a URL job's fetch (``probe``), the job's reading
while it runs (``reader``: a process the run holds, streaming decoded float32 blocks over its
pipe) and a done video job's dubbed video (``remux``). Nothing of FFmpeg's or libsndfile's runs in
the server's process or on a pool it shares, so a file that states millions of samples, decodes
for hours or crashes its decoder costs a bounded process, at a lower priority than the server's
threads, and fails only its own request.

Each process is bounded in address space (``media.memory_mb``) and each call in CPU: a probe or a
read ``media.cpu_s`` and ``media.cpu_s_per_mb`` for each MB of the upload, a remux
``media.cpu_s_per_audio_minute`` more for each minute of audio and each track it writes. A file
past a bound is refused (``InvalidInput``) saying what it states; a process killed otherwise
(the kernel short of memory) is UNAVAILABLE. At most ``media.max_processes`` run at once on a
server process, ``media.max_processes_per_tenant`` of one tenant (a probe or a remux past the
tenant's share: 429 at once; past the server's: a wait of ``media.wait_s``, then 429). When the
server stops (``stop_calls``) the probes and remuxes in progress are ended at once, never waited
for: a ``complete``'s job stays ``uploading`` (completed again, probed again), a URL job's stays
to be fetched and probed again by its next claim. Event loop only.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from translate_svc.errors import InvalidInput, ServiceError
from translate_svc.jobs import untrusted
from translate_svc.jobs.untrusted import Probed, VideoOrder, WavOrder
from translate_svc.sandbox.pool import OverLimit, Sandbox, SandboxLimits, Worker
from translate_svc.settings.media import MediaSettings
from translate_svc.types import AudioFormat

__all__ = ["JobMedia", "MediaBlocks", "Probed", "VideoOrder"]


class JobMedia:
    """The jobs' media processes of one server process (see the module). Event loop only."""

    def __init__(self, settings: MediaSettings) -> None:
        self.settings = settings
        self.sandbox = Sandbox(
            SandboxLimits(
                settings.max_processes,
                settings.max_processes_per_tenant,
                settings.memory_mb,
                niceness=settings.niceness,
                idle_s=settings.idle_s,
                wait_s=settings.wait_s,
                what="media processes (probing, reading or remuxing uploads)",
                settings=("media.max_processes", "media.max_processes_per_tenant", "media.memory_mb"),
            )
        )

    def cpu_s(self, size: int) -> float:
        """A probe's or a read's CPU budget for an upload of ``size`` bytes."""
        return self.settings.cpu_s + self.settings.cpu_s_per_mb * size / 1e6

    async def probe(
        self,
        tenant: str | None,
        path: Path,
        fmt: AudioFormat,
        size: int,
        max_seconds: float,
        at_most_s: float,
        *,
        wait: bool = False,
    ) -> Probed:
        """The upload at ``path`` (``size`` bytes) checked (``untrusted.probe``), in a process of
        ``tenant``'s share; ``wait``: of no tenant's, waiting for one as long as it takes."""
        cpu_s = self.cpu_s(size)
        try:
            if wait:
                return await self.sandbox.run_waiting(cpu_s, untrusted.probe, path, fmt, max_seconds, at_most_s)
            return await self.sandbox.run(tenant, cpu_s, untrusted.probe, path, fmt, max_seconds, at_most_s)
        except OverLimit as e:
            raise self.refused(e, size) from None

    @contextlib.asynccontextmanager
    async def reader(
        self, tenant: str, path: Path, fmt: AudioFormat, size: int, start_ms: int = 0, *, keep_channels: bool = False
    ) -> AsyncIterator[MediaBlocks]:
        """The job's audio from ``start_ms`` on, read in a process held for the block
        (``Overloaded`` at once when the tenant's share or the processes are all taken);
        ``keep_channels``: blocks of frames x channels, not mixed."""
        async with self.sandbox.lease(tenant) as worker:
            blocks = MediaBlocks(self, worker, size)
            try:
                blocks.rate, blocks.frames, blocks.channels = await worker.call(
                    self.cpu_s(size), untrusted.open_reader, path, fmt, start_ms, keep_channels
                )
            except OverLimit as e:
                raise self.refused(e, size) from None
            yield blocks

    async def remux(
        self, tenant: str, order: VideoOrder, size: int, minutes: float, tracks: int, *, loudness: int = 0
    ) -> int:
        """The dubbed video ``order`` asks for, made (``untrusted.make_video``): its size. ``loudness``:
        the tracks measured for a loudness target first (``media.cpu_s_per_loudness_minute`` each)."""
        s = self.settings
        cpu_s = self.cpu_s(size) + s.cpu_s_per_audio_minute * minutes * (tracks + 1)
        cpu_s += s.cpu_s_per_loudness_minute * minutes * loudness
        try:
            return await self.sandbox.run(tenant, cpu_s, untrusted.make_video, order)
        except OverLimit as e:
            raise self.refused(e, size) from None

    async def dubbed_wav(self, tenant: str, order: WavOrder, minutes: float) -> int:
        """The dubbed track ``order`` asks for, brought to its loudness (``untrusted.make_dubbed_wav``):
        its size. Budgeted as one track written and measured (``media.cpu_s_per_audio_minute`` and
        ``media.cpu_s_per_loudness_minute`` a minute)."""
        s = self.settings
        cpu_s = s.cpu_s + (s.cpu_s_per_audio_minute + s.cpu_s_per_loudness_minute) * minutes
        try:
            return await self.sandbox.run(tenant, cpu_s, untrusted.make_dubbed_wav, order)
        except OverLimit as e:  # the service's own track: a budget too small, not the caller's doing
            raise ServiceError(
                f"making the dubbed track at a loudness went past its {e.kind} bound (media.cpu_s_per_audio_minute, "
                "media.cpu_s_per_loudness_minute, media.memory_mb): fetch it as made (no loudness), or ask the "
                "operator to raise them"
            ) from None

    def refused(self, e: OverLimit, size: int) -> InvalidInput:
        """A bound reached, in the words of an upload of ``size`` bytes."""
        s = self.settings
        if e.kind == "memory":
            said = (
                f"more than its {size} bytes can hold: reading it needs more than {s.memory_mb} MB of memory, the "
                "most this server gives a file (media.memory_mb)"
            )
        elif e.kind == "cpu":
            said = (
                f"more audio than its {size} bytes can hold: reading it took more than {e.limit:.0f} s of CPU, the "
                "most a file of its size may take (media.cpu_s, and media.cpu_s_per_mb for each MB)"
            )
        else:
            return InvalidInput(
                "this file crashed the decoder that read it: it is damaged, or not what its first bytes say; send "
                "it again as the application that made it wrote it"
            )
        return InvalidInput(f"this file states {said}; send it as the application that made it wrote it, or split it")

    def stop_calls(self) -> None:
        """The server stops: probes and remuxes in progress end now (see the module)."""
        self.sandbox.stop_calls()

    async def close(self) -> None:
        await self.sandbox.close()


class MediaBlocks:
    """A running job's audio, read in its process: ``rate``, its stated length in frames
    (``frames``; None: none), and ``read`` the next block. Event loop only."""

    rate: int
    frames: int | None
    channels: int

    def __init__(self, media: JobMedia, worker: Worker, size: int) -> None:
        self._media = media
        self._worker = worker
        self._size = size

    async def read(self, frames: int) -> np.ndarray:
        """The next ``frames`` frames, float32 in [-1, 1] (fewer at the end, none after it): mono, or
        frames x channels where the reader keeps them."""
        try:
            return await self._worker.call(self._media.cpu_s(self._size), untrusted.read, frames)
        except OverLimit as e:
            raise self._media.refused(e, self._size) from None

    async def seek(self, frame: int) -> None:
        """Read from input frame ``frame`` on (the file opened again there, in its process)."""
        try:
            await self._worker.call(self._media.cpu_s(self._size), untrusted.seek_reader, frame)
        except OverLimit as e:
            raise self._media.refused(e, self._size) from None
