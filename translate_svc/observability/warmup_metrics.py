"""The model's warm-up at start (engine/warmup.py): what was planned, what ran, how long it took
and whether its time budget cut it. Set once, by the engine process, before it says ready; read
by the runbook (benchmarks/gpu/capacity.py) before any load, beside the shape counters of
``metrics`` (cold shapes, graph misses, capture failures), which say what a cut left cold.
Process-global collectors (prometheus_client's own registry, multiprocess like ``metrics``);
thread-safe."""

from __future__ import annotations

from prometheus_client import Gauge

WARMUP_BATCHES = Gauge(
    "translate_svc_warmup_batches", "warm-up batches run before the model said ready", multiprocess_mode="max"
)
WARMUP_PLANNED = Gauge(
    "translate_svc_warmup_planned_batches",
    "warm-up batches planned (model.warmup at engine.max_batch_size); more than translate_svc_warmup_batches "
    "means the budget (model.warmup_max_s) cut it",
    multiprocess_mode="max",
)
WARMUP_STAGE_CALLS = Gauge(
    "translate_svc_warmup_stage_calls",
    "the runner's own bucket calls in the warm-up (model.warmup buckets: t2u, the vocoder, the decode's admissions)",
    multiprocess_mode="max",
)
WARMUP_CUT = Gauge(
    "translate_svc_warmup_cut",
    "1 when the warm-up's time budget (model.warmup_max_s) stopped it before its plan ended: the shapes it "
    "did not run are met cold by live traffic (translate_svc_model_cold_shapes_total, _graph_misses_total)",
    multiprocess_mode="max",
)
WARMUP_SECONDS = Gauge("translate_svc_warmup_seconds", "the model's warm-up at start (s)", multiprocess_mode="max")


def warmed_up(planned: int, run: int, stage_calls: int, seconds: float, *, cut: bool) -> None:
    WARMUP_PLANNED.set(planned)
    WARMUP_BATCHES.set(run)
    WARMUP_STAGE_CALLS.set(stage_calls)
    WARMUP_SECONDS.set(seconds)
    WARMUP_CUT.set(1 if cut else 0)
