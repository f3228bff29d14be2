"""Milliseconds per text-decoder step: our own decode loop (model/decode/loop.py) against ``generate``
(model/stages/decoder.py), at given batch sizes, on real speech (issue 70).

Run from the repository root::

    python -m benchmarks.tools.decode_steps --model model_cache/test-model --sizes 1,8,32 --repeats 3

Every row is a segment of ``--seconds`` of the shared speech (``--audio``, cut one after another and
wrapped), encoded once by the speech encoder. So that both paths run the same number of steps on
any weights, every row decodes exactly ``--tokens`` tokens then EOS (benchmark mode's forced
lengths, model/stages/forced.py: ``tokens + 1`` steps). Each size is run once untimed (warm: the figures
are the compute and the host's cost, not first-use), then ``--repeats`` times:

- ``generate``: ``TextDecoder.generate`` on the batch, divided by its steps (its prefill and
  cross-attention projection included, as they are inside its first step);
- ``loop``: ``DecodeLoop.admit`` of the batch (cross-attention projected once, prompt fed) plus
  every ``step`` until the last row leaves, divided by the same steps; ``loop step`` is the steps
  alone. ``--static``: the loop's static path (model/decode/loop.py: each step a row bucket over the
pool's whole windows, what a CUDA graph replays), run eagerly. ``--read-every k``: the loop reads
its rows' finished flags every k steps (rows leave up to k - 1 steps late; still divided by the
rows' own steps).

Each figure is the median over the repeats, with the spread (min-max). ``--json`` writes them all.

``--kernels``: after the timed repeats, one more pass of each path under ``torch.profiler``, which
splits its milliseconds per step into the attention kernel (``scaled_dot_product_attention`` with
what it calls: both paths call it twice a layer with the same shapes) and the rest (every other
operator and the host's Python); ``rest ratio`` is the loop's rest over ``generate``'s, and the
loop's attention alone over ``generate``'s whole step is the lowest ratio a step could reach. The
profiler adds its own cost to every operator, so these figures are larger than the timed ones; they
show which part a faster step can still shrink, and the ratio the attention alone leaves.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
import typer

from tests.support.paths import SHARED_AUDIO, TEST_MODEL
from tests.support.speech import read_16k

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)


def segments(audio: Path, seconds: float, count: int) -> list[np.ndarray]:
    """``count`` segments of ``seconds`` cut from ``audio`` one after another, wrapping around."""
    x = read_16k(audio)
    n = int(seconds * 16000)
    if len(x) < n:
        raise typer.BadParameter(f"{audio} is shorter than --seconds {seconds}")
    starts = range(0, len(x) - n + 1, n)
    return [x[s : s + n] for s, _ in zip(list(starts) * (count // len(starts) + 1), range(count), strict=False)]


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def time_generate(decoder: Any, enc: Any, mask: Any, rows: Any, steps: int, sync: Callable[[], None]) -> float:
    """One ``generate`` of the batch, in ms."""
    sync()
    t0 = time.perf_counter()
    with torch.inference_mode():
        seqs = decoder.generate(enc, mask, rows)
    sync()
    assert seqs.shape[1] == 2 + steps, seqs.shape
    return (time.perf_counter() - t0) * 1000


def time_loop(loop: Any, enc: Any, mask: Any, rows: Any, steps: int, sync: Callable[[], None]) -> tuple[float, float]:
    """The batch admitted and stepped until its last row leaves: (ms in all, ms of the steps)."""
    sync()
    t0 = time.perf_counter()
    loop.admit(rows, enc, mask)
    sync()
    t1 = time.perf_counter()
    done, taken = 0, 0
    while len(loop):
        done += len(loop.step())
        taken += 1
    sync()
    t2 = time.perf_counter()
    fed = 1 if loop.static else 0  # the static path feeds the prompt's start token by a step of its own
    assert done == len(rows) and steps + fed <= taken < steps + fed + loop.read_every + loop.read_behind, (done, taken)
    return (t2 - t0) * 1000, (t2 - t1) * 1000


def loop_total_ms(loop: Any, enc: Any, mask: Any, rows: Any, steps: int, sync: Callable[[], None]) -> float:
    """``time_loop``'s ms in all (admission and steps)."""
    return time_loop(loop, enc, mask, rows, steps, sync)[0]


#: the attention operator both paths call (its CPU total holds the kernel it dispatches to)
ATTENTION_OP = "aten::scaled_dot_product_attention"


def profiled(run: Callable[[], float], steps: int) -> dict[str, float]:
    """``run`` (returns its ms) once under ``torch.profiler``: ms per step in all, in the attention
    operator (with its callees), and the rest."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        total = run()
    attention = sum(e.cpu_time_total for e in prof.key_averages() if e.key == ATTENTION_OP) / 1000
    return {
        "total_ms": total / steps,
        "attention_ms": attention / steps,
        "rest_ms": (total - attention) / steps,
    }


@app.command()
def main(
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    sizes: Annotated[str, typer.Option(help="batch sizes, comma list")] = "1,8,32",
    repeats: Annotated[int, typer.Option(min=1, help="timed runs per size")] = 3,
    tokens: Annotated[int, typer.Option(min=1, help="text tokens every row decodes (then EOS)")] = 16,
    seconds: Annotated[float, typer.Option(min=0.2, help="each segment's length")] = 2.3,
    audio: Annotated[Path, typer.Option(help="speech to cut segments from")] = SHARED_AUDIO / "jfk.flac",
    language: Annotated[str, typer.Option(help="every row's language")] = "spa",
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "cpu",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16")] = "float32",
    cpu_threads: Annotated[int | None, typer.Option(min=1, help="torch CPU threads; default: the stages'")] = None,
    static: Annotated[
        bool,
        typer.Option("--static", help="the loop's static path: row buckets over whole windows (what CUDA replays)"),
    ] = False,
    read_every: Annotated[
        int, typer.Option(min=1, help="the loop reads its rows' finished flags every this many steps")
    ] = 1,
    kernels: Annotated[
        bool, typer.Option("--kernels", help="one profiled pass each: the attention kernel's ms per step, and the rest")
    ] = False,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the figures here")] = None,
) -> None:
    from translate_svc.model.decode.loop import DecodeLoop
    from translate_svc.model.stages.decoder import TextDecoder
    from translate_svc.model.stages.forced import ForcedLengths
    from translate_svc.model.stages.seamless import SeamlessStages
    from translate_svc.model_api.rows import bare_rows

    stages = SeamlessStages(model, device=device, dtype=dtype, cpu_threads=cpu_threads)
    forced = ForcedLengths(text_tokens_per_s=tokens / seconds)
    decoder = TextDecoder(stages.model, stages.text_lang_ids, stages.terms, stages.processor, forced=forced)
    steps = forced.text_tokens(seconds) + 1
    batch_sizes = [int(s) for s in sizes.split(",")]
    clips = segments(audio, seconds, max(batch_sizes))
    batch = stages.speech_encoder.features([stages.extract_features(c) for c in clips])
    with torch.inference_mode():
        enc_all = stages.speech_encoder.encode(batch)
    loop = DecodeLoop(
        decoder,
        slots=max(batch_sizes),
        max_frames=enc_all.shape[1],
        max_tokens=steps + 2,
        static=static,
        read_every=read_every,
    )
    sync = torch.cuda.synchronize if stages.device.type == "cuda" else (lambda: None)
    results: list[dict[str, Any]] = []
    for size in batch_sizes:
        enc, mask = enc_all[:size], batch.mask[:size]
        rows = bare_rows([language] * size, [()] * size, [seconds] * size).rows

        time_generate(decoder, enc, mask, rows, steps, sync), time_loop(loop, enc, mask, rows, steps, sync)  # warm
        gen_ms, loop_ms, step_ms = [], [], []
        for _ in range(repeats):
            gen_ms.append(time_generate(decoder, enc, mask, rows, steps, sync) / steps)
            total, only = time_loop(loop, enc, mask, rows, steps, sync)
            loop_ms.append(total / steps)
            step_ms.append(only / steps)
        result = {
            "batch": size,
            "steps": steps,
            "generate_ms_per_step": spread(gen_ms),
            "loop_ms_per_step": spread(loop_ms),
            "loop_step_only_ms": spread(step_ms),
        }
        result["ratio"] = result["loop_ms_per_step"]["median"] / result["generate_ms_per_step"]["median"]
        if kernels:
            result["kernels"] = {
                "generate": profiled(partial(time_generate, decoder, enc, mask, rows, steps, sync), steps),
                "loop": profiled(partial(loop_total_ms, loop, enc, mask, rows, steps, sync), steps),
            }
            k = result["kernels"]
            k["rest_ratio"] = k["loop"]["rest_ms"] / k["generate"]["rest_ms"]
            k["attention_floor_ratio"] = k["loop"]["attention_ms"] / k["generate"]["total_ms"]
        results.append(result)
        g, lo, st = result["generate_ms_per_step"], result["loop_ms_per_step"], result["loop_step_only_ms"]
        typer.echo(
            f"batch {size:3d}: generate {g['median']:7.2f} ms/step ({g['min']:.2f}-{g['max']:.2f})  "
            f"loop {lo['median']:7.2f} ({lo['min']:.2f}-{lo['max']:.2f})  "
            f"loop step only {st['median']:7.2f} ({st['min']:.2f}-{st['max']:.2f})  "
            f"loop/generate {result['ratio']:.2f}"
        )
        if kernels:
            k = result["kernels"]
            typer.echo(
                "           profiled, ms/step attention + rest: "
                f"generate {k['generate']['attention_ms']:.2f} + {k['generate']['rest_ms']:.2f}, "
                f"loop {k['loop']['attention_ms']:.2f} + {k['loop']['rest_ms']:.2f}; "
                f"rest ratio {k['rest_ratio']:.2f}, the loop's attention alone / generate "
                f"{k['attention_floor_ratio']:.2f}"
            )
    if json_path is not None:
        meta = {
            "model": str(model),
            "device": str(stages.device),
            "dtype": str(stages.dtype),
            "tokens": tokens,
            "static": static,
            "read_every": read_every,
            "kernels": kernels,
        }
        json_path.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    app()
