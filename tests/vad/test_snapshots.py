"""A stream started from a VAD snapshot (issue 101: a job resumed from a checkpoint,
``vad/snapshot.py``) scores and segments as the whole stream did.

- The segmenter: a lead-in started at a window boundary with the hysteresis the whole stream had
  there (``Segmenter.hysteresis()``: speech on, a pause's start, moved onto the new stream) emits,
  after the resume point, exactly what a lead-in from the stream's start emits; random speech-like
  probabilities, settings, snapshot points and resume points, many with speech on or a pause under
  way at the snapshot. A fresh hysteresis there differs.
- The VAD bridge: snapshots taken every N windows while chunks of any size come, scored by the
  shared worker among other streams, are each silero's state after exactly the samples before
  them (a state scored over those samples alone), and the segmenter's then.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from tests.support.segmenter_probs import W, index_stream, random_config, random_probs
from translate_svc.session.stream.vad_bridge import VadBridge
from translate_svc.vad.segmenter import Segmenter, SegmenterConfig, SegmenterEvent, SegmentReady
from translate_svc.vad.silero import SileroState, SileroVad
from translate_svc.vad.worker import VadWorker

pytestmark = pytest.mark.unit


def _run(seg: Segmenter, probs: np.ndarray, start: int = 0) -> list[object]:
    """Windows ``start``.. of the stream pushed (samples valued by their index on the whole
    stream) and finished; segments as (start, end, reason) on the whole stream."""
    x = index_stream(len(probs) * W)[start * W :]
    events: list[SegmenterEvent] = seg.push(x, probs[start:]) + seg.finish()
    shift = start * W
    return [
        (e.start_sample + shift, e.end_sample + shift, e.reason) if isinstance(e, SegmentReady) else type(e).__name__
        for e in events
    ]


def _hysteresis_at(config: SegmenterConfig, probs: np.ndarray, at: int) -> tuple[bool, int | None]:
    seg = Segmenter(config)
    seg.push(index_stream(at * W), probs[:at])
    return seg.hysteresis()


def test_a_lead_in_from_a_snapshot_segments_as_a_lead_in_from_the_start() -> None:
    rng = np.random.default_rng(11)
    mattered = on = 0
    for trial in range(400):
        config = dataclasses.replace(random_config(rng, pads=(0, 30), silences=(100, 300)), max_segment_ms=60_000)
        n = int(rng.integers(20, 600))
        probs = np.asarray(random_probs(rng, trial, n), np.float32)
        at = int(rng.integers(1, n - 2))  # the snapshot's window
        resume = at * W + int(rng.integers(1, 12 * W))  # the resume point, a little after it
        if resume >= n * W:
            continue
        whole = _run(Segmenter(config, lead_in=resume), probs)
        triggered, temp_end = _hysteresis_at(config, probs, at)
        on += triggered or temp_end is not None
        moved = (triggered, None if temp_end is None else temp_end - at * W)
        resumed = _run(Segmenter(config, lead_in=resume - at * W, hysteresis=moved), probs, at)
        assert resumed == whole, (trial, config, at, resume)
        mattered += _run(Segmenter(config, lead_in=resume - at * W), probs, at) != whole
    assert on > 100 and mattered >= 5  # speech on at many snapshots; a fresh hysteresis differed


def test_a_hysteresis_needs_a_lead_in() -> None:
    with pytest.raises(ValueError, match="lead-in"):
        Segmenter(SegmenterConfig(), hysteresis=(True, None))


async def test_the_bridge_takes_silero_state_after_exactly_the_samples_before_each_snapshot(
    shared_audio: Path,
) -> None:
    import soundfile as sf

    from translate_svc.audio.resample import resample

    audio, rate = sf.read(shared_audio / "jfk.flac", dtype="float32", always_2d=True)
    x = resample(audio.mean(axis=1), rate)[: 8 * 16000]
    vad = SileroVad()
    worker = VadWorker(vad, turn_windows=7)
    try:
        scored: list[int] = []
        taken: list[tuple[int, SileroState]] = []
        bridge = VadBridge(worker, lambda s, p, e: scored.append(len(s)), lambda: None)
        other = VadBridge(worker, lambda s, p, e: None, lambda: None)  # another stream in the same turns
        bridge.snapshots(5 * W, 37 * W, lambda at, state: taken.append((at, state)))
        rng = np.random.default_rng(3)
        at = 0
        while at < len(x):
            n = int(rng.integers(1, 5000))
            bridge.score(x[at : at + n])
            other.score(x[at : at + n][::-1].copy())
            at += n
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        bridge.score(np.zeros(0, np.float32), now=True)
        # the loop held until the worker has scored everything: a state read when the results
        # reach the loop (not copied on the thread) would be the stream's last
        while worker._running:
            time.sleep(0.005)  # noqa: ASYNC251 (the loop held on purpose)
        await bridge.scored_all()
        await other.scored_all()
        assert [a for a, _ in taken] == list(range(5 * W, len(x) - W, 37 * W))[: len(taken)]
        assert len(taken) >= (len(x) - 5 * W) // (37 * W) - 1
        for a, state in taken:
            alone = vad.new_state()
            vad.probabilities(alone, x[:a])
            np.testing.assert_array_equal(state.rnn, alone.rnn)
            np.testing.assert_array_equal(state.context, alone.context)
            assert state.pending.size == 0
    finally:
        worker.close()
