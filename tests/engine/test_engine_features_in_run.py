"""Where a segment's features are computed (engine/engine.py, ``FeaturesInRun`` in
model_api/runner.py): by default on the engine's features thread, ahead of the model; for a runner
that computes them inside ``run`` (the CUDA plan: on the device, in the encoder's call), nowhere in
the engine: the segment is queued as it comes, without features, and the features thread stays idle.
The fake runner: no checkpoint, no torch."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.support.fake_runner import FakeRunner
from translate_svc.app import scheduler_config
from translate_svc.engine.engine import TranslationEngine
from translate_svc.model_api.requests import ModelInput, SourceText
from translate_svc.model_api.runner import FeaturesInRun
from translate_svc.settings import EngineSettings

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]


class InRunRunner(FakeRunner):
    """The fake runner, computing features inside ``run`` where ``in_run`` says so."""

    def __init__(self, in_run: bool) -> None:
        super().__init__()
        self.in_run = in_run

    @property
    def features_in_run(self) -> bool:
        return self.in_run


async def run_three(runner: FakeRunner) -> tuple[list[np.ndarray], list[ModelInput]]:
    """Two segments and a text through an engine on ``runner``: the audio whose features the
    engine asked for, and the inputs ``run`` got."""
    asked: list[np.ndarray] = []
    runner.on_features = asked.append
    engine = TranslationEngine(lambda: runner, scheduler_config(EngineSettings(max_batch_size=4)))
    await engine.start(warmup=False)
    try:
        items = [
            ModelInput(np.zeros(16_000, np.float32), ("spa",), None),
            ModelInput(np.zeros(24_000, np.float32), ("fra",), None),
            ModelInput(np.zeros(0, np.float32), ("spa",), text=SourceText("hola", "spa")),
        ]
        results = await asyncio.gather(*(engine.submit(f"s{k}", item) for k, item in enumerate(items)))
        assert all(r.error is None and r.output is not None for r in results)
    finally:
        await engine.stop()
    return asked, [item for batch in runner.ran for item in batch]


async def test_a_runner_that_computes_features_in_run_gets_segments_without_them() -> None:
    runner = InRunRunner(in_run=True)
    assert isinstance(runner, FeaturesInRun)
    asked, ran = await run_three(runner)
    assert asked == []  # the features thread never ran
    assert len(ran) == 3 and all(item.features is None for item in ran)


async def test_by_default_the_engine_computes_each_segments_features_ahead() -> None:
    for runner in (FakeRunner(), InRunRunner(in_run=False)):
        asked, ran = await run_three(runner)
        assert sorted(len(a) for a in asked) == [16_000, 24_000]  # each segment once, the text never
        assert sorted(item.features is None for item in ran) == [False, False, True]
