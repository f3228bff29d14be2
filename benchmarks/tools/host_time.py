"""The engine process's host CPU per live segment, by section, on the CUDA plan's path run on this
CPU: what holds the engine's one GIL for a segment, the transformers feature extractor against the
features computed in the encoder's call, in one run.

Run from the repository root::

    python -m benchmarks.tools.host_time --model /tmp/real-layers --sizes 1,8 --repeats 3

The set-up is ``host_costs``' (benchmarks/tools/host_costs.py): the runner the server builds on CUDA
(model/build.py ``build_runner(like="cuda")``), on this CPU in float32 with the finish inline, the
server's CUDA warm-up (``buckets``), then the live segments of ``--streams`` streams of the shared
speech through the stepping decoder, ``size`` admitted together. Two runners are built and warmed:

- **old**: the code before the vectorised filterbank, kept here only: each segment's features are
  transformers' ``SeamlessM4TFeatureExtractor`` on the engine's features thread (a Python loop of
  one ``rfft`` and one ``mean`` per 10 ms frame), and the encoder is fed them;
- **new**: the CUDA plan as built: no features step, the features computed inside the encoder's
  capture region (model/stages/fbank.py, model/stages/encoders.py ``audio_batch``).

Each segment's thread CPU (``time.thread_time``, not wall time: other work on this machine does not
count) is split into sections, each boundary charging the time since the last one:

- ``features``: the engine's features step (``Runner.extract_features``, the features thread's);
- ``model``: the model thread's work outside capture regions (model/regions.py): on CUDA the host
  pays this; the code inside a region is one graph replay there (``regions`` below);
- ``finish``: the finish (``SeamlessRunner.finish``, inline here; the finish thread's on CUDA)
  outside capture regions;
- ``regions``: inside capture regions, model and finish: eager compute here, a replay on CUDA
  (so not the host's), reported for scale.

Old and new alternate within each repeat (the same machine's load on both); each section is the
median over ``--repeats``. Apart, the **CPU plan's features step** (the new filterbank on the
features thread, one segment a call: ``Fbank.features``) against the old extractor, per segment,
the minimum over ``--repeats``: its thread CPU, and at most how much of it holds the GIL. Torch's
Python bindings release the GIL while an operation runs, so what holds it is the calls' Python
and dispatch, which do not grow with the segment, and the numpy normalisation
(``Fbank.normalised``), which does: the bound is the thread CPU of the whole call on a 2-frame
segment (its kernels next to nothing) plus the normalisation's growth from 2 frames to the segment.
The old extractor is numpy and Python: all of it holds the GIL (but numpy's FFT loops). Thread CPU,
not wall time: on this shared machine a thread's wall time is mostly waiting for a core.
``--features-only`` runs this part alone (no model is loaded).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.tools.loadgen.clips import load_clips, stream_clips
from benchmarks.tools.loadgen.options import DEFAULT_FILES
from benchmarks.tools.profile_stages import segments_of
from benchmarks.tools.section_clock import SectionClock
from tests.support.host_path import cuda_plan_runner, through_stepper, warm_as_served
from tests.support.paths import TEST_MODEL
from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S

logger = logging.getLogger("benchmarks.tools.host_time")
app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console()

SECTIONS = ("features", "model", "finish", "regions")
VARIANTS = ("old", "new")


@contextmanager
def finish_timed(clock: SectionClock) -> Iterator[None]:
    """``SeamlessRunner.finish`` charged to ``finish`` while the block runs."""
    from translate_svc.model.runner import SeamlessRunner

    original = SeamlessRunner.finish

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        with clock.section("finish"):
            return original(self, *args, **kwargs)

    SeamlessRunner.finish = timed  # type: ignore[method-assign]
    try:
        yield
    finally:
        SeamlessRunner.finish = original  # type: ignore[method-assign]


def transformers_features(extractor: Any) -> Callable[[np.ndarray], Any]:
    """The features step before the vectorised filterbank: transformers' extractor on one segment."""
    from translate_svc.model_api.requests import Features

    def extract(audio: np.ndarray) -> Features:
        f = extractor(audio, sampling_rate=16000, return_attention_mask=True, return_tensors="np")
        return Features(values=f["input_features"][0], mask=f["attention_mask"][0])

    return extract


def build(model: Path, variant: str) -> Any:
    """The CUDA plan's runner on this CPU; ``old``: its features made by transformers' extractor,
    ahead, and fed to the encoder (see the module docstring)."""
    runner = cuda_plan_runner(model)
    if variant == "old":
        speech = runner.stages.speech_encoder
        speech.device_features = False
        speech.extract_features = transformers_features(speech.feature_extractor)
    return runner


def one_pass(runner: Any, audios: Sequence[np.ndarray], size: int, lang: str) -> dict[str, float]:
    """The segments through the stepper as the engine sends them (features ahead where the runner
    wants them), ``size`` together; thread CPU by section, summed over the segments (ms)."""
    from translate_svc.model import regions
    from translate_svc.model_api.requests import ModelInput

    items = [ModelInput(a, (lang,), None, True) for a in audios]
    clock = SectionClock("model")
    if not runner.features_in_run:
        with clock.section("features"):
            items = [dataclasses.replace(i, features=runner.extract_features(i.audio)) for i in items]
    with regions.observing(clock), finish_timed(clock):
        through_stepper(runner, items, size)
    clock.close()
    return {s: 1000 * clock.totals.get(s, 0.0) for s in SECTIONS}


def features_step(extract: Callable[[np.ndarray], Any], audios: Sequence[np.ndarray]) -> float:
    """Thread CPU (ms) of ``extract`` over ``audios``, one segment a call, after one untimed call."""
    extract(audios[0])
    t0 = time.thread_time()
    for a in audios:
        extract(a)
    return 1000 * (time.thread_time() - t0)


def features_steps(audios: Sequence[np.ndarray], repeats: int) -> dict[str, Any]:
    """The features step, one segment a call: transformers' extractor (old) and the CPU plan's
    ``Fbank.features`` (new), per segment (ms), the minimum of ``repeats`` (module docstring)."""
    import torch
    from transformers import SeamlessM4TFeatureExtractor

    from translate_svc.model.stages.fbank import Fbank

    extractor = SeamlessM4TFeatureExtractor()
    fbank = Fbank(extractor, torch.device("cpu"))
    extracts = {"old": transformers_features(extractor), "new": fbank.features}
    tiny = [a[:560] for a in audios]  # 2 frames each: the call's fixed part
    with torch.inference_mode():
        logmels = [fbank.log_mel(torch.from_numpy(a[None].copy()))[0].numpy() for a in audios]
    steps: dict[str, dict[str, float]] = {"old": {}, "new": {}}
    for _ in range(repeats):
        for name, extract in extracts.items():
            got = {"cpu_ms": features_step(extract, audios) / len(audios)}
            got["fixed_ms"] = features_step(extract, tiny) / len(tiny)
            if name == "new":
                short = [m[:, :2] for m in logmels]
                grows = features_step(fbank.normalised, logmels) - features_step(fbank.normalised, short)
                got["gil_ms"] = got["fixed_ms"] + max(0.0, grows) / len(audios)
            else:
                got["gil_ms"] = got["cpu_ms"]
            steps[name] = {k: min(v, steps[name].get(k, v)) for k, v in got.items()}
    return steps | {"mean_segment_s": sum(len(a) for a in audios) / 16000 / len(audios)}


@app.command()
def main(
    model: Annotated[
        Path, typer.Option(help="model directory (the real-layers checkpoint: make-test-model --real-layers)")
    ] = TEST_MODEL,
    files: Annotated[str, typer.Option(help="comma list; names in ../shared/audio or paths")] = DEFAULT_FILES,
    streams: Annotated[int, typer.Option(min=1, help="segments of this many streams (files alternate)")] = 16,
    sizes: Annotated[str, typer.Option(help="jobs admitted together: 1 (one at a time) and batches")] = "1,8",
    limit: Annotated[int, typer.Option(min=1, help="live segments measured at most, per size")] = 32,
    repeats: Annotated[int, typer.Option(min=1, help="passes of old and new, alternating; medians")] = 3,
    features_only: Annotated[bool, typer.Option("--features-only", help="the features step alone")] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
) -> None:
    import torch

    from translate_svc import logging_setup
    from translate_svc.engine.warmup import WarmupConfig, WarmupMode
    from translate_svc.model.stages.shapes import encoder_lengths_s

    logging_setup.configure("WARNING")
    torch.set_num_threads(1)
    clips = load_clips(tuple(f.strip() for f in files.split(",") if f.strip()))
    segs = [s for c in stream_clips(clips, streams, DEFAULT_SHIFT_S) for s in segments_of(c.pcm)]
    size_list = [] if features_only else [int(s) for s in sizes.split(",")]
    out: dict[str, Any] = {"command": sys.argv, "segments": len(segs), "repeats": repeats}
    out["features_step"] = features_steps(segs[: min(limit, len(segs))], repeats)
    longest_s = max(len(s) for s in segs) / 16000
    runners = {}
    for variant in VARIANTS if size_list else ():
        t0 = time.perf_counter()
        runners[variant] = runner = build(model, variant)
        config = WarmupConfig(WarmupMode.BUCKETS, encoder_lengths_s(longest_s), None, longest_s)
        warm_as_served(runner, config, max(size_list))
        runner.stepper()
        logger.warning("%s: built and warmed in %.0f s", variant, time.perf_counter() - t0)
    lang = "spa"
    for size in size_list:
        audios = segs[: max(size, min(limit, len(segs)))]
        audios = audios[: len(audios) - len(audios) % size] or audios[:size]
        passes: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        for _ in range(repeats):
            for variant in VARIANTS:
                passes[variant].append(one_pass(runners[variant], audios, size, lang))
        seconds = sum(len(a) for a in audios) / 16000
        out[str(size)] = {
            "segments": len(audios),
            "mean_segment_s": seconds / len(audios),
            **{
                v: {s: statistics.median(p[s] for p in passes[v]) / len(audios) for s in SECTIONS}
                | {"passes_ms": passes[v]}
                for v in VARIANTS
            },
        }
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(out, indent=1))
    table = Table(
        title=f"engine-process thread CPU per live segment (ms), CUDA plan on CPU, {len(segs)} segments of "
        f"{streams} streams, median of {repeats}"
    )
    for col in ("size", "variant", *SECTIONS, "host (no regions)"):
        table.add_column(col, justify="right")
    for size in size_list:
        r = out[str(size)]
        for v in VARIANTS:
            s = r[v]
            host_ms = s["features"] + s["model"] + s["finish"]
            table.add_row(str(size), v, *(f"{s[k]:.2f}" for k in SECTIONS), f"{host_ms:.2f}")
    if size_list:
        console.print(table)
    f = out["features_step"]
    for name, what in (("old", "transformers' extractor"), ("new", "Fbank.features, the CPU plan's")):
        console.print(
            f"features step, {what}: {f[name]['cpu_ms']:.2f} ms thread CPU a segment (mean "
            f"{f['mean_segment_s']:.2f} s), of which at most {f[name]['gil_ms']:.2f} ms holds the GIL, "
            f"{f[name]['fixed_ms']:.2f} ms on 2 frames (min of {repeats})"
        )


if __name__ == "__main__":
    app()
