"""What the GPU's host would pay per segment, counted on CPU through the CUDA code path (issue 88).

Run from the repository root::

    python -m benchmarks.tools.host_costs --model /tmp/real-layers --sizes 1,32 --json out/host_costs.json

The runner is built as the server builds it on CUDA (model/build.py ``build_runner(like="cuda")``:
the fast runner's static pools read one step behind, every stage's lengths on buckets, the
encoder's rows on row buckets, the vocoder batched) but on this CPU, with the finish inline (a
dispatch mode sees one thread). The server's CUDA warm-up runs first (engine/warmup.py, ``buckets``
up to the longest segment measured), then the live segments of ``--streams`` streams of the shared
speech (the server's own VAD cuts them) go through the stepping decoder, the steps core's route:
one at a time (``--sizes 1``) and ``N`` admitted together (each further size), every aten op
counted by ``tests/support/dispatch_count.py`` ``HostCosts``: kernels outside capture regions
(eager launches on CUDA), capture regions entered (one graph launch each) and the kernels inside
them (a call on a bucket the warm-up did not capture, a graph miss, runs eagerly on CUDA and is
counted as eager launches), host syncs (besides the decode's one-step-behind read of its finished flags, which reads a
host buffer), uploads from host data, new shapes after the warm-up, and the keys and values the
decode step's attention read, per row and step.

**Waits** are counted where they are written (``regions.note_wait``: an event's or a stream's
``synchronize``, which the CPU never runs; the decode's wait for its read behind apart). Code from
before those notes (``regions.note_wait`` missing) is counted as written all the same
(``as_written``): each upload through its one-buffer staging waited for that buffer's previous
copy, its read behind waited for the step before, and each graphed stage's call copied its inputs
in and its outputs out outside the graph (which the CPU never ran there).

**Time** (``--repeats``): the same segments through the stepper again, without the counter, each
job's thread CPU on this (the model) thread (``time.thread_time``: other work on the machine does
not count) outside capture regions, by section (``SectionClock``: the prefill, the finish, the
rest: admissions, steps, leaves), and inside them (eager compute here; one replay each on CUDA).
The features are computed before (the engine's features thread) where the runner wants them so, and
none of that is in it; where it computes them in the encoder's call (``features_in_run``) they are. The
minimum and the median over the repeats.

``--baseline`` builds the code before issue 88 the way that code ran on CUDA (buckets off, the
warm-up ``batches``, the decode pool static): run this file from a checkout of the old commit (copy
it and tests/support/dispatch_count.py there) for the "before" column; ``model/regions.py`` does
not exist there, so the decode step (``decode_step.step`` and ``choose`` inside ``DecodeLoop.step``)
is marked as the one capture region, as CUDA graphs captured it.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from benchmarks.tools.loadgen.clips import load_clips, stream_clips
from benchmarks.tools.loadgen.options import DEFAULT_FILES
from benchmarks.tools.profile_stages import segments_of
from benchmarks.tools.section_clock import SectionClock
from tests.support.dispatch_count import HostCosts, StageCounts
from tests.support.host_path import counting, cuda_plan_runner, through_stepper, warm_as_served
from tests.support.paths import TEST_MODEL
from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S

logger = logging.getLogger("benchmarks.tools.host_costs")
app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console()

STAGES = ("features", "encoder", "admission", "decode", "t2u", "vocoder", "finish", "other")
#: the model thread's sections timed (``SectionClock``)
SECTIONS = ("prefill", "decode", "finish", "regions")


def build(model: Path, baseline: bool, watermark: str = "off") -> Any:
    """The runner in the CUDA configuration, on this CPU (see the module docstring); ``watermark``:
    ``model.watermark`` (the server's default is ``perth``; off here unless asked, see
    tests/support/host_path.py)."""
    if not baseline:
        return cuda_plan_runner(model, watermark=watermark)
    from translate_svc.model.decode import graphs as decode_graphs
    from translate_svc.model.decode.batch import LoopDecoder
    from translate_svc.model.decode.loop import DecodeLoop
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages

    def static_pool(decoder: Any, *, slots: int, max_frames: int, graphs: bool, **kw: Any) -> Any:
        kw.setdefault("read_behind", True)
        return DecodeLoop(decoder, slots=slots, max_frames=max_frames, static=True, **kw)

    decode_graphs.decode_pool = static_pool  # type: ignore[assignment]
    import translate_svc.model.decode.batch as fast
    import translate_svc.model.stepping as stepping

    fast.decode_pool = static_pool  # type: ignore[assignment]
    stepping.decode_pool = static_pool  # type: ignore[assignment]
    stages = SeamlessStages(
        model, device="cpu", dtype="float32", pad_shapes=False, pad_frames=False, batch_vocoder=True
    )
    return SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=64, graphs=True))


def warm(runner: Any, baseline: bool, max_rows: int, longest_s: float) -> dict[str, Any]:
    """The server's CUDA warm-up on ``runner``, on this thread (tests/support/host_path.py); the
    code before issue 88 ran ``batches`` through ``Runner.run``."""
    from translate_svc.engine.warmup import WarmupConfig, WarmupMode
    from translate_svc.model.stages.shapes import encoder_lengths_s

    t0 = time.perf_counter()
    if baseline:
        from translate_svc.engine.engine import TranslationEngine
        from translate_svc.engine.scheduler import SchedulerConfig

        config = WarmupConfig(WarmupMode.BATCHES)  # the old default on CUDA: 1.0, 2.5 and 6.0 s
        engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=max_rows), warmup=config)
        engine._runner = runner
        done = engine._warmup()
    else:
        config = WarmupConfig(WarmupMode.BUCKETS, encoder_lengths_s(longest_s), None, longest_s)
        done = warm_as_served(runner, config, max_rows)
    return {"mode": config.mode.value, "batches": len(done), "s": time.perf_counter() - t0}


@contextmanager
def baseline_counting(baseline: bool) -> Iterator[HostCosts]:
    """``counting`` (tests/support/host_path.py); for ``--baseline``, the decode step marked as the
    region CUDA graphs captured (``model/regions.py`` does not exist there)."""
    from translate_svc.model.decode import step as decode_step

    with counting() as costs:
        if not baseline:
            yield costs
            return
        step, choose = decode_step.step, decode_step.choose

        def region_step(*a: Any, **k: Any) -> Any:
            costs.entered("decode.step")
            return step(*a, **k)

        def region_choose(*a: Any, **k: Any) -> Any:
            try:
                return choose(*a, **k)
            finally:
                costs.left("decode.step")

        decode_step.step, decode_step.choose = region_step, region_choose  # type: ignore[assignment]
        try:
            yield costs
        finally:
            decode_step.step, decode_step.choose = step, choose  # type: ignore[assignment]


@contextmanager
def as_written() -> Iterator[None]:
    """Code from before ``regions.note_wait`` counted as written (module docstring): its waits
    noted where that code waits on CUDA, and its graphed stages' copies in and out run outside
    their regions as CUDA runs them. Nothing is patched for code that notes its waits itself."""
    from translate_svc.model import capture, regions

    if hasattr(regions, "note_wait"):
        yield
        return
    from translate_svc.model.decode.reads import ReadBehind

    upload, take, call = capture.HostStaging.upload, ReadBehind.take, capture.GraphedStage.__call__
    used: set[int] = set()

    def staged(self: Any, *a: Any, **k: Any) -> Any:
        if id(self) in used:  # on CUDA: ``self._done.synchronize()``, the buffer's previous copy
            regions.note_read("staging")
        used.add(id(self))
        return upload(self, *a, **k)

    def taken(self: Any) -> Any:
        regions.note_read("read behind")
        return take(self)

    def graphed(self: Any, key: Any, *inputs: Any, **fixed: Any) -> Any:
        graphs = self._graphs()[0]
        replayed = key is not None and self.enabled and key in graphs
        if replayed:
            [x.clone() for x in inputs]  # each input copied into the bucket's static buffer
        outs = call(self, key, *inputs, **fixed)
        return tuple(o.clone() for o in outs) if replayed else outs  # each output copied out

    capture.HostStaging.upload, ReadBehind.take = staged, taken  # type: ignore[method-assign]
    capture.GraphedStage.__call__ = graphed  # type: ignore[method-assign]
    try:
        yield
    finally:
        capture.HostStaging.upload, ReadBehind.take = upload, take  # type: ignore[method-assign]
        capture.GraphedStage.__call__ = call  # type: ignore[method-assign]


def timed(runner: Any, items: list[Any], size: int, repeats: int, steps: int) -> dict[str, dict[str, float]]:
    """``items`` through the stepper ``repeats`` times, each timed by ``SectionClock`` (module
    docstring): per section, ms a job, the minimum and the median over the repeats."""
    from translate_svc.model import regions

    runs: list[dict[str, float]] = []
    for _ in range(repeats):
        clock = SectionClock("decode")
        with ExitStack() as stack, regions.observing(clock):
            clock.wrap(runner, "prefill_segments", "prefill", stack)
            clock.wrap(runner, "finish", "finish", stack)
            through_stepper(runner, items, size, steps=steps)
            clock.close()
        runs.append({k: 1000 * v / len(items) for k, v in clock.totals.items()})
    out: dict[str, dict[str, float]] = {}
    for section in (*SECTIONS, "outside"):
        got = [sum(r.get(k, 0.0) for k in SECTIONS[:-1]) if section == "outside" else r.get(section, 0.0) for r in runs]
        out[section] = {"min": min(got), "median": statistics.median(got)}
    return out


def graph_misses(runner: Any) -> dict[str, int]:
    """Each graphed stage's calls on a bucket the warm-up did not capture so far (model/capture.py:
    eager on CUDA, and counted here as eager launches), by stage part."""
    stages = list(runner.stages.graphed)
    if runner.loop is not None:
        stages.append(runner.loop.loop.admission)
    return {s.name: s.misses for s in stages if hasattr(s, "misses")}


def row_of(counts: dict[str, StageCounts], per: float, steps: int, rows: int) -> dict[str, Any]:
    total = StageCounts()
    for c in counts.values():
        total.add(c)
    inside = total.in_regions
    return {
        "per_segment": {
            stage: {
                "eager": c.kernels / per,
                "graph_launches": c.graph_launches / per,
                "in_graphs": c.in_regions / per,
                "syncs": sum(c.syncs.values()) / per,
                "read_behind": c.read_behind / per,
                "uploads": c.uploads / per,
                "new_shapes": sum(c.new_shapes.values()) / per,
                "syncs_by_kind": dict(c.syncs),
            }
            for stage, c in counts.items()
        },
        "eager": total.kernels / per,
        "graph_launches": total.graph_launches / per,
        "in_graphs": inside / per,
        "share_in_graphs": inside / max(1, inside + total.kernels),
        "syncs": sum(total.syncs.values()) / per,
        "syncs_by_kind": {k: v / per for k, v in total.syncs.items()},
        "read_behind": total.read_behind / per,
        "uploads": total.uploads / per,
        "new_shapes": sum(total.new_shapes.values()) / per,
        "new_shapes_by_family": {k: v / per for k, v in total.new_shapes.items()},
        # the decode step's attention alone (the encoder's and t2u's attention run in regions too)
        "kv_mb_per_row_step": counts["decode"].kv_bytes / max(1, rows) / 1e6 if "decode" in counts else 0.0,
        "decode_steps": steps / per,
    }


@app.command()
def main(
    model: Annotated[
        Path, typer.Option(help="model directory (the real-layers checkpoint: make-test-model --real-layers)")
    ] = TEST_MODEL,
    files: Annotated[str, typer.Option(help="comma list; names in ../shared/audio or paths")] = DEFAULT_FILES,
    streams: Annotated[int, typer.Option(min=1, help="segments of this many streams (files alternate)")] = 16,
    sizes: Annotated[str, typer.Option(help="jobs admitted together: 1 (one at a time) and batches")] = "1,32",
    limit: Annotated[int, typer.Option(min=1, help="live segments measured at most, per size")] = 32,
    baseline: Annotated[bool, typer.Option("--baseline", help="the code before issue 88 (module docstring)")] = False,
    rates: Annotated[
        str, typer.Option(help="comma list: each segment's speech made again at these rates (a room's listeners)")
    ] = "",
    repeats: Annotated[int, typer.Option(min=0, help="timed runs of each size (0: counts only)")] = 3,
    steps: Annotated[
        int, typer.Option(min=1, help="decode steps a tick at most (the engine's steps_per_turn: 4)")
    ] = 64,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
    watermark: Annotated[
        str, typer.Option(help="model.watermark: perth (the server's default: the finish marks the speech) or off")
    ] = "off",
) -> None:
    import torch

    from translate_svc import logging_setup
    from translate_svc.model_api.requests import ModelInput

    logging_setup.configure("WARNING")
    torch.set_num_threads(1)
    clips = load_clips(tuple(f.strip() for f in files.split(",") if f.strip()))
    segs = [s for c in stream_clips(clips, streams, DEFAULT_SHIFT_S) for s in segments_of(c.pcm)]
    size_list = [int(s) for s in sizes.split(",")]
    if watermark not in ("perth", "off"):
        raise typer.BadParameter("perth or off", param_hint="--watermark")
    runner = build(model, baseline, watermark)
    lang = "spa"
    longest_s = max(len(s) for s in segs) / 16000
    with as_written(), baseline_counting(baseline) as costs:  # the shapes the warm-up met are seen
        warmed = warm(runner, baseline, max(size_list), longest_s)
        runner.stepper()  # made (its pool, captured on CUDA) before the count, as the server makes it
        costs.mark_warm()
    seen = costs.seen
    # the engine's features thread's, where the runner does not compute them in its encoder's call
    # (``features_in_run``, the CUDA plan: the segments go as audio, the encoder's graphs keyed so)
    ahead = not getattr(runner, "features_in_run", False)
    features = [runner.extract_features(s) if ahead else None for s in segs]
    out: dict[str, Any] = {"command": sys.argv, "baseline": baseline, "warmup": warmed, "segments": len(segs)}
    for size in size_list:
        again = tuple((lang, float(r)) for r in rates.split(",") if r.strip())
        taken = range(max(size, min(limit, len(segs))))
        items = [ModelInput(segs[k], (lang,), None, True, renditions=again, features=features[k]) for k in taken]
        items = items[: len(items) - len(items) % size] or items[:size]
        with as_written(), baseline_counting(baseline) as costs:
            costs.seen = seen
            costs.mark_warm()
            held = [0]
            missed = graph_misses(runner)
            _, stepped, rows = through_stepper(runner, items, size, held, steps=steps)
        out[str(size)] = row_of(dict(costs.by_stage), len(items), stepped, rows)
        out[str(size)]["graph_misses"] = {
            k: (v - missed.get(k, 0)) / len(items) for k, v in graph_misses(runner).items() if v > missed.get(k, 0)
        }
        out[str(size)]["kv_held_mb_per_row_step"] = held[0] / max(1, rows) / 1e6
        out[str(size)]["segments"] = len(items)
        if repeats:
            with as_written():
                out[str(size)]["cpu_ms"] = timed(runner, items, size, repeats, steps)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(out, indent=1))
    table = Table(
        title=f"host costs per live segment, CUDA path on CPU ({'before issue 88' if baseline else 'this tree'}; "
        f"{len(segs)} segments of {streams} streams; warm-up {warmed['mode']}, {warmed['batches']} batches)"
    )
    columns = ("size", "stage", "eager launches", "graph launches", "in graphs", "syncs", "read behind", "uploads")
    for col in (*columns, "new shapes"):
        table.add_column(col, justify="right")
    for size in size_list:
        r = out[str(size)]
        for stage in STAGES:
            s = r["per_segment"].get(stage)
            if s is None:
                continue
            table.add_row(
                str(size), stage, f"{s['eager']:.1f}", f"{s['graph_launches']:.2f}", f"{s['in_graphs']:.0f}",
                f"{s['syncs']:.2f}", f"{s['read_behind']:.2f}", f"{s['uploads']:.2f}", f"{s['new_shapes']:.2f}",
            )  # fmt: skip
        table.add_row(
            str(size), "[b]total", f"{r['eager']:.1f}", f"{r['graph_launches']:.2f}", f"{r['in_graphs']:.0f}",
            f"{r['syncs']:.2f}", f"{r['read_behind']:.2f}", f"{r['uploads']:.2f}", f"{r['new_shapes']:.2f}",
        )  # fmt: skip
        console.print(
            f"size {size}: {100 * r['share_in_graphs']:.1f} % of kernels in graphs; KV read "
            f"{r['kv_mb_per_row_step']:.2f} MB a row a step (its rows hold {r['kv_held_mb_per_row_step']:.2f}); "
            f"{r['decode_steps']:.1f} steps a segment; "
            f"new shapes by family {r['new_shapes_by_family']}; graph misses (eager on CUDA) a segment "
            f"{r['graph_misses'] or 0}; syncs by kind {r['syncs_by_kind']}"
        )
        if "cpu_ms" in r:
            console.print(
                f"size {size}: the model thread's CPU a job, ms (min / median of {repeats}): "
                + ", ".join(f"{k} {v['min']:.2f} / {v['median']:.2f}" for k, v in r["cpu_ms"].items())
            )
    console.print(table)


if __name__ == "__main__":
    app()
