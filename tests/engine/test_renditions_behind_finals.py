"""A room's renditions run behind every final (``EngineClient.submit_droppable(behind_finals=True)``,
session/calls/renditions.py): the engine on a fake runner whose batches wait on a gate, so which job
shares which batch is known, whatever the machine's load.

While a final is in the model and another stream's final waits, a live caption is refused (it
would be stale: the engine's rule for optional work), but a rendition (kept units spoken again) is
queued; it runs after that final, in a batch of its own, never beside a final. A rendition whose
wait is given up (its future cancelled) leaves the queue and never reaches the model."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.support.fake_runner import FakeRunner
from tests.support.waiting import until
from translate_svc.app import scheduler_config
from translate_svc.engine.engine import TranslationEngine
from translate_svc.model_api.requests import ModelInput, WorkKind
from translate_svc.settings import EngineSettings
from translate_svc.types import SpokenUnits

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]

UNITS = SpokenUnits("spa", 0, np.arange(50, dtype=np.int64), np.full(10, 5, np.int64), (3, 9, 3))


def final(seconds: float) -> ModelInput:
    return ModelInput(np.zeros(int(16000 * seconds), np.float32), ("spa",), "eng")


def rendition() -> ModelInput:
    return ModelInput(np.zeros(0, np.float32), ("spa",), speech=True, renditions=(("spa", 1.5),), respeak=(UNITS,))


async def test_a_rendition_waits_behind_every_final_and_never_rides_with_one() -> None:
    runner = FakeRunner()
    engine = TranslationEngine(lambda: runner, scheduler_config(EngineSettings(max_wait_ms=1)))
    await engine.start(warmup=False)
    try:
        runner.gate.clear()
        first = engine.submit("speaker", final(2.0))  # in the model, held at the gate
        await until(runner.started.is_set)
        waiting = engine.submit("other", final(1.0))  # another stream's final, queued behind it
        await until(lambda: engine.preparing == 0)
        assert engine.submit_droppable("speaker", final(1.0)) is None  # a caption: stale by its turn
        again = engine.submit_droppable("speaker/renditions", rendition(), behind_finals=True)
        assert again is not None  # a rendition: queued behind the finals
        dropped = engine.submit_droppable("speaker/renditions", rendition(), behind_finals=True)
        assert dropped is not None
        dropped.cancel()  # its listeners stopped waiting: it leaves the queue
        runner.gate.set()
        await asyncio.gather(first, waiting, again)
        kinds = [tuple(i.kind for i in batch) for batch in runner.ran]
        assert kinds == [(WorkKind.SEGMENT,), (WorkKind.SEGMENT,), (WorkKind.RESPEAK,)], kinds
    finally:
        runner.gate.set()
        await engine.stop()
