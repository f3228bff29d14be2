"""The client commands' input audio: a file read (and decoded) before any call, or PCM from a pipe.

Containers are decoded by ``decode.decode_audio`` (the server's libraries: soundfile, PyAV
for WebM), so a file the CLI accepts is one the server reads, and its length is known up front
(``--via auto``, progress).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from translate_svc.client import AudioFormat
from translate_svc.client_cli.common import CliError, warn
from translate_svc.client_cli.decode import decode_audio

T = TypeVar("T")


@dataclass(frozen=True)
class Clip:
    """An input file, read and (for containers) decoded here, so mistakes show before any call."""

    label: str  # the path as the user gave it
    data: bytes  # the file's bytes (container or headerless PCM)
    raw: AudioFormat | None  # headerless input: its format
    samples: np.ndarray[Any, Any] | None  # containers: mono float32
    rate: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate

    def stream_format(self) -> AudioFormat:
        """The format the stream is opened with: the raw input's, or the decoded samples' (float32)."""
        return self.raw if self.raw is not None else AudioFormat("float32", self.rate, 1)

    def chunks(self, chunk_ms: int) -> Iterator[bytes | np.ndarray[Any, Any]]:
        frames = max(1, self.rate * chunk_ms // 1000)
        if self.raw is not None:
            step = frames * frame_bytes(self.raw)
            for i in range(0, len(self.data), step):
                yield self.data[i : i + step]
        else:
            assert self.samples is not None
            for i in range(0, len(self.samples), frames):
                yield self.samples[i : i + frames]


def frame_bytes(fmt: AudioFormat) -> int:
    size = fmt.frame_bytes
    assert size is not None, "headerless input has whole frames"
    return size


def load_clip(path: Path, raw: AudioFormat | None) -> Clip:
    label = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {label}: {e.strerror or e}") from None
    if not data:
        raise CliError(f"{label} is empty: nothing to translate")
    if raw is not None:
        size = frame_bytes(raw)
        whole = len(data) - len(data) % size
        if whole == 0:
            raise CliError(f"{label} holds less than one {raw.encoding} frame")
        if whole != len(data):
            warn(f"{label}: the last {len(data) - whole} byte(s) are not a whole {raw.encoding} frame; ignored")
        return Clip(label, data[:whole], raw, None, raw.sample_rate, whole // size)
    try:
        samples, rate = decode_audio(data)
    except ValueError as e:
        raise CliError(f"cannot decode {label}: {e} (headerless PCM needs --raw-rate)") from None
    if len(samples) == 0:
        raise CliError(f"{label} holds no audio")
    return Clip(label, data, None, samples, rate, len(samples))


class FdReader:
    """Headerless PCM from a file descriptor (stdin, or a raw file), read on a daemon thread in
    whole chunks (os.read: no buffered-reader lock for interpreter shutdown to trip over)."""

    def __init__(self, fd: int, chunk_bytes: int, frame_bytes: int) -> None:
        self.fd = fd
        self.chunk_bytes = chunk_bytes
        self.frame_bytes = frame_bytes
        self.leftover = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=32)

        def put(item: bytes | BaseException | None) -> bool:
            try:
                asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
                return True
            except Exception:
                return False  # the loop is gone (interrupted)

        threading.Thread(target=self._pump, args=(put,), name="stdin-reader", daemon=True).start()
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def _pump(self, put: Callable[[bytes | BaseException | None], bool]) -> None:
        pending = b""
        try:
            while True:
                data = os.read(self.fd, self.chunk_bytes - len(pending))
                if not data:
                    break
                pending += data
                if len(pending) >= self.chunk_bytes:
                    if not put(pending):
                        return
                    pending = b""
        except OSError as e:
            put(e)
            return
        whole = len(pending) - len(pending) % self.frame_bytes
        self.leftover = len(pending) - whole
        if whole and not put(pending[:whole]):
            return
        put(None)


async def aiter_of(items: Iterable[T]) -> AsyncIterator[T]:
    for item in items:
        yield item
