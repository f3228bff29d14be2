"""Many live streams through one ``VadWorker``: its turns gather the windows the streams complete
within ``gather_ms`` into one batched silero call, and each stream's probabilities and segments
are those it gets alone (the real silero ONNX file, the shared speech)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from translate_svc.audio.resample import resample
from translate_svc.session.stream.vad_bridge import VadBridge
from translate_svc.vad.segmenter import Segmenter, SegmenterConfig, SegmenterEvent, SegmentReady
from translate_svc.vad.silero import SileroState, SileroVad
from translate_svc.vad.worker import VadWorker

pytestmark = pytest.mark.unit

#: a live message's audio at 16 kHz (20 ms)
MESSAGE = 320


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> list[np.ndarray]:
    """Six streams of the shared speech at 16 kHz: each file from three different points."""
    out = []
    for name in ("silero_test.wav", "jfk.flac"):
        audio, rate = sf.read(shared_audio / name, dtype="float32", always_2d=True)
        x = resample(audio.mean(axis=1), rate, 16000)
        out += [x[start : start + 9 * 16000] for start in (0, 12_345, 31_007)]
    return out


def _held(vad: SileroVad) -> tuple[object, list[int]]:
    """A stand-in for ``vad`` that records the streams of each batched call."""
    calls: list[int] = []

    def many(states: Sequence[SileroState], chunks: Sequence[np.ndarray]) -> list[np.ndarray]:
        calls.append(len(states))
        return vad.probabilities_many(states, chunks)

    return type("Recorded", (), {"probabilities_many": staticmethod(many), "finish": vad.finish})(), calls


async def test_a_turn_waits_for_the_windows_other_streams_complete_within_gather_ms(
    vad: SileroVad, speech: list[np.ndarray]
) -> None:
    worker = VadWorker(vad, gather_ms=1500)
    worker.vad, calls = _held(vad)  # type: ignore[assignment]
    try:
        states = [vad.new_state() for _ in speech]
        first = asyncio.ensure_future(worker.probabilities(states[0], speech[0][:512]))
        await asyncio.sleep(0)  # the first request is submitted and the thread started
        await asyncio.sleep(0.1)  # a thread that scored at once would meanwhile score it alone
        rest = [worker.probabilities(s, a[:512]) for s, a in zip(states[1:], speech[1:], strict=True)]
        got = await asyncio.gather(first, *rest)
    finally:
        worker.close()
    assert calls == [len(speech)]  # one turn, one model call for every stream's window
    assert worker.batches == 1 and worker.requests == len(speech)
    for audio, g in zip(speech, got, strict=True):
        np.testing.assert_array_equal(g, vad.probabilities(vad.new_state(), audio[:512]))


def _key(ev: SegmenterEvent) -> tuple[object, ...]:
    if isinstance(ev, SegmentReady):
        return (type(ev).__name__, ev.start_sample, ev.end_sample, ev.reason, ev.samples.tobytes())
    return (type(ev).__name__, *vars(ev).values())


class _Stream:
    """One live stream's VAD path as a session has it: a bridge into the worker, a segmenter."""

    def __init__(self, worker: VadWorker, config: SegmenterConfig) -> None:
        self.segmenter = Segmenter(config)
        self.events: list[tuple[object, ...]] = []
        self.probs: list[np.ndarray] = []
        self.bridge = VadBridge(worker, self._scored, lambda: None)

    def _scored(self, samples: np.ndarray, probs: np.ndarray | None, error: BaseException | None) -> None:
        assert error is None and probs is not None
        self.probs.append(probs)
        self.events += [_key(ev) for ev in self.segmenter.push(samples, probs)]

    async def end(self) -> None:
        self.bridge.score(np.zeros(0, np.float32), last=True)
        await self.bridge.wait_idle()
        self.events += [_key(ev) for ev in self.segmenter.finish()]


async def test_streams_scored_together_get_the_segments_each_gets_alone(
    vad: SileroVad, speech: list[np.ndarray]
) -> None:
    config = SegmenterConfig(min_silence_ms=200)
    together = VadWorker(vad)  # the default gather: every stream's pending windows in one call
    try:
        streams = [_Stream(together, config) for _ in speech]
        for t in range(0, max(len(a) for a in speech), MESSAGE):  # 20 ms messages, interleaved
            for s, audio in zip(streams, speech, strict=True):
                if t < len(audio):
                    s.bridge.score(audio[t : t + MESSAGE])
        await asyncio.gather(*(s.end() for s in streams))
    finally:
        together.close()
    assert together.requests >= 3 * together.batches  # the turns held several streams each
    for s, audio in zip(streams, speech, strict=True):
        alone_worker = VadWorker(vad, gather_ms=0)
        try:
            alone = _Stream(alone_worker, config)
            for t in range(0, len(audio), MESSAGE):
                alone.bridge.score(audio[t : t + MESSAGE])
            await alone.end()
        finally:
            alone_worker.close()
        np.testing.assert_array_equal(np.concatenate(s.probs), np.concatenate(alone.probs))  # bit for bit
        assert s.events == alone.events
        assert any(k[0] == "SegmentReady" for k in alone.events)  # the speech was cut into segments


async def test_a_request_no_model_call_takes_fails_alone_and_its_batch_is_scored_as_alone(
    vad: SileroVad, speech: list[np.ndarray]
) -> None:
    """A state the model refuses (a recurrent state of the wrong size) batched with good streams:
    its caller gets the error; the others get, in that turn and the next, what they get alone,
    though the batched call had moved their states before the bad request's tail window failed."""
    worker = VadWorker(vad, gather_ms=1500)  # every request below in one turn
    try:
        states = [vad.new_state() for _ in speech]
        bad = SileroState(rnn=np.zeros((2, 1, 64), np.float32))
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(len(speech) + 1)]

        def back(future: asyncio.Future[np.ndarray], probs: np.ndarray | None, error: BaseException | None) -> None:
            future.set_exception(error) if error is not None else future.set_result(probs)

        for s, a, f in zip(states, speech, futures, strict=False):  # 2.5 windows each
            worker.submit(s, a[:1280], functools.partial(back, f))
        # no whole window: the bad state is read only by its zero-padded tail, after the batch
        worker.submit(bad, speech[0][:100], functools.partial(back, futures[-1]), last=True)
        got = await asyncio.gather(*futures, return_exceptions=True)
        then = await asyncio.gather(
            *(worker.probabilities(s, a[1280:4000]) for s, a in zip(states, speech, strict=True))
        )
    finally:
        worker.close()
    assert isinstance(got[-1], Exception)  # the bad request's own error
    for audio, first, second in zip(speech, got, then, strict=False):
        alone = vad.new_state()
        np.testing.assert_array_equal(first, vad.probabilities(alone, audio[:1280]))
        np.testing.assert_array_equal(second, vad.probabilities(alone, audio[1280:4000]))
