"""A real Pipecat pipeline around the service under test: ``[Recorder(up), service, Recorder(down)]``
run by pipecat's ``PipelineWorker`` and ``WorkerRunner`` (the 1.x names of ``PipelineTask`` and
``PipelineRunner``), fed ``InputAudioRawFrame``\\ s as a transport would, faster than real time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import soxr
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    TranscriptionFrame,
    TranslationFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner

FRAME_MS = 20  # what a telephony serializer hands the pipeline


class Recorder(FrameProcessor):
    """Records the frames that pass it in one direction, in the order they were pushed to it
    (direct mode: processed as they are queued, so nothing is reordered or flushed here)."""

    def __init__(self, direction: FrameDirection) -> None:
        super().__init__(enable_direct_mode=True)
        self.direction = direction
        self.frames: list[Frame] = []
        self.changed = asyncio.Event()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self.direction:
            self.frames.append(frame)
            self.changed.set()
        await self.push_frame(frame, direction)

    def of(self, kind: type[Frame] | tuple[type[Frame], ...]) -> list[Any]:
        return [f for f in self.frames if isinstance(f, kind)]

    async def wait_for(self, predicate: Callable[[Recorder], bool], timeout_s: float) -> None:
        async def loop() -> None:
            while not predicate(self):
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(loop(), timeout_s)


def chunks(pcm16k: np.ndarray, rate: int, seconds: float | None = None) -> list[bytes]:
    """The first ``seconds`` of 16 kHz int16 audio at ``rate``, as FRAME_MS PCM16 frames."""
    pcm = pcm16k if seconds is None else pcm16k[: int(16000 * seconds)]
    if rate != 16000:
        f = soxr.resample(pcm.astype(np.float32) / 32768.0, 16000, rate)
        pcm = np.clip(np.round(f * 32768.0), -32768, 32767).astype(np.int16)
    n = rate * FRAME_MS // 1000
    return [pcm[i : i + n].astype("<i2").tobytes() for i in range(0, len(pcm) - n + 1, n)]


#: after each frame: a callback given the audio sent so far (ms) and the run; it may queue frames
Hook = Callable[[int, "Run"], Awaitable[None]]


@dataclass
class Run:
    worker: PipelineWorker
    down: Recorder
    up: Recorder
    errors: list[ErrorFrame] = field(default_factory=list)

    async def queue(self, frame: Frame) -> None:
        await self.worker.queue_frame(frame)


async def run_pipeline(
    service: FrameProcessor,
    frames: Sequence[bytes],
    *,
    rate: int = 16000,
    out_rate: int = 24000,
    pace: float = 6.0,
    hook: Hook | None = None,
    timeout_s: float = 120.0,
) -> Run:
    """Feed ``frames`` (PCM16 at ``rate``) at ``pace`` times real time, then an ``EndFrame``;
    return what the recorders saw once the pipeline has ended."""
    up, down = Recorder(FrameDirection.UPSTREAM), Recorder(FrameDirection.DOWNSTREAM)
    worker = PipelineWorker(
        Pipeline([up, service, down]),
        params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=out_rate),
        cancel_on_idle_timeout=False,
        enable_rtvi=False,
    )
    run = Run(worker, down, up)
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker: PipelineWorker, _frame: Frame) -> None:
        started.set()

    @worker.event_handler("on_pipeline_error")
    async def _error(_worker: PipelineWorker, frame: ErrorFrame) -> None:
        run.errors.append(frame)

    async def feed() -> None:
        await asyncio.wait_for(started.wait(), 60)
        step_s = FRAME_MS / 1000 / pace
        for i, audio in enumerate(frames):
            await worker.queue_frame(InputAudioRawFrame(audio=audio, sample_rate=rate, num_channels=1))
            if hook is not None:
                await hook((i + 1) * FRAME_MS, run)
            await asyncio.sleep(step_s)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.wait_for(asyncio.gather(runner.run(), feed()), timeout_s)
    return run


def assert_no_errors(run: Run) -> None:
    """No error reached the pipeline worker, and none went upstream from the service."""
    errors = [*run.errors, *run.up.of(ErrorFrame)]
    assert errors == [], [str(e) for e in errors]


def segment_of(frame: Frame) -> int:
    return int(frame.metadata["translate_svc"]["segment_id"])


def speech_by_context(frames: Sequence[Frame]) -> dict[str, list[TTSAudioRawFrame]]:
    out: dict[str, list[TTSAudioRawFrame]] = {}
    for f in frames:
        if isinstance(f, TTSAudioRawFrame):
            out.setdefault(str(f.context_id), []).append(f)
    return out


def check_speech_brackets(frames: Sequence[Frame]) -> None:
    """Every context's audio lies between its TTSStartedFrame and its TTSStoppedFrame (when it
    has one: an interrupted context is not stopped), each sent once."""
    state: dict[str, str] = {}
    for f in frames:
        if isinstance(f, TTSStartedFrame):
            assert f.context_id not in state, f"{f.context_id} started twice"
            state[str(f.context_id)] = "open"
        elif isinstance(f, TTSAudioRawFrame):
            assert state.get(str(f.context_id)) == "open", f"audio of {f.context_id} outside its start/stop"
        elif isinstance(f, TTSStoppedFrame):
            assert state.get(str(f.context_id)) == "open", f"{f.context_id} stopped without being open"
            state[str(f.context_id)] = "stopped"


__all__ = [
    "FRAME_MS",
    "Recorder",
    "Run",
    "TranscriptionFrame",
    "TranslationFrame",
    "assert_no_errors",
    "check_speech_brackets",
    "chunks",
    "run_pipeline",
    "segment_of",
    "speech_by_context",
]
