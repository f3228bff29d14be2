"""Simultaneous mode at bounded cost (issue 46): on speech with no pause, each step re-translates
its open segment from the start, so the server cuts a simultaneous stream's segments at
``limits.simultaneous_max_segment_ms``; the audio its steps re-translate per second of speech then
stays bounded however long the speaker goes on. Read on the server's own counters (``/metrics``'
registry), on a real server with the stable translator, driven in lockstep (every step due runs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from benchmarks.tools.simultaneous import JOINT_TRIM, continuous, cut_regions, offline_segments
from tests.support.lockstep import Lockstep
from tests.support.memory_door import check_commits, config, drive, stable_server, steps
from translate_svc.client_cli.decode import load_pcm16k
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.model_api.requests import ModelInput
from translate_svc.session import AudioIn, SegmentResult, StreamRequest
from translate_svc.types import OutputOptions, SimultaneousOptions

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

CHUNK = 1600  # 100 ms at 16 kHz
#: the issue's bound: audio re-translated by steps per second of speech, at 1 s steps
BOUND = 3.0


def no_pause_speech(shared_audio: Path, seconds: float) -> np.ndarray:
    """The speech regions of silero_test.wav and jfk.flac (as the server's VAD cuts them, their pads
    trimmed) back to back, cycled to ``seconds``: one region the VAD never closes on a pause
    (``benchmarks/tools/simultaneous.py``'s continuous input)."""
    regions = []
    for name in ("silero_test.wav", "jfk.flac"):
        pcm = load_pcm16k(shared_audio / name)
        spans = [(a, b) for a, b, _ in offline_segments(pcm)]
        regions += cut_regions(pcm, spans, trim=JOINT_TRIM)
    return continuous(regions, int(16000 * seconds))


def counter(name: str) -> float:
    return sum(s.value for metric in REGISTRY.collect() for s in metric.samples if s.name == name)


class Recording(StableTranslator):
    """The stable translator, noting the audio of every open step it runs (finals aside)."""

    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir)
        self.step_samples = 0

    def run(self, inputs: Sequence[ModelInput]) -> list[Any]:
        self.step_samples += sum(len(i.audio) for i in inputs if i.simul is not None and not i.simul.final)
        return super().run(inputs)


async def test_the_audio_steps_re_translate_is_counted_on_metrics(
    test_model_dir: Path, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_pcm16k(shared_audio / "jfk.flac").tobytes()
    chunks = [data[i : i + 2 * CHUNK] for i in range(0, len(data), 2 * CHUNK)]
    runner = Recording(test_model_dir)
    async with stable_server(test_model_dir, lambda: runner) as live:
        before = counter("translate_svc_simultaneous_step_audio_seconds_total")
        await drive(live, [config(live, None), *(AudioIn(c) for c in chunks)], settle=Lockstep(live, monkeypatch))
        assert counter("translate_svc_simultaneous_step_audio_seconds_total") == before  # segment mode: none
        opts = SimultaneousOptions(step_ms=1000)
        await drive(live, [config(live, opts), *(AudioIn(c) for c in chunks)], settle=Lockstep(live, monkeypatch))
        counted = counter("translate_svc_simultaneous_step_audio_seconds_total") - before
    # what the model ran for the steps, to the sample
    assert runner.step_samples > 0 and counted == pytest.approx(runner.step_samples / 16000, abs=1e-6)


async def test_audio_re_translated_per_second_of_speech_stays_bounded_without_a_pause(
    test_model_dir: Path, shared_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pcm = no_pause_speech(shared_audio, 60.0)
    # the offline VAD finds no pause in it: only the length cap cuts it
    assert all(reason == "MAX_LENGTH" for _, _, reason in offline_segments(pcm)[:-1])
    data = pcm.tobytes()
    chunks = [data[i : i + 2 * CHUNK] for i in range(0, len(data), 2 * CHUNK)]
    async with stable_server(test_model_dir) as live:
        cap_ms = live.server.app.settings.limits.simultaneous_max_segment_ms
        received = counter("translate_svc_tenant_audio_seconds_total")
        re_translated = counter("translate_svc_simultaneous_step_audio_seconds_total")
        ran, skipped = steps("run"), steps("skipped")
        opts = SimultaneousOptions(step_ms=1000, agreement=2)
        requests: list[StreamRequest] = [config(live, opts), *(AudioIn(c) for c in chunks)]
        events = await drive(live, requests, settle=Lockstep(live, monkeypatch))
        received = counter("translate_svc_tenant_audio_seconds_total") - received
        re_translated = counter("translate_svc_simultaneous_step_audio_seconds_total") - re_translated
        ran, skipped = steps("run") - ran, steps("skipped") - skipped
    speech_s = len(pcm) / 16000
    assert received == pytest.approx(speech_s, abs=0.1)
    # steps kept their pace (one a second of speech, less one per segment), so the bound is not
    # met by steps left out
    segments = [ev for ev in events if isinstance(ev, SegmentResult)]
    assert ran >= speech_s - 2 * len(segments) and skipped <= 0.1 * ran
    assert re_translated / received <= BOUND, f"{re_translated:.1f} s re-translated for {received:.1f} s of speech"
    # segments cut at the cap, each its own parity: joined commits equal its final, no retraction
    assert all(s.end_ms - s.start_ms <= cap_ms for s in segments)
    by_seg = check_commits(events, OutputOptions())
    assert len(by_seg) >= len(segments) - 1
