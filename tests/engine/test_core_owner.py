"""The async owner around the core (engine/core.py) on the fake runner: a job cancelled while its
batch is in the model is answered to nobody, the others are, and the engine keeps no future."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

from tests.support.fake_runner import FakeRunner
from tests.support.waiting import until
from translate_svc.app import scheduler_config
from translate_svc.engine.engine import TranslationEngine
from translate_svc.model_api.requests import ModelInput
from translate_svc.settings import EngineSettings

pytestmark = pytest.mark.unit


def item(seconds: float) -> ModelInput:
    return ModelInput(np.zeros(int(16000 * seconds), np.float32), ("spa",), None, speech=False)


async def test_a_job_cancelled_in_the_model_leaves_nothing_and_its_batch_is_answered() -> None:
    runner = FakeRunner()
    # a batch goes when it is full (two jobs), so both are in the model together
    settings = EngineSettings(max_batch_size=2, max_wait_ms=10_000)
    engine = TranslationEngine(lambda: runner, scheduler_config(settings))
    await engine.start(warmup=False)
    try:
        runner.gate.clear()
        kept = engine.submit("a", item(1.0))
        gone = engine.submit("b", item(0.5))
        await until(lambda: engine.stats().running == 2)  # both in the model, held at the gate
        gone.cancel()
        seen = weakref.ref(gone)
        del gone
        runner.gate.set()
        result = await kept
        await engine.wait_idle()
        assert runner.batches == [2] and result.batch_size == 2
        assert result.output is not None and result.output.texts == {"spa": "spa:16000"}
        assert engine.stats().running == 0 and engine.queued == 0
        gc.collect()
        assert seen() is None  # the engine let go of the cancelled job's future
    finally:
        runner.gate.set()
        await engine.stop()
