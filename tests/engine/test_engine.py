"""The engine on the test checkpoint: cross-stream batching, aborts, failure isolation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

from translate_svc.app import scheduler_config
from translate_svc.engine.engine import TranslationEngine
from translate_svc.errors import Overloaded
from translate_svc.model_api.requests import ModelInput, ModelOutput
from translate_svc.model_api.runner import Runner
from translate_svc.settings import EngineSettings
from translate_svc.types import BatchStats

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def noise(seconds: float, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


class PoisonedRunner:
    """The real runner, except that it raises on any batch holding a segment of exactly 1.234 s."""

    def __init__(self, real: Runner) -> None:
        self.real = real
        self.card = real.card
        self.extract_features = real.extract_features
        self.calls: list[int] = []

    def run(self, items: Sequence[ModelInput]) -> list[ModelOutput]:
        self.calls.append(len(items))
        if any(len(i.audio) == int(16000 * 1.234) for i in items):
            raise RuntimeError("poisoned segment")
        return self.real.run(items)


async def make_engine(runner, **kw) -> tuple[TranslationEngine, list[BatchStats]]:  # type: ignore[no-untyped-def]
    stats: list[BatchStats] = []
    engine = TranslationEngine(lambda: runner, scheduler_config(EngineSettings(**kw)), on_batch=stats.append)
    await engine.start(warmup=False)
    return engine, stats


async def test_segments_of_different_streams_share_batches(runner: Runner) -> None:
    engine, stats = await make_engine(runner, max_batch_size=8, max_wait_ms=1000)  # room for 6 feature extractions
    try:
        futs = [engine.submit(f"stream-{i}", ModelInput(noise(1 + i / 10, i), ("spa",), None)) for i in range(6)]
        results = await asyncio.gather(*futs)
        assert all(r.output is not None and "spa" in r.output.texts and r.error is None for r in results)
        assert [s.size for s in stats] == [6]
        assert {r.batch_size for r in results} == {6}
    finally:
        await engine.stop()


async def test_one_bad_segment_fails_alone(runner: Runner) -> None:
    poisoned = PoisonedRunner(runner)
    engine, _ = await make_engine(poisoned, max_batch_size=8, max_wait_ms=1000)
    try:
        futs = [engine.submit("s", ModelInput(noise(sec, 0), ("spa",), None)) for sec in (1.0, 1.234, 1.5)]
        good1, bad, good2 = await asyncio.gather(*futs)
        assert good1.output is not None and good2.output is not None
        assert bad.output is None and bad.error is not None and bad.error.code == "INTERNAL"
        assert poisoned.calls == [3, 1, 1, 1]  # the batch, then each segment alone
        assert engine.healthy
    finally:
        await engine.stop()


async def test_abort_drops_queued_work_of_that_owner_only(runner: Runner) -> None:
    engine, stats = await make_engine(runner, max_batch_size=1, max_wait_ms=0)
    try:
        mine = [engine.submit("gone", ModelInput(noise(2, i), ("spa",), None)) for i in range(5)]
        other = engine.submit("other", ModelInput(noise(1, 9), ("fra",), None))
        await asyncio.sleep(0)  # the loop takes the first job into the model
        dropped = engine.abort("gone")
        assert dropped >= 4 and engine.queued == 1  # only "other" is left waiting
        assert (await other).output is not None
        assert all(f.cancelled() for f in mine[1:])
        assert sum(s.size for s in stats) <= 2  # at most the running one of "gone" and "other" ran
    finally:
        await engine.stop()


async def test_full_queue_raises_overloaded_with_a_retry_hint(runner: Runner) -> None:
    engine, _ = await make_engine(runner, max_batch_size=1, max_wait_ms=1000, max_queued_segments=2)
    try:
        engine.submit("a", ModelInput(noise(1, 1), ("spa",), None))
        engine.submit("a", ModelInput(noise(1, 2), ("spa",), None))
        with pytest.raises(Overloaded) as e:
            engine.submit("a", ModelInput(noise(1, 3), ("spa",), None))
        assert e.value.retry_after_ms and e.value.retry_after_ms > 0
        engine.abort("a")
    finally:
        await engine.stop()


async def test_a_dead_model_loop_fails_waiting_jobs_and_reports_unhealthy(runner: Runner) -> None:
    failures: list[BaseException] = []
    engine = TranslationEngine(
        lambda: runner, scheduler_config(EngineSettings(max_wait_ms=1000)), on_failure=failures.append
    )
    await engine.start(warmup=False)
    try:
        fut = engine.submit("a", ModelInput(noise(1, 1), ("spa",), None))

        def broken(now: float) -> list[int] | None:
            raise RuntimeError("scheduler bug")

        engine._scheduler.next_batch = broken  # type: ignore[method-assign]
        engine._wakeup.set()
        with pytest.raises(Exception, match="model worker failed"):
            await fut
        assert not engine.healthy and failures
    finally:
        await engine.stop()


async def test_features_are_computed_off_the_model_thread_and_abortable(runner: Runner) -> None:
    import threading

    seen: list[str] = []
    poisoned = PoisonedRunner(runner)

    def extract(audio: np.ndarray):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        return runner.extract_features(audio)

    poisoned.extract_features = extract  # type: ignore[method-assign]
    engine, stats = await make_engine(poisoned, max_batch_size=4, max_wait_ms=20)
    try:
        done = await engine.submit("a", ModelInput(noise(1, 1), ("spa",), None))
        assert done.output is not None and seen and all(name.startswith("features") for name in seen)
        gone = engine.submit("b", ModelInput(noise(1, 2), ("spa",), None))
        assert engine.abort("b") == 1 and gone.cancelled()  # still computing its features
        await asyncio.wait_for(engine.wait_idle(), 10)
        assert engine.queued == 0 and [s.size for s in stats] == [1]
    finally:
        await engine.stop()
