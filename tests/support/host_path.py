"""The CUDA code path run on this CPU, as the server runs it (issue 88): the runner built with the
CUDA plan (model/build.py ``build_runner(like="cuda")``), the server's warm-up through the steps
core on the calling thread, live segments through the stepping decoder, and a ``HostCosts``
(tests/support/dispatch_count.py) whose counts are split by stage. What the host-cost benchmark
(benchmarks/tools/host_costs.py) and the guard tests (tests/model/test_cuda_path_on_cpu.py) share.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.dispatch_count import HostCosts

#: the entry point of each stage, counted as that stage (the rest is "other")
STAGES = (
    ("translate_svc.model.stages.encoders", "SpeechEncoder", "features", "features"),
    ("translate_svc.model.stages.encoders", "SpeechEncoder", "audio_batch", "features"),
    ("translate_svc.model.stages.encoders", "SpeechEncoder", "encode", "encoder"),
    ("translate_svc.model.decode.loop", "DecodeLoop", "admit", "admission"),
    ("translate_svc.model.decode.loop", "DecodeLoop", "step", "decode"),
    ("translate_svc.model.stages.text_to_unit", "TextToUnit", "__call__", "t2u"),
    ("translate_svc.model.stages.vocoder", "MaskedVocoder", "__call__", "vocoder"),
    ("translate_svc.model.runner", "SeamlessRunner", "finish", "finish"),
)


def cuda_plan_runner(model: Path, **settings: Any) -> Any:
    """The runner the server builds on CUDA, on this CPU in float32, its finish inline (a dispatch
    mode sees one thread); ``settings``: other ``ModelSettings`` fields. The watermark is off
    unless asked for: the marker runs on the host at each wave's own length, outside the
    device's buckets and regions that these counts are about (docs/decisions.md)."""
    from translate_svc.model.build import build_runner
    from translate_svc.settings import ModelSettings

    fields: dict[str, Any] = {"finish_thread": False, "lid_path": None, "watermark": "off", **settings}
    m = ModelSettings(path=model, device="cpu", dtype="float32", **fields)
    return build_runner(m, like="cuda")


def warm_as_served(runner: Any, config: Any, max_rows: int) -> Sequence[Any]:
    """The server's warm-up (``TranslationEngine``'s plan and calls, through the steps core: the
    stepper made, then every planned batch through it, then the stages' buckets) run on this
    thread, where a dispatch mode sees it (the engine runs it on its model thread). Returns the
    batches run."""
    from translate_svc.engine.engine import TranslationEngine
    from translate_svc.engine.scheduler import SchedulerConfig

    engine = TranslationEngine(lambda: runner, SchedulerConfig(max_batch_size=max_rows), warmup=config, core="steps")
    engine._runner = runner  # what ``start`` loads on its model thread
    engine._core.attach(runner)
    engine._core.prepare()
    done: Sequence[Any] = engine._warmup()
    return done


@contextmanager
def counting(*, strict: bool = False) -> Iterator[HostCosts]:
    """A ``HostCosts`` (``strict``: the sync guard) with each stage's entry point counted as it."""
    import importlib

    costs = HostCosts(strict=strict)
    with costs:
        for module, cls, attr, stage in STAGES:
            costs.wrap(getattr(importlib.import_module(module), cls), attr, stage)
        yield costs


def through_stepper(
    runner: Any, items: Sequence[Any], size: int, held: list[int] | None = None, *, steps: int = 64
) -> tuple[list[Any], int, int]:
    """``items`` through the runner's stepping decoder (the steps core's route), ``size`` admitted
    together at a time, each run to its result in ticks of up to ``steps`` steps. Returns the
    outputs in order, the decode steps and the rows they stepped (summed over steps); ``held``
    (one number) gets the bytes of keys and values the stepped rows held (their tokens and their
    own frames, every layer), summed over steps: what a step that read only what its rows hold
    would read."""
    stepper = runner.stepper()
    stepped = rows = 0
    original = stepper.loop.step
    loop = stepper.loop
    kv = loop.buffers.self_kv  # (layers, slots, 2, heads, positions, head_dim)
    per_position = kv.shape[0] * 2 * kv.shape[3] * kv.shape[5] * kv.element_size()

    def counted() -> Any:
        nonlocal stepped, rows
        stepped += 1
        rows += len(loop)
        if held is not None:
            held[0] += sum(r.length + r.frames for r in loop._rows) * per_position
        return original()

    stepper.loop.step = counted
    outputs: dict[int, Any] = {}
    try:
        for start in range(0, len(items), size):
            batch = items[start : start + size]
            for k, item in enumerate(batch):
                stepper.admit(start + k, item)
            left = len(batch)
            while left:
                done = stepper.tick(steps)
                for key, out in done:
                    if out is None:
                        raise RuntimeError(f"segment {key} failed in the stepping decoder")
                    outputs[key] = out
                left -= len(done)
    finally:
        del stepper.loop.step  # the class's again
    return [outputs[k] for k in range(len(items))], stepped, rows
