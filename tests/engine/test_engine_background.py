"""The engine's background owners (a job's session, issue 73) with a fake runner: their segments
wait while live finals are queued or still computing their features, and run one a batch after."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from tests.support.fake_runner import FakeRunner
from tests.support.waiting import until
from translate_svc.app import scheduler_config
from translate_svc.engine.engine import TranslationEngine
from translate_svc.model_api.requests import ModelInput
from translate_svc.settings import EngineSettings

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]


def item(seconds: float) -> ModelInput:
    return ModelInput(np.zeros(int(16000 * seconds), np.float32), ("spa",), None)


async def test_live_finals_go_before_a_jobs_older_segments_which_run_one_a_batch() -> None:
    runner = FakeRunner()
    engine = TranslationEngine(lambda: runner, scheduler_config(EngineSettings(max_batch_size=8, max_wait_ms=0)))
    await engine.start(warmup=False)
    try:
        engine.join("job")
        engine.join("live")
        engine.background("job")
        runner.gate.clear()
        first = engine.submit("live", item(1.0))
        await asyncio.to_thread(runner.started.wait, 5)  # it holds the model
        jobs = [engine.submit("job", item(2.0)) for _ in range(2)]
        await until(lambda: engine.preparing == 0)  # the job's segments are queued first
        held = threading.Event()
        runner.on_features = lambda audio: held.wait(10)  # the live finals' features stay in the works
        finals = [engine.submit("live", item(1.5)) for _ in range(2)]
        runner.gate.set()
        await first
        # the loop chose its next batch as it handed out ``first``: none, while live finals are coming
        assert engine.stats().running == 0 and len(runner.ran) == 1
        held.set()
        await asyncio.gather(*finals, *jobs)
        sizes = [[len(i.audio) / 16000 for i in batch] for batch in runner.ran]
        # the live finals before the job's older segments, which run one a batch; the two finals
        # share a batch or not, as the features thread hands them over (max_wait_ms=0: the first
        # queued may leave alone while the second's features finish: a race this test does not own)
        assert [s for batch in sizes for s in batch] == [1.0, 1.5, 1.5, 2.0, 2.0], sizes
        assert sizes[-2:] == [[2.0], [2.0]], sizes
    finally:
        await engine.stop()
