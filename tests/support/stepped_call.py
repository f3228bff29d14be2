"""A StreamingTranslate call a test drives step by step, against a real server on loopback whose
model is the fake runner (``fake_runner.py``: faults and holds injected through the Runner
Protocol, milliseconds of model time): the call's config, audio sent when the test chooses, what
has arrived awaited with each response's arrival time; the spans the server's VAD cuts, and what a
segment translated by the fake says."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
from google.rpc import code_pb2

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.paths import REPO
from tests.support.speech import vad_segments
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.wire.pcm import pcm16_to_float

FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
#: the fake runner never reads a checkpoint: any path will do
NO_MODEL = REPO / "model_cache" / "unused-fake-runner"
#: a safety net so that a broken test fails instead of hanging; never a measured bound
WAIT_S = 30.0
PER_MS = 16  # 16 kHz samples per millisecond
SILENCE_1S = np.zeros(16000, np.int16)


def jfk_then_silence(shared_audio: Path) -> np.ndarray:
    """jfk.flac as 16 kHz PCM16, then 1 s of silence: four phrases, each closed inside the audio."""
    return np.concatenate([load_pcm16k(shared_audio / "jfk.flac"), SILENCE_1S])


async def spans_of(pcm: np.ndarray) -> list[tuple[int, int]]:
    """The [start_ms, end_ms) spans a server cuts from ``pcm`` at the default VAD settings
    (``speech.vad_segments``: the same segmenter, no model), rounded as ``segment_of`` does."""
    return [(-(-s.start_sample // PER_MS), s.end_sample // PER_MS) for s in await vad_segments(pcm16_to_float(pcm))]


@contextlib.asynccontextmanager
async def fake_serving(runner: FakeRunner, **engine: float) -> AsyncIterator[LiveServer]:
    """A real server on loopback whose model is ``runner`` (no warm-up batch: ``runner.ran`` holds
    the streams' batches only)."""
    async with serving(make_settings(NO_MODEL, **engine), warmup=False, runner_factory=lambda: runner) as live:
        yield live


def call_config(
    *, speech: bool = False, text: bool = True, interim_ms: int = 0, **output: object
) -> pb.StreamingConfig:
    """English LINEAR16 at 16 kHz into Spanish: text unless ``text`` is false, speech if ``speech``,
    live captions every ``interim_ms`` (0: none)."""
    return pb.StreamingConfig(
        format=FMT,
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=text, speech=speech, **output),  # type: ignore[arg-type]
        interim_interval_ms=interim_ms,
    )


class Call:
    """One StreamingTranslate call, run as a task: the test sends audio when it chooses (``send``),
    half-closes (``close``), and waits for what has arrived (``until``), with each response's
    arrival time (``time.perf_counter``, the clock the server's timings use) in ``at``."""

    def __init__(self, stub: pb_grpc.TranslatorStub, cfg: pb.StreamingConfig) -> None:
        self._requests: asyncio.Queue[pb.StreamingTranslateRequest | None] = asyncio.Queue()
        self._requests.put_nowait(pb.StreamingTranslateRequest(config=cfg))
        self.got: list[pb.StreamingTranslateResponse] = []
        self.at: list[float] = []
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(stub))

    async def _messages(self) -> AsyncIterator[pb.StreamingTranslateRequest]:
        while (m := await self._requests.get()) is not None:
            yield m

    async def _run(self, stub: pb_grpc.TranslatorStub) -> None:
        try:
            async for r in stub.StreamingTranslate(self._messages(), timeout=60):
                self.got.append(r)
                self.at.append(time.perf_counter())
                self._changed.set()
        finally:
            self._changed.set()

    def send(self, pcm: np.ndarray, chunk_ms: int | None = 100) -> None:
        """``pcm`` as LINEAR16 messages of ``chunk_ms`` (None: one message)."""
        step = len(pcm) if chunk_ms is None else chunk_ms * PER_MS
        for i in range(0, len(pcm), step):
            self._requests.put_nowait(pb.StreamingTranslateRequest(audio=pcm[i : i + step].astype("<i2").tobytes()))

    def close(self) -> None:
        self._requests.put_nowait(None)

    async def until(self, done: Callable[[list[pb.StreamingTranslateResponse]], bool]) -> None:
        async with asyncio.timeout(WAIT_S):
            while not done(self.got):
                if self.task.done():
                    self.task.result()  # the call's error, if it failed
                    raise AssertionError(f"the call ended without that: {[r.WhichOneof('response') for r in self.got]}")
                self._changed.clear()
                await self._changed.wait()

    async def result(self) -> list[pb.StreamingTranslateResponse]:
        async with asyncio.timeout(WAIT_S):
            await self.task
        return self.got

    def cancel(self) -> None:
        self.task.cancel()


def segments(got: list[pb.StreamingTranslateResponse]) -> list[pb.SegmentResult]:
    """The segments among a call's responses."""
    return [r.segment for r in got if r.HasField("segment")]


def speech_ended(got: list[pb.StreamingTranslateResponse]) -> list[int]:
    """Indexes (into ``got``) of the SPEECH_ENDED events: each comes right after its region's last
    segment was submitted to the engine (the segmenter's event contract)."""
    return [
        i
        for i, r in enumerate(got)
        if r.HasField("speech_event") and r.speech_event.type == pb.SpeechEvent.SPEECH_ENDED
    ]


def samples(s: pb.SegmentResult) -> int:
    """16 kHz samples the model got for ``s``: its span, exactly (the fake's text names them)."""
    return (s.end_ms - s.start_ms) * PER_MS


def assert_translated(s: pb.SegmentResult) -> None:
    """``s`` is OK and translated by the fake runner, from its whole span."""
    assert s.status.code == code_pb2.OK, s.status
    assert [t.text for t in s.translations] == [f"spa:{samples(s)}"], s


def assert_ended(got: list[pb.StreamingTranslateResponse], total: int) -> None:
    """The call ended at its half-close, after ``total`` segments."""
    assert got[-1].HasField("ended"), got[-1]
    assert got[-1].ended.reason == pb.StreamEnd.HALF_CLOSE and got[-1].ended.segments_total == total
