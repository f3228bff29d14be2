"""The warm-up plan (engine/warmup.py): every batch size the scheduler can form, at each length."""

from __future__ import annotations

import pytest

from translate_svc.engine.warmup import WarmShape, WarmupConfig, WarmupMode, plan, spread

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 128])
def test_spread_orders_every_size_once_the_ends_first(n: int) -> None:
    order = spread(n)
    assert sorted(order) == list(range(1, n + 1))
    assert order[: min(n, 2)] == [1, n][: min(n, 2)]


def test_spread_bisects_the_widest_gaps_first() -> None:
    assert spread(16)[:5] == [1, 16, 8, 4, 12]


def test_batches_plan_every_batch_size_at_every_length() -> None:
    config = WarmupConfig(WarmupMode.BATCHES, lengths_s=(2.5, 1.0))
    shapes = plan(config, max_batch_size=16, max_batch_audio_s=240.0)
    assert sorted((s.rows, s.seconds) for s in shapes) == [(r, s) for r in range(1, 17) for s in (1.0, 2.5)]
    assert len(set(shapes)) == len(shapes)
    assert shapes[:4] == [WarmShape(1, 1.0), WarmShape(1, 2.5), WarmShape(16, 1.0), WarmShape(16, 2.5)]


def test_batches_over_the_padded_audio_budget_are_left_out() -> None:
    """The scheduler never forms a batch of rows x longest over max_batch_audio_s: no use warming it."""
    shapes = plan(WarmupConfig(WarmupMode.BATCHES, lengths_s=(1.0, 6.0)), max_batch_size=8, max_batch_audio_s=24.0)
    assert {(s.rows, s.seconds) for s in shapes} == {(r, 1.0) for r in range(1, 9)} | {(r, 6.0) for r in range(1, 5)}


def test_lengths_over_the_budget_even_alone_leave_nothing_to_warm() -> None:
    assert plan(WarmupConfig(WarmupMode.BATCHES, lengths_s=(6.0,)), max_batch_size=4, max_batch_audio_s=5.0) == []


def test_one_is_a_single_short_segment() -> None:
    assert plan(WarmupConfig(WarmupMode.ONE), max_batch_size=64, max_batch_audio_s=240.0) == [WarmShape(1, 1.0)]


@pytest.mark.parametrize("bad", [{"lengths_s": ()}, {"lengths_s": (0.0,)}, {"max_s": -1.0}])
def test_bad_configs_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="warm-up"):
        WarmupConfig(WarmupMode.BATCHES, **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("device", "warmup", "seamless", "buckets", "mode"),
    [
        ("cuda", "auto", True, None, WarmupMode.BUCKETS),  # the GPU default (issue 88): every bucket
        ("cuda", "auto", True, False, WarmupMode.BATCHES),  # the GPU with buckets off
        ("cpu", "auto", True, None, WarmupMode.ONE),  # the CPU default: tests start servers by the hundred
        ("cuda", "auto", False, None, WarmupMode.ONE),  # a test's runner (runner_factory)
        ("cpu", "batches", True, None, WarmupMode.BATCHES),
        ("cuda", "one", True, None, WarmupMode.ONE),
    ],
)
def test_settings_map_onto_the_engines_warm_up(
    device: str, warmup: str, seamless: bool, buckets: bool | None, mode: WarmupMode
) -> None:
    from translate_svc.app import warmup_config
    from translate_svc.model.stages.shapes import encoder_lengths_s
    from translate_svc.settings import ModelSettings

    m = ModelSettings(
        device=device,  # type: ignore[arg-type]
        warmup=warmup,  # type: ignore[arg-type]
        warmup_lengths_s=[2.0, 4.0],
        warmup_max_s=30,
        buckets=buckets,
    )
    # buckets: one length per encoder frame bucket up to the longest segment (model/stages/shapes.py)
    lengths = encoder_lengths_s(m.warmup_longest_s) if mode is WarmupMode.BUCKETS else (2.0, 4.0)
    assert warmup_config(m, seamless=seamless) == WarmupConfig(mode, lengths, 30.0, m.warmup_longest_s)


def test_the_stable_translator_is_warmed_with_one_batch() -> None:
    from translate_svc.app import warmup_config
    from translate_svc.settings import ModelSettings

    m = ModelSettings(device="cuda", test_translator="stable")
    assert warmup_config(m, seamless=True).mode is WarmupMode.ONE


def test_a_buckets_batch_runs_one_row_at_its_length_and_the_others_at_the_shortest() -> None:
    """The encoder pads every row to the longest's bucket, so one long row gives the batch's shape;
    the others cost the host only a short segment's features and finish."""
    config = WarmupConfig(WarmupMode.BUCKETS, lengths_s=(4.0, 0.5, 1.0))
    shapes = plan(config, max_batch_size=4, max_batch_audio_s=240.0)
    assert [(s.rows, s.seconds, s.rest_s) for s in shapes] == [
        (4, 0.5, None), (4, 1.0, 0.5), (4, 4.0, 0.5), (2, 0.5, None), (2, 1.0, 0.5), (2, 4.0, 0.5),
        (1, 0.5, None), (1, 1.0, None), (1, 4.0, None),
    ]  # fmt: skip
    assert WarmShape(4, 4.0, 0.5).audio_s == 5.5 and WarmShape(4, 4.0).audio_s == 16.0


def test_the_gpu_plan_at_batch_128_runs_a_quarter_of_the_audio_for_the_same_shapes() -> None:
    """The server's CUDA default at ``--max-batch-size 128``: 224 batches either way, their audio (the
    host's features and finish follow it) 2,331 s instead of the 9,436 s of equal rows."""
    from translate_svc.model.stages.shapes import encoder_lengths_s

    shapes = plan(WarmupConfig(WarmupMode.BUCKETS, encoder_lengths_s(15.0)), 128, 240.0)
    assert len(shapes) == 224
    assert round(sum(s.audio_s for s in shapes)) == 2331
    assert round(sum(s.rows * s.seconds for s in shapes)) == 9436  # every row at its batch's length
