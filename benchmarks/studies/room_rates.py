"""What a room listener's speaking rate costs (issue 90: ``ModelInput.renditions``): a segment's
speech made again at other rates from the same units (one more vocoder row each) against the same
segments alone, and against what a rate would cost as its own job (the segments run again at that
rate: an encoder pass, decoder rows, t2u and the vocoder). In process, the fast runner, every
variant in turn each round.

Run from the repository root::

    python -m benchmarks.studies.room_rates --model /tmp/real-layers --rounds 5
    python -m benchmarks.studies.room_rates --json out/room_rates.json   # the test checkpoint

The batch is six spans of the shared speech (2.3, 1.1, 2.3, 5, 3 and 1.2 s) into Spanish: ``alone``
(one speech row each), ``+1 rate`` (renditions at 1.5), ``+3 rates`` (1.5, 0.75, 1.25), and ``as
jobs`` (the six again at 1.5 beside them: twelve inputs, what the same listener would cost without
renditions). Each variant runs once untimed first (kernels for its shapes); reported: the median
round's milliseconds, the speech made (seconds), and the added milliseconds against ``alone``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import time
from pathlib import Path
from typing import Annotated

import typer

from tests.support.paths import SHARED_AUDIO, TEST_MODEL

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)

SPANS = (("jfk.flac", 0.3, 2.3), ("jfk.flac", 3.3, 4.4), ("jfk.flac", 5.4, 7.7), ("jfk.flac", 0.0, 5.0),
         ("silero_test.wav", 0.0, 3.0), ("silero_test.wav", 3.0, 4.2))  # fmt: skip


@app.command()
def main(
    rounds: Annotated[int, typer.Option(min=1, help="timed rounds (every variant, each round)")] = 5,
    lang: Annotated[str, typer.Option(help="the target language")] = "spa",
    device: Annotated[str, typer.Option(help="model.device")] = "cpu",
    dtype: Annotated[str, typer.Option(help="model.dtype")] = "float32",
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the result here")] = None,
) -> None:
    import torch

    from tests.support.speech import read_16k
    from translate_svc.model.decode.batch import LoopDecoder
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages
    from translate_svc.model_api.requests import ModelInput, ModelOutput

    stages = SeamlessStages(model, device=device, dtype=dtype)
    runner = SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=16))
    audio = {name: read_16k(SHARED_AUDIO / name) for name in {s[0] for s in SPANS}}
    items = [ModelInput(audio[n][int(a * 16000) : int(b * 16000)], (lang,), None) for n, a, b in SPANS]
    variants = {
        "alone": items,
        "+1 rate": [dataclasses.replace(i, renditions=((lang, 1.5),)) for i in items],
        "+3 rates": [dataclasses.replace(i, renditions=((lang, 1.5), (lang, 0.75), (lang, 1.25))) for i in items],
        "as jobs": [*items, *(dataclasses.replace(i, speed=1.5) for i in items)],
    }

    def speech_s(outs: list[ModelOutput]) -> float:
        waves = [w for o in outs for w in o.waveforms.values()] + [r.waveform for o in outs for r in o.renditions]
        return sum(len(w) for w in waves) / 16000

    load_start = os.getloadavg()
    made: dict[str, float] = {}
    with torch.inference_mode():
        for name, batch in variants.items():  # untimed: kernels for every shape
            made[name] = speech_s(runner.run(batch))
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, batch in variants.items():
                t = time.perf_counter()
                runner.run(batch)
                times[name].append((time.perf_counter() - t) * 1000)
    base = statistics.median(times["alone"])
    rows = [
        {
            "variant": name,
            "ms": round(statistics.median(t), 1),
            "speech_s": round(made[name], 2),
            "added_ms": round(statistics.median(t) - base, 1),
        }
        for name, t in times.items()
    ]
    result = {
        "model_dir": str(model),
        "device": device,
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "rows": len(items),
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "runs": rows,
    }
    print(f"{'variant':10}{'ms':>10}{'speech s':>10}{'added ms':>10}")
    for row in rows:
        print(f"{row['variant']:10}{row['ms']:>10}{row['speech_s']:>10}{row['added_ms']:>10}")
    print(f"load average (1, 5, 15 min): {load_start} at the start, {result['load_average_end']} at the end")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
