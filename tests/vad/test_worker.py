"""Cross-stream VAD scoring (``SileroVad.probabilities_many``, ``VadWorker``) on the real silero ONNX file."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from translate_svc.audio.resample import resample
from translate_svc.vad.silero import SileroVad
from translate_svc.vad.worker import VadWorker

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def vad() -> SileroVad:
    return SileroVad()


@pytest.fixture(scope="module")
def streams(shared_audio: Path) -> list[np.ndarray]:
    """Six different stretches of real speech, of different lengths (not window multiples)."""
    audio, rate = sf.read(shared_audio / "silero_test.wav", dtype="float32", always_2d=True)
    x = resample(audio.mean(axis=1), rate, 16000)
    return [x[i * 40000 + 777 : i * 40000 + 777 + 16000 * (2 + i) + 123 * i] for i in range(6)]


def alone(vad: SileroVad, audio: np.ndarray, chunk: int) -> np.ndarray:
    state = vad.new_state()
    return np.concatenate([vad.probabilities(state, audio[t : t + chunk]) for t in range(0, len(audio), chunk)])


def test_many_streams_in_one_call_equal_each_stream_alone(vad: SileroVad, streams: list[np.ndarray]) -> None:
    chunk = 5000  # not a window multiple: remainders carry over per stream
    states = [vad.new_state() for _ in streams]
    got: list[list[np.ndarray]] = [[] for _ in streams]
    for t in range(0, max(len(a) for a in streams), chunk):
        probs = vad.probabilities_many(states, [a[t : t + chunk] for a in streams])  # some streams already ended
        for g, p in zip(got, probs, strict=True):
            g.append(p)
    for audio, g in zip(streams, got, strict=True):
        ref = alone(vad, audio, chunk)
        np.testing.assert_array_equal(np.concatenate(g), ref)  # bit for bit
        assert len(ref) == len(audio) // 512 and ref.max() > 0.5  # real speech was scored
    with pytest.raises(ValueError, match="once per call"):
        vad.probabilities_many([states[0], states[0]], [streams[0][:512], streams[0][:512]])


async def test_worker_scores_concurrent_streams_together_and_exactly(vad: SileroVad, streams: list[np.ndarray]) -> None:
    worker = VadWorker(vad, turn_windows=10_000)  # every request whole in one turn
    gate, entered = threading.Event(), threading.Event()
    real = vad.probabilities_many
    calls: list[int] = []

    def held(states, chunks):  # type: ignore[no-untyped-def]
        calls.append(len(states))
        entered.set()
        gate.wait(5)  # the first call holds the thread, so the other streams' requests queue up
        return real(states, chunks)

    worker.vad = type("Held", (), {"probabilities_many": staticmethod(held)})()  # type: ignore[assignment]
    try:
        states = [vad.new_state() for _ in streams]
        first = asyncio.ensure_future(worker.probabilities(states[0], streams[0]))
        assert await asyncio.to_thread(entered.wait, 5)
        rest = [asyncio.ensure_future(worker.probabilities(s, a)) for s, a in zip(states[1:], streams[1:], strict=True)]
        await asyncio.sleep(0.01)  # the new tasks run (and queue their requests) on the next loop turn
        gate.set()
        got = [await first, *[await r for r in rest]]
    finally:
        worker.close()
    assert calls == [1, len(streams) - 1]  # everything that waited went in one call
    assert worker.batches == 2 and worker.requests == len(streams)
    for audio, g in zip(streams, got, strict=True):
        np.testing.assert_array_equal(g, alone(vad, audio, len(audio)))


async def test_worker_keeps_each_streams_order_and_isolates_failures(vad: SileroVad, streams: list[np.ndarray]) -> None:
    worker = VadWorker(vad)
    try:
        # two requests of one stream at once (sessions never do this): the second waits a turn
        state = vad.new_state()
        a, b = streams[1][:20000], streams[1][20000:40000]
        pa, pb = await asyncio.gather(worker.probabilities(state, a), worker.probabilities(state, b))
        np.testing.assert_array_equal(np.concatenate([pa, pb]), alone(vad, streams[1][:40000], 20000))

        # a malformed request fails alone, at once; a cancelled one is skipped; others are scored
        with pytest.raises(ValueError, match="1-D"):
            await worker.probabilities(vad.new_state(), np.zeros((2, 512), np.float32))
        cancelled = asyncio.ensure_future(worker.probabilities(vad.new_state(), streams[2]))
        cancelled.cancel()
        ok = await worker.probabilities(vad.new_state(), streams[3])
        np.testing.assert_array_equal(ok, alone(vad, streams[3], len(streams[3])))

        # a failing model call reaches every caller in it, and the worker goes on serving
        def broken(states, chunks):  # type: ignore[no-untyped-def]
            raise RuntimeError("onnxruntime failed")

        worker.vad = type("Broken", (), {"probabilities_many": staticmethod(broken)})()  # type: ignore[assignment]
        with pytest.raises(RuntimeError, match="onnxruntime failed"):
            await worker.probabilities(vad.new_state(), streams[0][:1024])
        worker.vad = vad
        again = await worker.probabilities(vad.new_state(), streams[0][:1024])
        assert again.shape == (2,)
    finally:
        worker.close()


async def test_a_long_request_takes_turns_with_short_ones(vad: SileroVad, streams: list[np.ndarray]) -> None:
    """A whole Translate clip must not hold the VAD thread while live streams wait."""
    worker = VadWorker(vad, turn_windows=8)
    finished: list[str] = []
    try:
        long_audio, short_audio = np.concatenate(streams), streams[0][:4096]  # ~30 s vs 8 windows
        long = asyncio.ensure_future(worker.probabilities(vad.new_state(), long_audio))
        short = asyncio.ensure_future(worker.probabilities(vad.new_state(), short_audio))
        long.add_done_callback(lambda _: finished.append("long"))
        short.add_done_callback(lambda _: finished.append("short"))
        got_long, got_short = await long, await short
    finally:
        worker.close()
    assert finished == ["short", "long"]
    assert worker.batches >= len(long_audio) // 512 // 8  # the long one took many turns
    np.testing.assert_array_equal(got_long, alone(vad, long_audio, len(long_audio)))  # and lost nothing
    np.testing.assert_array_equal(got_short, alone(vad, short_audio, len(short_audio)))
