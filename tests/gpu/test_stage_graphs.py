"""Every stage under its captured CUDA graphs (issue 88, model/capture.py): the runner the server
builds on CUDA (model/build.py), warmed as the server warms it (``buckets`` through the steps core,
the finish stage's thread included), captures a graph per bucket for the encoder, the decode's
admission, text-to-unit's and the vocoder's two parts each, with no failed capture; live
segments through the stepping decoder then replay them and give, in float32 on the test
checkpoint, what the same static path gives with nothing captured (every stage eager). Tokens and
lengths compared, never words. The CPU runs the same static path in CI
(tests/model/test_cuda_path_on_cpu.py); this is the capture itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.gpu]

STAGES = ("encoder", "t2u.chars", "t2u.units", "vocoder.durations", "vocoder.hifigan")


def _runner(test_model_dir: Path, *, capture: bool) -> Any:
    from tests.support.host_path import warm_as_served
    from translate_svc.engine.warmup import WarmupConfig, WarmupMode
    from translate_svc.model.build import build_runner
    from translate_svc.model.stages.shapes import encoder_lengths_s
    from translate_svc.settings import ModelSettings

    m = ModelSettings(path=test_model_dir, device="cuda", dtype="float32", lid_path=None, finish_thread=True)
    runner = build_runner(m)
    if not capture:  # the same static path, every stage eager
        for stage in runner.stages.graphed:
            stage.capturing = False
        runner.stepper().loop.admission.capturing = False
    config = WarmupConfig(WarmupMode.BUCKETS, encoder_lengths_s(8.0), None, 8.0, rows_per_segment=2)
    warm_as_served(runner, config, max_rows=2)
    return runner


def test_every_stage_replays_its_graphs_and_gives_what_it_gives_eagerly(
    test_model_dir: Path, shared_audio: Path
) -> None:
    from tests.support.host_path import through_stepper
    from tests.support.speech import read_16k, vad_segments
    from translate_svc.model_api.requests import ModelInput

    segments = [e.samples for e in asyncio.run(vad_segments(read_16k(shared_audio / "jfk.flac")))]
    items = [ModelInput(s, ("spa",), "eng", speech=True) for s in segments]
    graphed = _runner(test_model_dir, capture=True)
    for stage in graphed.stages.graphed:
        assert stage.captured > 0 and stage.failures == 0, stage.name
    admission = graphed.stepper().loop.admission
    assert admission.captured > 0 and admission.failures == 0
    got, _, _ = through_stepper(graphed, items, 2)
    eager = _runner(test_model_dir, capture=False)
    assert all(stage.captured == 0 for stage in eager.stages.graphed)
    want, _, _ = through_stepper(eager, items, 2)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.texts == w.texts and g.transcript == w.transcript, f"segment {k}"
        assert {lang: len(x) for lang, x in g.waveforms.items()} == {lang: len(x) for lang, x in w.waveforms.items()}
    assert graphed.stages.shapes.cold == {}
