"""The VAD worker's background requests (a job's audio, issue 73) on the real silero ONNX file: in a
turn with live requests a background one is scored only as far as the longest live one (it never
makes the turn longer), alone it gets whole turns, and its results are exactly a stream's alone."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from translate_svc.audio.resample import resample
from translate_svc.vad.segmenter import WINDOW_SAMPLES
from translate_svc.vad.silero import SileroVad
from translate_svc.vad.worker import BACKGROUND, VadWorker

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> np.ndarray:
    audio, rate = sf.read(shared_audio / "silero_test.wav", dtype="float32", always_2d=True)
    return resample(audio.mean(axis=1), rate, 16000)


async def test_a_background_request_never_lengthens_a_turn_with_live_ones(speech: np.ndarray) -> None:
    vad = SileroVad()
    worker = VadWorker(vad, turn_windows=32)
    real = vad.probabilities_many
    turns: list[list[int]] = []  # each call: samples per request
    gate, entered = threading.Event(), threading.Event()

    def seen(states, chunks):  # type: ignore[no-untyped-def]
        turns.append([len(c) for c in chunks])
        entered.set()
        gate.wait(5)  # the first call holds the thread: the next requests queue up together
        return real(states, chunks)

    worker.vad = type("Seen", (), {"probabilities_many": staticmethod(seen)})()  # type: ignore[assignment]
    worker.vad.finish = vad.finish  # type: ignore[attr-defined]
    job_audio, live_audio = speech[: 16000 * 3], speech[16000 * 3 : 16000 * 3 + 1600]
    try:
        first = asyncio.ensure_future(worker.probabilities(vad.new_state(), speech[:512]))
        assert await asyncio.to_thread(entered.wait, 5)

        async def job() -> np.ndarray:
            BACKGROUND.set(True)  # as the job runner does, in its job's task only
            return await worker.probabilities(job_state, job_audio)

        job_state, live_state = vad.new_state(), vad.new_state()
        bg = asyncio.create_task(job(), context=contextvars.copy_context())
        live = asyncio.ensure_future(worker.probabilities(live_state, live_audio))
        await asyncio.sleep(0.01)  # both queue their requests on the next loop turn
        gate.set()
        got_bg, got_live = await bg, await live
        await first
    finally:
        worker.close()
    assert not BACKGROUND.get()  # the job's task set it for itself only
    # the turn with the live request: the job's request cut to the live one's length in whole windows
    live_cut = -(-len(live_audio) // WINDOW_SAMPLES) * WINDOW_SAMPLES
    assert sorted(turns[1]) == sorted([live_cut, len(live_audio)])
    # then the job alone: whole turns of 32 windows
    assert turns[2] == [32 * WINDOW_SAMPLES]
    np.testing.assert_array_equal(got_bg, vad.probabilities(vad.new_state(), job_audio))
    np.testing.assert_array_equal(got_live, vad.probabilities(vad.new_state(), live_audio))
