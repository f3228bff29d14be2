"""Where a batch's time goes: the runner's stages timed per batch size, on real speech segments.

Run from the repository root::

    python -m benchmarks.tools.profile_stages --model model_cache/test-model --sizes 1,2,4,8,16

The segments are those the server would cut (the same ``VadWorker`` and ``Segmenter``) from the files the
load generator streams, one copy per stream (``--streams``, files alternating). For each batch size
they run in batches of that size -- sorted by length by default, as the scheduler's bucketing does
when the queue is deep (``--order stream`` keeps stream order) -- and each
stage that ``SeamlessRunner.run`` calls (``SeamlessStages``) is timed: features, speech encoder, text
decoding (``generate``), and inside the speech stage the text decoder pass that feeds t2u, the t2u
model and the vocoder (called once per row). "other" is the rest (Python glue, tokenizer decode, copies). The wrappers
sit on this script's own stages instance; the library is not changed.

By default the timed pass is **cold**, as in the server: one untimed call on an unrelated clip
loads everything, then every batch has shapes not seen before (on CPU oneDNN builds a kernel per
new convolution shape, which costs more than running it on this tiny model). ``--warm`` first runs
the same batches once untimed, which measures the compute alone. ``--warmup one|batches`` instead
runs the server's own warm-up first (``TranslationEngine.start``, engine/warmup.py: every batch size
up to ``--warmup-max-batch`` at its lengths), then times the same cold batches: what the warm-up
leaves of the cold cost for segments of lengths it did not run. ``--warmup buckets`` (issue 70)
runs the warm-up of every bucket (encoder frames, t2u, vocoder) at the size profiled, then times
the same cold batches; the JSON's ``cold_shapes`` counts the shapes they still met first.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from benchmarks.tools.loadgen.clips import load_clips, stream_clips
from benchmarks.tools.loadgen.options import DEFAULT_FILES
from tests.support.paths import TEST_MODEL
from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S

logger = logging.getLogger("benchmarks.tools.profile_stages")
app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console()

STAGES = ("features", "encode", "generate", "t2u_text_decoder", "t2u", "vocoder", "other")


class StageTimer:
    """Wall time per stage, summed. Model thread only (this script is single-threaded).

    ``sync``: called at every stage boundary (``torch.cuda.synchronize`` on CUDA, where kernels run
    after their launch returns: without it a stage's time shows up in whichever later stage first
    waits for the GPU)."""

    def __init__(self, sync: Callable[[], None] = lambda: None) -> None:
        self.sync = sync
        self.ms: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.decode_steps: list[int] = []
        self.in_speech = False  # module hooks count only inside the speech stage
        self._starts: dict[str, float] = {}

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self.sync()
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.sync()
                self.ms[name] += (time.perf_counter() - t0) * 1000.0
                self.calls[name] += 1

        return timed

    def hook(self, name: str, module: Any) -> None:
        def pre(*_: Any, **__: Any) -> None:
            if self.in_speech:
                self.sync()
                self._starts[name] = time.perf_counter()

        def post(*_: Any, **__: Any) -> None:
            if name in self._starts:
                self.sync()
                self.ms[name] += (time.perf_counter() - self._starts.pop(name)) * 1000.0
                self.calls[name] += 1

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)


def segments_of(pcm16: np.ndarray) -> list[np.ndarray]:
    """The segments the server cuts from this audio (the same segmenter, default VAD settings)."""
    from tests.support.speech import vad_segments
    from translate_svc.wire.pcm import pcm16_to_float

    return [e.samples for e in asyncio.run(vad_segments(pcm16_to_float(pcm16)))]


def engine_warmup(
    runner: Any, mode: str, max_batch_size: int, max_s: float | None, lengths_s: tuple[float, ...] | None = None
) -> dict[str, Any]:
    """The server's warm-up on ``runner``: a ``TranslationEngine`` over it started (the plan runs on
    its model thread) and stopped. Returns the batches it ran and its seconds."""
    from translate_svc.engine.engine import TranslationEngine
    from translate_svc.engine.scheduler import SchedulerConfig
    from translate_svc.engine.warmup import WarmupConfig, WarmupMode, plan

    config = WarmupConfig(WarmupMode(mode), max_s=max_s)
    if lengths_s is not None:
        config = WarmupConfig(WarmupMode(mode), lengths_s, max_s)
    sched = SchedulerConfig(max_batch_size=max_batch_size)
    engine = TranslationEngine(lambda: runner, sched, warmup=config)

    async def run() -> float:
        t0 = time.perf_counter()
        await engine.start()
        seconds = time.perf_counter() - t0
        await engine.stop()
        return seconds

    seconds = asyncio.run(run())
    planned = plan(config, sched.max_batch_size, sched.max_batch_audio_s)
    return {
        "mode": mode,
        "max_batch_size": max_batch_size,
        "lengths_s": config.lengths_s,
        "planned_batches": len(planned),
        "seconds": seconds,
    }


def bucket_warmup(runner: Any, rows: int, longest_s: float) -> dict[str, Any]:
    """The warm-up ``buckets`` (engine/warmup.py, issue 70) for batches of ``rows`` segments: one
    batch of ``rows`` noise segments per encoder frame bucket up to ``longest_s``, then t2u's and
    the vocoder's buckets at ``rows``' row bucket (``SeamlessStages.warm_speech``), then the
    runner told the warm-up is over (shapes first met after it are counted cold). A server warms
    every batch size; one size is what a profile of that size meets."""
    from translate_svc.model.stages.shapes import encoder_lengths_s
    from translate_svc.model_api.requests import ModelInput

    card = runner.card
    lang = sorted(card.speech_codes or card.text_codes)[0]
    rng = np.random.default_rng(0)
    lengths = encoder_lengths_s(longest_s)
    t0 = time.perf_counter()
    for seconds in lengths:
        audio = (0.01 * rng.standard_normal(round(seconds * 16000))).astype(np.float32)
        runner.run([ModelInput(audio, (lang,), lang, speech=bool(card.speech_codes))] * rows)
    calls = runner.stages.warm_speech(rows, longest_s, None, only_rows=True)
    runner.warmed()
    return {
        "mode": "buckets",
        "max_batch_size": rows,
        "lengths_s": lengths,
        "planned_batches": len(lengths),
        "stage_calls": calls,
        "seconds": time.perf_counter() - t0,
    }


def frame_bucket_lengths(runner: Any, items: list[Any]) -> tuple[float, ...]:
    """One audio length (s) per input-frame bucket the segments fall in (model/stages/shapes.py): what the
    warm-up must run for ``--pad-frames`` to meet only shapes it ran. 0.02 s per stacked frame."""
    from translate_svc.model.stages.shapes import bucket_length

    frames = sorted({bucket_length(len(runner.extract_features(i.audio).values)) for i in items})
    return tuple(round(b * 0.02, 2) for b in frames)


def profile(
    runner: Any,
    items: list[Any],
    size: int,
    repeats: int,
    warm: bool,
    max_batches: int | None = None,
    prime: Callable[[Any], dict[str, Any]] | None = None,
    rerun: bool = False,
) -> dict[str, Any]:
    import torch

    cuda = runner.stages.device.type == "cuda"
    timer = StageTimer(torch.cuda.synchronize if cuda else lambda: None)
    stages = runner.stages  # the runner calls its stages through this instance: the wrappers sit on it
    speech = stages.speech_encoder
    speech.features = timer.wrap("features", speech.features)  # type: ignore[method-assign]
    speech.encode = timer.wrap("encode", speech.encode)  # type: ignore[method-assign]
    decode = stages.decoder.generate

    def decode_counted(*args: Any, **kwargs: Any) -> Any:
        seqs = decode(*args, **kwargs)
        timer.decode_steps.append(int(seqs.shape[1]))
        return seqs

    stages.decoder.generate = timer.wrap("generate", decode_counted)  # type: ignore[method-assign]
    if getattr(runner, "loop", None) is not None:  # the fast runner: its loop is the decode stage
        loop_decode = runner.loop.decode

        def loop_counted(*args: Any, **kwargs: Any) -> Any:
            out = loop_decode(*args, **kwargs)
            timer.decode_steps.append(int(out.sequences.shape[1]))
            return out

        runner.loop.decode = timer.wrap("generate", loop_counted)
    speech = stages.speech

    def speech_flagged(*args: Any, **kwargs: Any) -> Any:
        timer.in_speech = True
        try:
            return speech(*args, **kwargs)
        finally:
            timer.in_speech = False

    stages.speech = timer.wrap("speech", speech_flagged)
    m = stages.model
    timer.hook("t2u_text_decoder", m.text_decoder)
    # text-to-unit and the vocoder (model/stages/text_to_unit.py, model/stages/vocoder.py: each its two parts and the
    # read between them): one call each per speech batch, only ever inside the speech stage here
    stages.units = timer.wrap("t2u", stages.units)  # type: ignore[method-assign]
    stages.vocode = timer.wrap("vocoder", stages.vocode)  # type: ignore[method-assign]
    batches = [items[i : i + size] for i in range(0, len(items), size)]
    if max_batches is not None and len(batches) > max_batches:
        # full batches spread evenly over the (length-sorted) list, so every size sees the same mix
        full = [b for b in batches if len(b) == size]
        step = len(full) / max_batches
        batches = [full[int(k * step)] for k in range(max_batches)]
    warmup = None
    if warm:  # the same shapes once, untimed: oneDNN builds a primitive per new shape on first use
        for b in batches:
            runner.run(b)
    elif prime is not None:  # the server's warm-up: other shapes than the timed batches'
        warmup = prime(runner)
    else:  # load and initialise everything on shapes the timed pass never uses
        runner.run([replace(items[0], audio=np.zeros(16000 * 20 + 123, np.float32), features=None)])
    timer.ms.clear()
    timer.calls.clear()
    timer.decode_steps.clear()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(repeats):
        for b in batches:
            runner.run(b)
    timer.sync()
    total = (time.perf_counter() - t0) * 1000.0
    shapes = getattr(stages, "shapes", None)
    cold_shapes = dict(shapes.cold) if shapes is not None and shapes.warm else None
    again = None
    if rerun:  # the same batches once more, at once: every shape met, the same machine's moment
        first = dict(timer.ms)
        timer.ms.clear()
        t1 = time.perf_counter()
        for _ in range(repeats):
            for b in batches:
                runner.run(b)
        timer.sync()
        again_total = (time.perf_counter() - t1) * 1000.0
        again = {"ms_per_segment": again_total / (sum(len(b) for b in batches) * repeats)}
        again["stage_ms_per_segment"] = {
            k: v / (sum(len(b) for b in batches) * repeats) for k, v in timer.ms.items() if k != "speech"
        }
        timer.ms.clear()
        timer.ms.update(first)
    n_seg = sum(len(b) for b in batches) * repeats
    n_audio_s = sum(len(i.audio) for b in batches for i in b) / 16000 * repeats
    ms = dict(timer.ms)
    speech_ms = ms.pop("speech", 0.0)
    out_ms = {
        "features": ms.get("features", 0.0),
        "encode": ms.get("encode", 0.0),
        "generate": ms.get("generate", 0.0),
        "t2u_text_decoder": ms.get("t2u_text_decoder", 0.0),
        "t2u": ms.get("t2u", 0.0) - ms.get("t2u_text_decoder", 0.0),  # t2u's call holds the re-run
        "vocoder": ms.get("vocoder", 0.0),
    }
    out_ms["other"] = total - sum(out_ms.values())
    return {
        "batch_size": size,
        "batches": len(batches) * repeats,
        "segments": n_seg,
        "total_ms": total,
        "ms_per_segment": total / n_seg,
        "stage_ms_per_segment": {k: v / n_seg for k, v in out_ms.items()},
        "speech_stage_ms_per_segment": speech_ms / n_seg,
        "vocoder_calls": timer.calls.get("vocoder", 0),
        # padded audio the encoder sees / real audio: what bucketing could still win
        "padding_factor": sum(max(len(i.audio) for i in b) * len(b) for b in batches)
        / sum(len(i.audio) for b in batches for i in b),
        "mean_decode_len": float(np.mean(timer.decode_steps)) if timer.decode_steps else None,
        # audio seconds translated per wall second of model time: streams one model thread keeps
        # at this batch size if every stream spoke all the time
        "audio_s_per_s": n_audio_s / (total / 1000.0),
        "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        "warmup": warmup,
        # shapes the timed pass met first (after a warm-up that told the runner it was over)
        "cold_shapes": cold_shapes,
        # with --rerun: the same batches timed again right after (warm), and first / again
        "rerun": again,
        "first_over_rerun": None if again is None else (total / n_seg) / again["ms_per_segment"],
    }


@app.command()
def main(
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "cpu",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16")] = "float32",
    files: Annotated[str, typer.Option(help="comma list; names in ../shared/audio or paths")] = DEFAULT_FILES,
    sizes: Annotated[str, typer.Option(help="batch sizes")] = "1,2,4,8,16",
    to: Annotated[str, typer.Option(help="target language")] = "spa",
    speech: Annotated[bool, typer.Option("--speech/--no-speech")] = True,
    streams: Annotated[int, typer.Option(min=1, help="segments of this many streams (files alternate)")] = 16,
    shift_s: Annotated[float, typer.Option(min=0, help="as loadgen's --shift-s")] = DEFAULT_SHIFT_S,
    repeats: Annotated[int, typer.Option(min=1)] = 1,
    rerun: Annotated[
        bool, typer.Option("--rerun", help="time the same batches again right after (warm), in the same process")
    ] = False,
    max_batches: Annotated[
        int | None, typer.Option(min=1, help="time at most this many full batches per size, spread over the list")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write every size's figures here")] = None,
    order: Annotated[
        str, typer.Option(help="stream: segments in stream order; length: sorted (like the scheduler's bucketing)")
    ] = "length",
    cpu_threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads; default: the runner's")] = None,
    vocoder: Annotated[
        str, typer.Option(help="auto (the runner's default), batched or rows (one call per row)")
    ] = "auto",
    warm: Annotated[bool, typer.Option("--warm/--cold", help="time shapes already run once (compute only)")] = False,
    warmup: Annotated[
        str | None,
        typer.Option(
            help="one, batches or buckets: the server's warm-up first (with --cold), engine/warmup.py;"
            " buckets: at each size's own rows"
        ),
    ] = None,
    warmup_max_batch: Annotated[
        int | None, typer.Option(min=1, help="with --warmup: the server's max batch size (default: the largest size)")
    ] = None,
    warmup_max_s: Annotated[float | None, typer.Option(min=0, help="with --warmup: its time budget")] = None,
    warmup_lengths: Annotated[
        str | None,
        typer.Option(
            help="with --warmup: audio seconds, comma list, or 'buckets' (one per frame bucket of the segments)"
        ),
    ] = None,
    pad_frames: Annotated[
        bool,
        typer.Option("--pad-frames", help="pad input frames and vocoder lengths to buckets (model/stages/shapes.py)"),
    ] = False,
    forced_tokens_per_s: Annotated[
        float | None, typer.Option(help="random weights only: text tokens per audio second (model/stages/forced.py)")
    ] = None,
    forced_units_per_s: Annotated[
        float, typer.Option(help="with --forced-tokens-per-s: units per audio second")
    ] = 50.0,
    runner_kind: Annotated[
        str,
        typer.Option(
            "--runner",
            help="exact (generate) or fast (our own decode loop, CUDA graphs on CUDA; its decode"
            " is the 'generate' column)",
        ),
    ] = "exact",
) -> None:
    """Time the runner's stages per batch size."""
    import torch

    from translate_svc import logging_setup
    from translate_svc.model.decode.batch import LoopDecoder
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages
    from translate_svc.model_api.requests import ModelInput

    logging_setup.configure("WARNING")
    kwargs: dict[str, Any] = {}
    if cpu_threads is not None:
        if "cpu_threads" in inspect.signature(SeamlessStages).parameters:
            kwargs["cpu_threads"] = cpu_threads  # the stages set torch's threads themselves at load
        else:
            torch.set_num_threads(cpu_threads)
    if forced_tokens_per_s is not None:
        from translate_svc.model.stages.forced import ForcedLengths

        kwargs["forced"] = ForcedLengths(forced_tokens_per_s, forced_units_per_s)
    if pad_frames:  # the CUDA shapes experiment: the encoder's frames and the vocoder's lengths repeat
        kwargs.update(pad_frames=True, pad_shapes=True)
    if vocoder != "auto":
        if vocoder not in ("batched", "rows"):
            raise typer.BadParameter("use auto, batched or rows", param_hint="--vocoder")
        kwargs["batch_vocoder"] = vocoder == "batched"
    if runner_kind not in ("exact", "fast"):
        raise typer.BadParameter("use exact or fast", param_hint="--runner")
    clips = load_clips(tuple(f.strip() for f in files.split(",") if f.strip()))
    segs = [s for c in stream_clips(clips, streams, shift_s) for s in segments_of(c.pcm)]
    items = [ModelInput(s, (to,), None, speech) for s in segs]
    if order == "length":
        items.sort(key=lambda i: len(i.audio))
    elif order != "stream":
        raise typer.BadParameter("use stream or length", param_hint="--order")
    size_list = [int(s) for s in sizes.split(",")]
    prime: functools.partial[dict[str, Any]] | None = None
    if warmup == "buckets":  # per size: its own rows, up to the longest segment profiled
        if warm:
            raise typer.BadParameter("with --cold", param_hint="--warmup")
        longest_s = max(len(i.audio) for i in items) / 16000
    elif warmup is not None:
        if warmup not in ("one", "batches") or warm:
            raise typer.BadParameter("one, batches or buckets, with --cold", param_hint="--warmup")
        top = warmup_max_batch or max(size_list)
        lengths = None
        if warmup_lengths is not None and warmup_lengths != "buckets":
            lengths = tuple(float(x) for x in warmup_lengths.split(","))
        prime = functools.partial(engine_warmup, mode=warmup, max_batch_size=top, max_s=warmup_max_s, lengths_s=lengths)
    need = max(size_list)
    while len(items) < need * 2:
        items = items + items
    results = []
    for size in size_list:
        # fresh: the wrappers are per instance
        stages = SeamlessStages(model, device=device, dtype=dtype, **kwargs)
        loop = None
        if runner_kind == "fast":  # as the server makes it (app.py), its pool holding a whole batch
            loop = LoopDecoder(stages.decoder, stages.processor, slots=max(64, size), static=True, graphs=True)
        runner = SeamlessRunner(stages, loop)
        if prime is not None and warmup_lengths == "buckets" and not isinstance(prime.keywords["lengths_s"], tuple):
            prime = functools.partial(prime, lengths_s=frame_bucket_lengths(runner, items))  # once: same items
        if warmup == "buckets":
            prime = functools.partial(bucket_warmup, rows=size, longest_s=longest_s)
        results.append(profile(runner, items, size, repeats, warm, max_batches, prime, rerun))
        logger.warning("batch %d: %.1f ms per segment", size, results[-1]["ms_per_segment"])
        if results[-1]["rerun"] is not None:
            logger.warning(
                "  again at once: %.1f ms per segment (first / again %.2f), cold shapes %s",
                results[-1]["rerun"]["ms_per_segment"], results[-1]["first_over_rerun"], results[-1]["cold_shapes"],
            )  # fmt: skip
        if results[-1]["warmup"] is not None:
            w = results[-1]["warmup"]
            logger.warning(
                "  after the warm-up (%s, %d planned batches, %.1f s)", w["mode"], w["planned_batches"], w["seconds"]
            )
        if json_path is not None:  # after each size: a run cut short keeps what it measured
            json_path.write_text(json.dumps({"command": sys.argv, "results": results}, indent=1))
        if size != size_list[-1]:  # one model on the device at a time
            del runner
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    audio_s = sum(len(i.audio) for i in items) / 16000 / len(items)
    forced_note = (
        "" if forced_tokens_per_s is None else f", forced {forced_tokens_per_s:g} tok/s {forced_units_per_s:g} units/s"
    )
    mode = ("warm" if warm else "cold") + (f" after warm-up {warmup}" if warmup else "")
    mode += ", frames padded to buckets" if pad_frames else ""
    mode += ", the fast runner (its loop in 'generate')" if runner_kind == "fast" else ""
    table = Table(
        title=f"{runner.stages.info.name}: ms per segment by stage ({len(items)} segments, mean {audio_s:.1f} s; "
        f"{order} order, {mode}, speech {'on' if speech else 'off'}{forced_note}; "
        f"torch {torch.get_num_threads()} threads, {runner.stages.device})"
    )
    table.add_column("batch")
    for s in STAGES:
        table.add_column(s, justify="right")
    table.add_column("total", justify="right")
    table.add_column("vs batch 1", justify="right")
    table.add_column("decode len", justify="right")
    table.add_column("padded/real audio", justify="right")
    base = results[0]["ms_per_segment"]
    for r in results:
        st = r["stage_ms_per_segment"]
        table.add_row(
            str(r["batch_size"]),
            *[f"{st[s]:.1f}" for s in STAGES],
            f"{r['ms_per_segment']:.1f}",
            f"{base / r['ms_per_segment']:.2f}x",
            f"{r['mean_decode_len']:.1f}",
            f"{r['padding_factor']:.2f}",
        )
    console.print(table)


if __name__ == "__main__":
    app()
