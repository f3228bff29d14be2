"""The "steps" core (engine/step_core.py, ``engine.core = "steps"``) through a real
``TranslationEngine`` on the test checkpoint's fast runner: a final submitted while a long
background job decodes joins the running decode and is answered before that job, also when the
background job's rows fill the pool (they yield their slots); a job cancelled
while it decodes leaves the decode and the engine goes idle; texts (which the stepping decoder does
not take) still run as whole batches beside it.

Each row decodes a forced 2 tokens a second of speech (``ForcedLengths``), so the long job's 7 s
take 14 steps and the final's 1 s 2; the runner is held at a gate once the long job is decoding,
until the final is queued, so the order does not hang on timing. With ``engine.core = "batch"`` the
same scenario answers the long job first (its batch runs to its end): checked by hand, not here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import read_16k
from tests.support.waiting import until
from translate_svc.app import scheduler_config
from translate_svc.engine.engine import TranslationEngine
from translate_svc.engine.results import EngineResult
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.forced import ForcedLengths
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stepping import SteppingDecoder
from translate_svc.model_api.requests import ModelInput, ModelOutput, SourceText
from translate_svc.model_api.runner import Stepper
from translate_svc.settings import EngineSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

LONG_S = 7  # 14 forced tokens


class GatedStepper:
    """The real stepper, held after the tick in which the long job first decoded (once)."""

    def __init__(self, real: Stepper, gate: Gate) -> None:
        self.real, self.gate = real, gate

    def takes(self, item: ModelInput) -> bool:
        return self.real.takes(item)

    def admit(self, key: int, item: ModelInput, *, priority: int = 0) -> None:
        self.real.admit(key, item, priority=priority)

    def tick(self, max_steps: int) -> list[tuple[int, ModelOutput | None]]:
        out = self.real.tick(max_steps)
        self.gate.hold()
        return out

    def drop(self, key: int) -> None:
        self.real.drop(key)

    def clear(self) -> None:
        self.real.clear()

    def close(self) -> None:
        self.real.close()

    def wake(self) -> None:
        self.real.wake()

    def room(self, *, live: bool = True) -> int:
        return self.real.room(live=live)


class Gate:
    """Armed once: the model thread stops at ``hold`` (``entered``) until the test ``opens`` it."""

    def __init__(self) -> None:
        self.armed = True
        self.entered = threading.Event()
        self.opened = threading.Event()

    def hold(self) -> None:
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.opened.wait(30)


class GatedRunner:
    """The fast runner; its whole batches (``run``) and its stepper's ticks pass the gate first."""

    def __init__(self, real: SeamlessRunner, gate: Gate) -> None:
        self.real, self.gate = real, gate
        self.card = real.card
        self.extract_features = real.extract_features
        self._stepper: GatedStepper | None = None

    def run(self, items: Sequence[ModelInput]) -> list[ModelOutput]:
        self.gate.hold()
        return self.real.run(items)

    def stepper(self) -> Stepper | None:
        real = self.real.stepper()
        if real is not None and self._stepper is None:
            self._stepper = GatedStepper(real, self.gate)
        return self._stepper


@pytest.fixture(scope="module")
def forced(test_model_dir: Path) -> SeamlessRunner:
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32", forced=ForcedLengths(2.0))
    return SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=8))


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> np.ndarray:
    return read_16k(shared_audio / "jfk.flac")


async def engine_of(runner: GatedRunner, core: str) -> TranslationEngine:
    settings = EngineSettings(max_wait_ms=0, core=core, steps_per_turn=2)
    engine = TranslationEngine(
        lambda: runner, scheduler_config(settings), core=settings.core, steps_per_turn=settings.steps_per_turn
    )
    await engine.start(warmup=False)
    return engine


async def final_during_a_long_background_job(core: str, real: SeamlessRunner, speech: np.ndarray) -> list[str]:
    """The order in which a long background job and a final submitted while it decodes end."""
    gate = Gate()
    engine = await engine_of(GatedRunner(real, gate), core)
    ended: list[str] = []
    try:
        engine.join("job")
        engine.background("job")
        long = engine.submit("job", ModelInput(speech[: LONG_S * 16000], ("spa",), None, speech=False))
        long.add_done_callback(lambda _: ended.append("long"))
        await until(gate.entered.is_set)  # the long job is in the model
        assert engine.stats().running == 1
        final = engine.submit("live", ModelInput(speech[16000 : 2 * 16000], ("spa",), "eng", speech=False))
        final.add_done_callback(lambda _: ended.append("final"))
        await until(lambda: engine.preparing == 0 and engine.queued == 1)  # queued behind the long job
        gate.opened.set()
        results: tuple[EngineResult, EngineResult] = await asyncio.gather(long, final)
        assert all(r.output is not None and r.error is None for r in results)
        await engine.wait_idle()
        assert engine.stats().running == 0
        return ended
    finally:
        gate.opened.set()
        await engine.stop()


async def test_a_final_joins_a_running_decode_and_ends_before_a_long_background_job(
    forced: SeamlessRunner, speech: np.ndarray
) -> None:
    assert await final_during_a_long_background_job("steps", forced, speech) == ["final", "long"]


async def test_with_the_finish_thread_too(forced: SeamlessRunner, speech: np.ndarray) -> None:
    """``model.finish_thread`` (the setting's default): the long job is finished on the stage's
    thread; the final still ends first, and the engine's stop ends that thread."""
    stages = forced.stages
    threaded = SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=8), finish_thread=True)
    assert await final_during_a_long_background_job("steps", threaded, speech) == ["final", "long"]
    stepper = threaded.stepper()
    assert isinstance(stepper, SteppingDecoder) and stepper.stage is not None
    assert stepper.stage.jobs == 2 and len(stepper.stage) == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("finish")]  # stopped with the engine


async def test_a_final_takes_a_background_rows_slot_in_a_full_pool(forced: SeamlessRunner, speech: np.ndarray) -> None:
    """A pool of one slot, held by the long background job's row: the final's rows take it (the
    background row decodes again after them) instead of waiting its 14 steps."""
    stages = forced.stages
    one_slot = SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=1))
    assert await final_during_a_long_background_job("steps", one_slot, speech) == ["final", "long"]
    stepper = one_slot.stepper()
    assert isinstance(stepper, SteppingDecoder) and stepper.yielded == 1


async def test_a_job_cancelled_while_it_decodes_leaves_the_decode(forced: SeamlessRunner, speech: np.ndarray) -> None:
    gate = Gate()
    runner = GatedRunner(forced, gate)
    engine = await engine_of(runner, "steps")
    try:
        gone = engine.submit("a", ModelInput(speech[: LONG_S * 16000], ("spa",), None, speech=False))
        await until(gate.entered.is_set)
        assert engine.stats().running == 1
        gone.cancel()
        await until(lambda: engine.stats().running == 0)  # its done callback: the job left
        gate.opened.set()
        kept = await engine.submit("b", ModelInput(speech[:16000], ("spa",), None, speech=False))
        assert kept.output is not None and kept.error is None
        await engine.wait_idle()
        stepper = forced.stepper()
        assert isinstance(stepper, SteppingDecoder) and len(stepper) == 0 and stepper.backlog == 0
    finally:
        gate.opened.set()
        await engine.stop()


async def test_texts_run_as_whole_batches_beside_the_running_decode(forced: SeamlessRunner, speech: np.ndarray) -> None:
    gate = Gate()
    gate.armed = False
    engine = await engine_of(GatedRunner(forced, gate), "steps")
    try:
        text = ModelInput(np.zeros(0, np.float32), ("spa",), speech=False, text=SourceText("hello there", "eng"))
        seg = ModelInput(speech[: 2 * 16000], ("spa",), "eng", speech=False)
        got = await asyncio.gather(engine.submit("a", text), engine.submit("b", seg), engine.submit("c", seg))
        assert all(r.output is not None and r.error is None and "spa" in r.output.texts for r in got)
        assert got[1].output is not None and got[1].output.transcript is not None
        assert got[1].output.texts == got[2].output.texts  # type: ignore[union-attr]
    finally:
        await engine.stop()
