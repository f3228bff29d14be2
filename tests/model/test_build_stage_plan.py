"""How ``build_runner`` runs the stages on each device (issue 88, model/build.py ``StagePlan``;
kept as its own module by issue 89 item 4): every choice that depends on the device made once,
from the settings alone. Plain values: no checkpoint is loaded."""

from __future__ import annotations

import pytest

from translate_svc.model.build import StagePlan
from translate_svc.settings import ModelSettings

pytestmark = pytest.mark.unit


def test_cuda_runs_the_fast_runner_on_its_static_path_with_graphs() -> None:
    plan = StagePlan.of(ModelSettings(), "cuda")
    assert (plan.defaults, plan.fast, plan.static, plan.graphs, plan.stage_graphs) == ("cuda", True, True, True, True)
    assert (plan.read_behind, plan.pad_rows, plan.finish_thread) == (True, True, True)
    assert plan.slots == 64
    assert plan.batch_vocoder is None  # the stages' own default on that device
    assert plan.device_features  # a segment's features inside the encoder's call, on the GPU


def test_cpu_runs_the_dynamic_step_eagerly_with_the_finish_inline() -> None:
    plan = StagePlan.of(ModelSettings(dtype="float32"), "cpu")
    assert (plan.defaults, plan.fast, plan.slots) == ("cpu", True, 16)
    assert not any((plan.static, plan.graphs, plan.stage_graphs, plan.read_behind, plan.pad_rows, plan.finish_thread))
    assert not plan.device_features  # the engine's features thread computes them


def test_cpu_in_reduced_precision_decodes_with_generate() -> None:
    """On CPU in bfloat16 the stages run each row alone to equal ``generate``: the exact runner."""
    assert not StagePlan.of(ModelSettings(dtype="bfloat16"), "cpu").fast
    assert StagePlan.of(ModelSettings(dtype="bfloat16", runner="fast"), "cpu").fast
    assert not StagePlan.of(ModelSettings(runner="exact"), "cuda").fast


def test_like_cuda_gives_the_cuda_plan_on_a_cpu_but_captures_nothing() -> None:
    """``like="cuda"`` (the CUDA path's tests and the host-cost benchmark): the static path, read
    behind and the batched vocoder, run eagerly: no graph needs a CUDA device here."""
    plan = StagePlan.of(ModelSettings(), "cpu", like="cuda")
    assert (plan.defaults, plan.static, plan.read_behind, plan.pad_rows, plan.batch_vocoder) == (
        "cuda",
        True,
        True,
        True,
        True,
    )
    # no decode graphs without a CUDA device; the stages' graphs keep their bookkeeping (a bucket
    # the warm-up missed is counted as the GPU would meet it) and capture nothing on a CPU
    assert not plan.graphs and plan.stage_graphs
    assert plan.device_features  # the fbank inside the encoder's capture region, run on the CPU
    assert StagePlan.of(ModelSettings(), "cuda", like="cpu").batch_vocoder is False


def test_the_settings_switch_off_each_part_of_the_static_path() -> None:
    assert not StagePlan.of(ModelSettings(decode_graphs=False), "cuda").static
    assert not StagePlan.of(ModelSettings(decode_graphs=False), "cuda").graphs
    assert not StagePlan.of(ModelSettings(stage_graphs=False), "cuda").stage_graphs
    assert not StagePlan.of(ModelSettings(buckets=False), "cuda").pad_rows
    assert not StagePlan.of(ModelSettings(runner="exact"), "cuda").static  # no pool, no static step


def test_the_settings_override_the_devices_defaults() -> None:
    assert StagePlan.of(ModelSettings(decode_slots=5), "cuda").slots == 5
    assert StagePlan.of(ModelSettings(finish_thread=True), "cpu").finish_thread
    assert not StagePlan.of(ModelSettings(finish_thread=False), "cuda").finish_thread
