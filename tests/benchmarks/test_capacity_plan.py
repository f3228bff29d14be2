"""The capacity call's plan and verdicts (benchmarks/gpu/capacity_plan.py), on plain values: the
phases fit the call and a phase that ends early gives its time to the ramp, never past the call;
the ramp doubles then bisects; a step of several client processes is judged as one; a cut warm-up
and any cold shape, graph miss or capture failure is a failure, never silence."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.gpu import capacity_plan as cp

pytestmark = pytest.mark.unit


def test_the_default_plan_fits_a_ten_minute_call_with_room_for_run_sh_and_the_transfers() -> None:
    plan = cp.Plan()
    assert sum(p.budget_s for p in plan.phases) <= plan.budget_s <= 560  # 590 s a call: run.sh set-up and transfers
    assert [p.name for p in plan.phases][:4] == ["checkpoint", "serve_graphs", "one_stream", "ramp_graphs"]


def test_a_phase_ends_at_its_budget_or_where_the_later_phases_would_no_longer_fit() -> None:
    plan = cp.Plan(
        phases=(cp.Phase("a", 100, ""), cp.Phase("b", 100, ""), cp.Phase("ramp", 50, "", True), cp.Phase("z", 50, "")),
        budget_s=300,
    )
    assert plan.deadline("a", 0) == 100
    assert plan.deadline("b", 100) == 200  # on time: its own budget
    assert plan.deadline("b", 20) == 120  # "a" ended early: "b" starts early, its budget unchanged ...
    assert plan.deadline("b", 180) == 200  # ... and a late start never eats the later phases' 100 s
    assert plan.deadline("ramp", 60) == 250  # the ramp takes what the phases before it left
    assert plan.deadline("z", 240) == 290


def test_a_plan_over_the_call_is_refused() -> None:
    with pytest.raises(ValueError, match="over the call"):
        cp.Plan(phases=(cp.Phase("a", 400, ""), cp.Phase("b", 200, "")), budget_s=540)


def ramp(capacity: int, *, start: int, most: int = 4096) -> list[int]:
    """The steps the search tries against a server that holds up to ``capacity`` streams."""
    tried: dict[int, bool] = {}
    while (n := cp.next_streams(tried, start=start, most=most)) is not None:
        assert n not in tried
        tried[n] = n <= capacity
    return list(tried)


def test_the_ramp_doubles_then_bisects_to_an_eighth() -> None:
    steps = ramp(600, start=128)
    assert steps[:4] == [128, 256, 512, 1024]
    assert steps[4:] == [768, 640, 576]  # 576 held, 640 did not: within 640 // 8
    assert len(steps) == 7


def test_the_ramp_goes_down_when_the_first_step_fails_and_stops_at_the_most() -> None:
    assert ramp(20, start=128)[:4] == [128, 64, 32, 16]
    assert ramp(0, start=4) == [4, 2, 1]  # nothing held: the answer is 0
    assert ramp(5000, start=128, most=300) == [128, 256, 300]  # everything held up to the most


def doc(latencies: list[list[float]], *, behind: int = 0, failed: int = 0, lag: float = 10.0) -> dict[str, Any]:
    """A loadgen --target document of one client process (its streams' latencies)."""
    rt = {
        "streams": len(latencies),
        "segments": sum(len(x) for x in latencies),
        "failed_segments": 0,
        "streams_failed": failed,
        "streams_behind": behind,
        "max_send_lag_ms": lag,
        "errors": [],
    }
    return {"results": {"target": {"realtime": rt, "streams": {"realtime": [{"latency_ms": x} for x in latencies]}}}}


def test_a_step_of_several_clients_is_judged_on_every_segment_together() -> None:
    fast = doc([[100.0] * 10, [200.0] * 10])
    slow = doc([[900.0] * 9 + [5000.0]])  # alone: p95 over 1 s; together 1 in 30 is slow
    r = cp.merge_steps([fast, slow], 3, slo_ms=1000, client_lag_ms=500)
    assert (r.streams, r.segments, r.sustained) == (3, 30, True)
    assert r.p50_ms == 200.0 and r.p95_ms is not None and r.p95_ms < 1000
    assert cp.merge_steps([slow], 1, slo_ms=1000, client_lag_ms=500).sustained is False


@pytest.mark.parametrize(
    ("docs", "why"),
    [
        ([doc([[100.0] * 5], behind=1)], "a stream behind"),
        ([doc([[100.0] * 5], failed=1)], "a stream failed"),
        ([doc([[100.0] * 5], lag=900.0)], "the client fell behind its own pace"),
        ([doc([[100.0] * 5]), None], "a client process wrote nothing"),
    ],
)
def test_a_step_is_not_sustained_when(docs: list[Any], why: str) -> None:
    r = cp.merge_steps(docs, 2 if None in docs else 1, slo_ms=1000, client_lag_ms=500)
    assert not r.sustained, why
    if None in docs:
        assert r.streams_failed == 1 and r.errors


def test_any_cold_shape_graph_miss_or_capture_failure_during_a_step_is_named() -> None:
    before = cp.shape_counts({("translate_svc_model_cold_shapes_total", "encoder"): 2.0})
    same = cp.shape_counts({("translate_svc_model_cold_shapes_total", "encoder"): 2.0})
    assert cp.shape_verdict(before, same, graphs=True) == []
    after = cp.shape_counts(
        {
            ("translate_svc_model_cold_shapes_total", "encoder"): 3.0,
            ("translate_svc_model_graph_misses_total", "t2u.units"): 4.0,
            ("translate_svc_model_capture_failures_total", "vocoder.hifigan"): 1.0,
            ("translate_svc_segments_total", ""): 99.0,  # not a shape counter
        }
    )
    problems = cp.shape_verdict(before, after, graphs=True)
    assert problems == [
        "cold_shapes_total rose by 1 (encoder 1)",
        "graph_misses_total rose by 4 (t2u.units 4)",
        "capture_failures_total rose by 1 (vocoder.hifigan 1)",
    ]
    assert len(cp.shape_verdict(before, after, graphs=False)) == 2  # no graphs: no miss to count


def gauges(planned: float, run: float, cut: float) -> dict[str, float]:
    return {
        "translate_svc_warmup_planned_batches": planned,
        "translate_svc_warmup_batches": run,
        "translate_svc_warmup_stage_calls": 300.0,
        "translate_svc_warmup_seconds": 110.2,
        "translate_svc_warmup_cut": cut,
    }


def test_a_cut_warm_up_is_a_failure_and_a_whole_one_is_not() -> None:
    assert cp.warmup_verdict(gauges(210, 210, 0)) == []
    [line] = cp.warmup_verdict(gauges(210, 140, 1))
    assert "CUT" in line and "140 of 210" in line
    assert cp.warmup_verdict(gauges(210, 210, 1))  # the stage buckets cut, every batch run
    [missing] = cp.warmup_verdict({"translate_svc_warmup_batches": 210.0})
    assert "cannot be verified" in missing


def test_run_sh_shows_the_plan_the_call_runs() -> None:
    """The runbook's header is where the next session reads the plan: it must be this one."""
    from pathlib import Path

    header = (Path(__file__).parents[2] / "benchmarks/gpu/run.sh").read_text()
    for line in cp.Plan().table().splitlines()[:-1]:
        assert f"#   {line}" in header, line


def test_a_scaled_plan_keeps_the_order_and_the_shares() -> None:
    plan = cp.Plan().scaled(2)
    assert plan.budget_s == 1100 and [p.budget_s for p in plan.phases] == [2 * p.budget_s for p in cp.PHASES]
    assert plan.deadline("ramp_graphs", 0) == 2 * cp.Plan().deadline("ramp_graphs", 0)
