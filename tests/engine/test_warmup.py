"""The engine's warm-up at start (engine/warmup.py): every planned batch runs once through the
runner before the engine, and the server around it, say ready; the warm-up leaves the model's
output as it was."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import make_settings
from tests.support.raw import channel
from tests.support.speech import read_16k
from translate_svc.app import build
from translate_svc.engine.engine import TranslationEngine
from translate_svc.engine.scheduler import SchedulerConfig
from translate_svc.engine.warmup import WarmupConfig, WarmupMode
from translate_svc.errors import NotReady
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput
from translate_svc.transport.host import TranslateServer

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def shapes(runner: FakeRunner) -> list[tuple[int, float]]:
    """(rows, seconds of each row) of every batch the runner ran, in order."""
    return [(len(batch), len(batch[0].audio) / 16000) for batch in runner.ran]


async def test_every_batch_size_runs_once_at_each_length_before_the_engine_is_healthy() -> None:
    runner = FakeRunner()
    runner.gate.clear()  # hold the warm-up in the model
    config = WarmupConfig(WarmupMode.BATCHES, lengths_s=(0.5, 1.0))
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=5), warmup=config)
    start = asyncio.create_task(engine.start())
    try:
        assert await asyncio.to_thread(runner.started.wait, 10)
        assert not engine.healthy
        with pytest.raises(NotReady):
            engine.submit("early", ModelInput(np.zeros(1600, np.float32), ("spa",), None))
        runner.gate.set()
        await start
        assert engine.healthy
        assert sorted(shapes(runner)) == [(rows, s) for rows in range(1, 6) for s in (0.5, 1.0)]
        assert all(len({id(item) for item in batch}) == 1 for batch in runner.ran)  # copies of one segment
    finally:
        runner.gate.set()
        await start
        await engine.stop()


async def test_the_time_budget_stops_the_warm_up_after_the_batch_running() -> None:
    runner = FakeRunner()
    config = WarmupConfig(WarmupMode.BATCHES, lengths_s=(0.5, 1.0), max_s=0.0)
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=8), warmup=config)
    await engine.start()
    try:
        assert engine.healthy
        assert shapes(runner) == [(1, 0.5)]  # the first of the plan, then the budget was spent
    finally:
        await engine.stop()


class StageWarmingRunner(FakeRunner):
    """A fake runner that warms its own shape buckets (``ShapeWarmable``), recording the calls."""

    def __init__(self) -> None:
        super().__init__()
        self.warm_calls: list[tuple[int, float, float | None, int]] = []

    def warm_shapes(
        self, max_rows: int, longest_s: float, deadline: float | None, *, row_seconds: float | None = None
    ) -> int:
        self.warm_calls.append((max_rows, longest_s, deadline, len(self.ran)))
        return 7


async def test_the_buckets_warm_up_runs_the_stages_buckets_after_its_batches() -> None:
    """``buckets`` (issue 70): every batch size at each given length, then the runner's own bucket
    warm-up, once, with the largest batch, the longest segment and the budget's deadline; the other
    modes never call it."""
    runner = StageWarmingRunner()
    config = WarmupConfig(WarmupMode.BUCKETS, lengths_s=(0.5, 1.0), max_s=100.0, longest_s=4.0)
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=3), warmup=config)
    await engine.start()
    try:
        assert sorted(shapes(runner)) == [(rows, s) for rows in (1, 2, 3) for s in (0.5, 1.0)]
        [(rows, longest, deadline, after)] = runner.warm_calls
        assert (rows, longest, after) == (3, 4.0, 6) and deadline is not None
    finally:
        await engine.stop()
    other = StageWarmingRunner()
    engine = TranslationEngine(
        lambda: other, SchedulerConfig(max_batch_size=2), warmup=WarmupConfig(WarmupMode.BATCHES, lengths_s=(0.5,))
    )
    await engine.start()
    await engine.stop()
    assert other.warm_calls == [] and len(other.ran) == 2


def warmup_gauges() -> dict[str, float]:
    from translate_svc.observability import warmup_metrics as w

    gauges = {"planned": w.WARMUP_PLANNED, "run": w.WARMUP_BATCHES, "calls": w.WARMUP_STAGE_CALLS, "cut": w.WARMUP_CUT}
    return {name: g._value.get() for name, g in gauges.items()}


async def test_a_buckets_batch_is_one_row_at_its_length_and_the_rest_short() -> None:
    """The encoder's shape is the batch's rows at the longest row's bucket; the other rows cost the
    host a short segment each (engine/warmup.py)."""
    runner = StageWarmingRunner()
    config = WarmupConfig(WarmupMode.BUCKETS, lengths_s=(0.5, 2.0), max_s=None, longest_s=2.0)
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=3), warmup=config)
    await engine.start()
    await engine.stop()
    rows = sorted(tuple(len(item.audio) / 16000 for item in batch) for batch in runner.ran)
    assert rows == [(0.5,), (0.5, 0.5), (0.5, 0.5, 0.5), (2.0,), (2.0, 0.5), (2.0, 0.5, 0.5)]  # row buckets 3, 2, 1


async def test_a_warm_up_cut_by_its_budget_says_so_in_its_gauges_and_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cut warm-up leaves shapes cold: the gauges say planned > run and cut = 1, and the log line
    is a WARNING (a server run at --log-level WARNING shows it); a whole one says cut = 0 at INFO."""
    runner = FakeRunner()
    config = WarmupConfig(WarmupMode.BATCHES, lengths_s=(0.5, 1.0), max_s=0.0)
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=4), warmup=config)
    with caplog.at_level("INFO", logger="translate_svc.engine.engine"):
        await engine.start()
        await engine.stop()
    assert warmup_gauges() == {"planned": 8, "run": 1, "calls": 0, "cut": 1}
    [line] = [r for r in caplog.records if "warm-up" in r.getMessage()]
    assert line.levelname == "WARNING" and "1 of 8 planned batches" in line.getMessage() and "CUT" in line.getMessage()
    caplog.clear()
    whole = FakeRunner()
    engine = TranslationEngine(lambda: whole, SchedulerConfig(max_batch_size=4), warmup=replace(config, max_s=None))
    with caplog.at_level("INFO", logger="translate_svc.engine.engine"):
        await engine.start()
        await engine.stop()
    assert warmup_gauges() == {"planned": 8, "run": 8, "calls": 0, "cut": 0}
    [line] = [r for r in caplog.records if "warm-up" in r.getMessage()]
    assert line.levelname == "INFO" and "CUT" not in line.getMessage()


async def test_stage_buckets_still_running_at_the_deadline_count_as_a_cut() -> None:
    """Every batch ran, but the runner's own buckets stop at the deadline: the gauge says cut (a
    cut is never hidden; one that ended just after the deadline counts too)."""
    runner = StageWarmingRunner()
    config = WarmupConfig(WarmupMode.BUCKETS, lengths_s=(0.5,), max_s=0.0, longest_s=0.5)
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=1), warmup=config)
    await engine.start()
    await engine.stop()
    assert len(runner.warm_calls) == 1
    assert warmup_gauges() == {"planned": 1, "run": 1, "calls": 7, "cut": 1}


async def test_a_plan_with_nothing_in_it_still_starts_the_engine() -> None:
    runner = FakeRunner()
    config = WarmupConfig(WarmupMode.BATCHES, lengths_s=(6.0,))
    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=4, max_batch_audio_s=5.0), warmup=config)
    await engine.start()
    try:
        assert engine.healthy and runner.ran == []
    finally:
        await engine.stop()


async def test_the_server_says_serving_only_after_every_warm_up_batch(test_model_dir: Path) -> None:
    """Health (the ready signal probes and the ready file follow) is NOT_SERVING during the warm-up."""
    settings = make_settings(test_model_dir, max_batch_size=3)
    model = settings.model.model_copy(update={"warmup": "batches", "warmup_lengths_s": [0.5, 2.0]})
    settings = settings.model_copy(update={"model": model})
    runner = FakeRunner()
    runner.gate.clear()
    server = TranslateServer(build(settings, runner_factory=lambda: runner))
    start = asyncio.create_task(server.start())
    ch = None
    try:
        assert await asyncio.to_thread(runner.started.wait, 10)  # the doors listen; the warm-up runs
        ch = channel(f"127.0.0.1:{server.port}")
        health = health_pb2_grpc.HealthStub(ch)
        during = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert during.status == health_pb2.HealthCheckResponse.NOT_SERVING
        runner.gate.set()
        await start
        after = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert after.status == health_pb2.HealthCheckResponse.SERVING
        assert sorted(shapes(runner)) == [(rows, s) for rows in (1, 2, 3) for s in (0.5, 2.0)]
    finally:
        runner.gate.set()
        await asyncio.gather(start, return_exceptions=True)
        if ch is not None:
            await ch.close()
        await server.stop(grace=1)


async def test_output_after_the_warm_up_equals_an_unwarmed_runners(
    test_model_dir: Path, runner: SeamlessRunner, shared_audio: Path
) -> None:
    """The warm-up keeps no state that changes a result: a batch after it equals the same batch on
    a runner that never warmed up (which tests/model/test_runner.py holds equal to ``generate``)."""
    warmed = SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))
    config = WarmupConfig(WarmupMode.BATCHES, lengths_s=(0.5, 1.5))
    engine = TranslationEngine(lambda: warmed, SchedulerConfig(max_batch_size=3), warmup=config)
    await engine.start()
    await engine.stop()
    x = read_16k(shared_audio / "jfk.flac")
    items = [
        ModelInput(x[int(a * 16000) : int(b * 16000)], ("spa", "fra"), "eng")
        for a, b in [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7)]
    ]
    got, want = warmed.run(items), runner.run(items)
    for g, w in zip(got, want, strict=True):
        assert g.texts == w.texts and g.transcript == w.transcript
        for lang in w.waveforms:
            np.testing.assert_array_equal(g.waveforms[lang], w.waveforms[lang])


async def test_a_runner_that_counts_cold_shapes_is_told_once_the_warm_up_is_over(test_model_dir: Path) -> None:
    """``Warmable`` (issue 70): the engine tells the runner when its warm-up is over, after the last
    warm-up batch; from then on a shape the warm-up covered is not cold, one it did not is
    (model/stages/shapes.py ``ShapeLog``, the metric ``translate_svc_model_cold_shapes_total``)."""
    from translate_svc.observability import metrics

    warmed = SeamlessRunner(SeamlessStages(test_model_dir, device="cpu", dtype="float32"))
    told_after: list[int] = []
    seen = warmed.stages.shapes
    real_mark = seen.mark_warm
    seen.mark_warm = lambda: (told_after.append(len(seen._seen)), real_mark())  # type: ignore[method-assign]
    config = WarmupConfig(WarmupMode.BATCHES, lengths_s=(1.0,))
    engine = TranslationEngine(lambda: warmed, SchedulerConfig(max_batch_size=2), warmup=config)
    await engine.start()
    await engine.stop()
    assert len(told_after) == 1 and told_after[0] > 0  # once, after the warm-up batches ran
    assert seen.warm and seen.cold == {}
    before = metrics.COLD_SHAPES.labels("encoder")._value.get()
    rng = np.random.default_rng(1)
    covered = ModelInput((0.01 * rng.standard_normal(16000)).astype(np.float32), ("spa",), "spa")
    warmed.run([covered, covered])  # the warm-up's own shape: 2 rows of 1 s
    # (t2u's and the vocoder's shapes follow what is decoded, which ``batches`` does not cover:
    # the warm-up ``buckets`` does, tests/service/test_cold_shapes.py)
    assert "encoder" not in seen.cold and "decoder" not in seen.cold
    warmed.run([ModelInput(np.zeros(16000 * 3, np.float32), ("spa",), "spa")] * 3)  # 3 rows of 3 s: new
    assert seen.cold.get("encoder") == 1 and seen.cold.get("decoder", 0) >= 1
    assert metrics.COLD_SHAPES.labels("encoder")._value.get() == before + 1
