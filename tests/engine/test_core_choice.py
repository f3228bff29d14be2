"""``engine.core`` resolved from the settings (app.py ``engine_core``): "auto" runs the steps core
where the fast runner decodes, whole batches with the exact runner; an explicit choice is kept; the
scheduler's fill wait follows the core when it is not set."""

from __future__ import annotations

import pytest

from translate_svc.app import engine_core, scheduler_config
from translate_svc.settings import EngineSettings, ModelSettings, Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("core", "device", "runner", "custom", "want"),
    [
        ("auto", "cuda", "auto", False, "steps"),  # the fast runner is CUDA's default
        ("auto", "cpu", "auto", False, "steps"),  # the fast runner is the CPU's too, in float32
        ("auto", "cpu", "fast", False, "steps"),
        ("auto", "cuda", "exact", False, "batch"),
        ("auto", "cuda", "fast", True, "batch"),  # a test's or benchmark's own runner
        ("batch", "cuda", "fast", False, "batch"),
        ("steps", "cpu", "exact", False, "steps"),  # StepCore runs whole batches without a stepper
    ],
)
def test_the_core_follows_the_runner(core: str, device: str, runner: str, custom: bool, want: str) -> None:
    settings = Settings(
        engine=EngineSettings(core=core),
        model=ModelSettings(device=device, runner=runner),
    )
    assert engine_core(settings, custom=custom) == want


@pytest.mark.parametrize(("dtype", "want"), [("auto", "steps"), ("float32", "steps"), ("bfloat16", "batch")])
def test_on_cpu_a_reduced_precision_keeps_the_exact_runner_and_whole_batches(dtype: str, want: str) -> None:
    settings = Settings(model=ModelSettings(device="cpu", dtype=dtype))
    assert engine_core(settings) == want


def test_the_stable_translator_runs_whole_batches() -> None:
    settings = Settings(model=ModelSettings(device="cuda", runner="fast", test_translator="stable"))
    assert engine_core(settings) == "batch"


@pytest.mark.parametrize(
    ("core", "asked_ms", "want_s"),
    [
        ("batch", None, 0.010),  # whole batches wait a little to fill
        ("steps", None, 0.0),  # a running decode has no batch to fill: a job joins at the next turn
        ("steps", 25.0, 0.025),  # an explicit wait is kept, whatever the core
        ("batch", 0.0, 0.0),
    ],
)
def test_the_fill_wait_follows_the_core(core: str, asked_ms: float | None, want_s: float) -> None:
    assert scheduler_config(EngineSettings(max_wait_ms=asked_ms), core=core).max_wait_s == pytest.approx(want_s)
