"""What a job's run feeds its audio to: its one session, or a session per channel (a job of
separate channels), and the audio resampled to 16 kHz on the run's read thread on the way
(``JobTranslation._feed``, ``translation.py``)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Protocol

import numpy as np

from translate_svc.jobs.checkpoints import JobAudio, Tails

if TYPE_CHECKING:
    from translate_svc.session.stream.session import StreamSession


class Sink(Protocol):
    """What a job run feeds (``JobTranslation._feed``): its session (``StreamSession``), or its
    channels' (``Channels``)."""

    @property
    def unread(self) -> int: ...

    async def feed_samples(self, samples: np.ndarray) -> None: ...


class Channels:
    """A job's channels' sessions as one ``Sink``: each 16 kHz block (samples x channels) fed a
    column to each channel's session."""

    def __init__(self, sessions: list[StreamSession]) -> None:
        self._sessions = sessions

    @property
    def unread(self) -> int:
        return sum(s.unread for s in self._sessions)

    async def feed_samples(self, samples: np.ndarray) -> None:
        for channel, session in enumerate(self._sessions):
            await session.feed_samples(np.ascontiguousarray(samples[:, channel]))


class ChannelAudio:
    """``JobAudio`` for each channel of a job of separate channels: ``process`` takes input
    frames x channels (or an empty array) and gives 16 kHz samples x channels (each channel its
    own soxr stream, fed the same number of frames: they give the same number out)."""

    tails: Tails | None = None

    def __init__(self, rate: int, channels: int) -> None:
        self._each = [JobAudio(rate) for _ in range(channels)]

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        columns = [
            audio.process(np.ascontiguousarray(samples[:, c]) if len(samples) else np.zeros(0, np.float32), last)
            for c, audio in enumerate(self._each)
        ]
        if len({len(x) for x in columns}) != 1:
            raise RuntimeError(f"the channels' resamplers gave {[len(x) for x in columns]} samples")
        return np.stack(columns, axis=1)


async def give(
    session: Sink, audio: JobAudio | ChannelAudio, reads: ThreadPoolExecutor, samples: np.ndarray, last: bool = False
) -> None:
    """Input samples resampled on the read thread, then to the session at 16 kHz (their
    checkpoints' digests noted first: a checkpoint is taken only once its samples are scored)."""
    x = await asyncio.get_running_loop().run_in_executor(reads, audio.process, samples, last)
    if audio.tails is not None:
        audio.tails.feed(x)
    if len(x):
        await session.feed_samples(x)
