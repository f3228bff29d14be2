"""The server's CUDA warm-up at a capacity call's batch size, on this CPU: what it plans, what it
runs, what it costs the host, and whether live segments after it meet any shape it did not run.

The runner is built as the server builds it on CUDA (tests/support/host_path.py
``cuda_plan_runner``: buckets, static decode pools, every stage's graph bookkeeping; nothing is
captured on a CPU, but a call on a bucket the warm-up did not meet is counted as the graph miss it
would be there). The warm-up runs as the engine runs it (``warm_as_served``: the steps core's
route, then the runner's own buckets), then the shared speech's VAD segments go through the
stepping decoder at each of ``--sizes`` together; the cold shapes (``ShapeLog``) and graph misses
they meet must be none. ``--equal-rows`` runs the plan as it was before the warm-up's batches ran
one long row and the rest short (every row at the batch's length), for the comparison.

    python -m benchmarks.gpu.warmup_check --max-batch 16 --sizes 1,16 [--equal-rows]
    python -m benchmarks.gpu.warmup_check --max-batch 128 --rows-per-segment 5 --count-only

``--batches-only`` runs the plan's batches alone (the runner's own buckets, the same in both plans,
left out; nothing checked after): the two plans' batches against each other, cheaply.
``--count-only`` runs the plan's code with its leaves stubbed (the engine's batches, t2u's and the
vocoder's ``warm``, the decode pool's steps, admissions and drops): the planned batches and the
stage calls at any batch size in seconds, with nothing run and nothing checked after.

The host's time here (a 2-core CPU, the test checkpoint's tiny widths) is a proxy of what the
warm-up costs a GPU node's host, not that time: on CUDA each new bucket is also captured.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    from tests.support.paths import TEST_MODEL

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=TEST_MODEL)
    p.add_argument("--max-batch", type=int, default=16, help="engine.max_batch_size: the rows the plan covers")
    p.add_argument("--rows-per-segment", type=int, default=2, help="decode rows a segment brings (targets + 1)")
    p.add_argument("--longest-s", type=float, default=15.0, help="model.warmup_longest_s")
    p.add_argument("--sizes", default="1,16", help="live segments admitted together after the warm-up")
    p.add_argument("--limit", type=int, default=48, help="live segments at each size")
    p.add_argument("--equal-rows", action="store_true", help="every row of a batch at its length (the old plan)")
    p.add_argument("--count-only", action="store_true", help="count the plan's batches and stage calls, run none")
    p.add_argument("--batches-only", action="store_true", help="run the plan's batches, not the stages' buckets")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)

    import torch

    import translate_svc.engine.engine as engine_module
    from tests.support.host_path import cuda_plan_runner, through_stepper, warm_as_served
    from tests.support.paths import SHARED_AUDIO
    from tests.support.speech import read_16k, vad_segments
    from translate_svc.engine.warmup import WarmupConfig, WarmupMode, plan
    from translate_svc.model.stages.shapes import encoder_lengths_s
    from translate_svc.model_api.requests import ModelInput
    from translate_svc.observability import warmup_metrics

    torch.set_num_threads(1)
    if a.equal_rows:
        engine_module.plan = lambda *args: [dataclasses.replace(s, rest_s=None) for s in plan(*args)]  # type: ignore[attr-defined]
    runner = cuda_plan_runner(a.model)
    if a.count_only:
        stub_leaves(runner)
    if a.batches_only:
        runner.warm_shapes = lambda *args, **kwargs: 0
    config = WarmupConfig(WarmupMode.BUCKETS, encoder_lengths_s(a.longest_s), None, a.longest_s, a.rows_per_segment)
    shapes = engine_module.plan(config, a.max_batch, 240.0)  # type: ignore[attr-defined]
    t0, c0 = time.perf_counter(), time.process_time()
    warm_as_served(runner, config, a.max_batch)
    warm = {
        "planned": len(shapes),
        "audio_s": round(sum(s.audio_s for s in shapes), 1),
        "stage_calls": int(warmup_metrics.WARMUP_STAGE_CALLS._value.get()),
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(time.process_time() - c0, 1),
    }
    print(f"warm-up: {warm}", flush=True)
    live: dict[int, Any] = {}
    sizes = [] if a.count_only or a.batches_only else [int(x) for x in a.sizes.split(",")]  # a plan run in part
    segments: list[Any] = []
    for name in ("jfk.flac", "silero_test.wav") if sizes else ():
        segments += [e.samples for e in asyncio.run(vad_segments(read_16k(SHARED_AUDIO / name)))]
    segments = [s for s in segments if len(s) / 16000 <= a.longest_s][: a.limit]
    items = [ModelInput(s, ("spa",), "eng", speech=True) for s in segments]
    for size in sizes:
        t1 = time.perf_counter()
        through_stepper(runner, items, size)
        parts = [*runner.stages.graphed, runner.stepper().loop.admission]
        live[size] = {
            "segments": len(items),
            "wall_s": round(time.perf_counter() - t1, 1),
            "cold_shapes": dict(runner.stages.shapes.cold),
            "graph_misses": {p.name: p.misses for p in parts if p.misses},
        }
        print(f"live, {size} together: {live[size]}", flush=True)
    doc = {"command": sys.argv, "args": {k: str(v) for k, v in vars(a).items()}, "warmup": warm, "live": live}
    if a.json is not None:
        a.json.write_text(json.dumps(doc, indent=2) + "\n")
    clean = all(not v["cold_shapes"] and not v["graph_misses"] for v in live.values())
    if live:
        print("no cold shape and no graph miss after the warm-up" if clean else "COLD after the warm-up (above)")
    return 0 if clean else 1


def stub_leaves(runner: Any) -> None:
    """The warm-up's leaves as no-ops (``--count-only``): the plan's loops and counts run as
    written, every model call they would make is skipped."""
    from translate_svc.engine.step_core import StepCore

    def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    StepCore.warm = nothing  # type: ignore[method-assign]
    runner.stages.t2u.warm = nothing
    runner.stages._vocoder.warm = nothing
    for pool in {id(p.loop): p.loop for p in (runner.loop, runner.stepper()) if p is not None}.values():
        pool.static_step = pool.admit = pool.drop = nothing


if __name__ == "__main__":
    sys.exit(main())
