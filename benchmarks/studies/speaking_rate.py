"""What the speaking rate costs (issue 90 item 1, model/stages/vocoder.py ``at_rate``): the speech
stage's vocoder at 1.0 against 1.5 and 0.75, in process, interleaved round by round.

Run from the repository root::

    python -m benchmarks.studies.speaking_rate --model /tmp/real-layers --rounds 7
    python -m benchmarks.studies.speaking_rate --json out/speaking_rate.json   # the test checkpoint

The units are made once (t2u over the decodes of 2.3 s, 1.1 s, 2.3 s and 5 s spans of jfk.flac and
3 s and 1.2 s spans of silero_test.wav, into Spanish), then each round vocodes all of them at every
rate in turn, in each vocoder mode (``per row``: one call per row, the CPU default; ``batched``:
one masked call, the CUDA default), after one untimed call of each (oneDNN builds its kernels for
a new shape on the first call, and a rate changes the frame buckets). Reported per mode and rate:
the median round's milliseconds for the call, the speech it made (seconds), and milliseconds per
second of speech; and the rate's own arithmetic (``at_rate`` on the call's durations, alone), in
microseconds. The load average is printed with the table: on a shared machine the figures move
with it.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from tests.support.paths import SHARED_AUDIO, TEST_MODEL

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)

SPANS = (("jfk.flac", 0.3, 2.3), ("jfk.flac", 3.3, 4.4), ("jfk.flac", 5.4, 7.7), ("jfk.flac", 0.0, 5.0),
         ("silero_test.wav", 0.0, 3.0), ("silero_test.wav", 3.0, 4.2))  # fmt: skip
RATES = (1.0, 1.5, 0.75)
MODES = (("per row", False), ("batched", True))


@app.command()
def main(
    rounds: Annotated[int, typer.Option(min=1, help="timed rounds (every mode and rate, each round)")] = 7,
    lang: Annotated[str, typer.Option(help="the target language")] = "spa",
    device: Annotated[str, typer.Option(help="model.device")] = "cpu",
    dtype: Annotated[str, typer.Option(help="model.dtype")] = "float32",
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the result here")] = None,
) -> None:
    import torch

    from tests.support.speech import read_16k
    from translate_svc.model.stages.seamless import SeamlessStages
    from translate_svc.model.stages.vocoder import at_rate
    from translate_svc.model_api.rows import bare_rows

    stages = SeamlessStages(model, device=device, dtype=dtype)
    audio = {name: read_16k(SHARED_AUDIO / name) for name in {s[0] for s in SPANS}}
    spans = [audio[name][int(a * 16000) : int(b * 16000)] for name, a, b in SPANS]
    with torch.inference_mode():
        batch = stages.speech_encoder.features([stages.extract_features(s) for s in spans])
        enc, mask = stages.speech_encoder.encode(batch), batch.mask
        plan = bare_rows([lang] * len(spans), [()] * len(spans), [len(s) / 16000 for s in spans])
        got = stages.units(enc, mask, stages.decoder.decode(enc, mask, plan))
    units, counts = got.units, got.counts
    langs, speakers = [lang] * len(spans), [0] * len(spans)
    voc = stages._vocoder
    saved = voc.batched, voc.max_padding

    def call(batched: bool, rate: float) -> tuple[float, float, Any]:
        voc.batched, voc.max_padding = batched, (1000.0 if batched else saved[1])
        t = time.perf_counter()
        with torch.inference_mode():
            out = stages.vocode(units, counts, langs, speakers, [rate] * len(spans))
        ms = (time.perf_counter() - t) * 1000
        return ms, sum(len(w) for w in out.waves) / stages.sample_rate, out

    load_start = os.getloadavg()
    durations: Any = None
    try:
        for _, batched in MODES:  # untimed: kernels for every shape each rate meets
            for rate in RATES:
                _, _, out = call(batched, rate)
                if rate == 1.0:
                    width = max(len(f) for f in out.frames)
                    durations = torch.zeros((len(out.frames), width), dtype=torch.long)
                    for r, f in enumerate(out.frames):
                        durations[r, : len(f)] = torch.from_numpy(f)
        times: dict[tuple[str, float], list[float]] = {}
        speech: dict[tuple[str, float], float] = {}
        for _ in range(rounds):
            for name, batched in MODES:
                for rate in RATES:
                    ms, seconds, _ = call(batched, rate)
                    times.setdefault((name, rate), []).append(ms)
                    speech[(name, rate)] = seconds
    finally:
        voc.batched, voc.max_padding = saved
    arithmetic: dict[float, float] = {}
    for rate in RATES:  # the rate's own arithmetic on this call's durations, alone
        tensor = torch.full((durations.shape[0],), rate, dtype=torch.float64)
        at_rate(durations, tensor)
        t = time.perf_counter()
        for _ in range(200):
            at_rate(durations, tensor)
        arithmetic[rate] = (time.perf_counter() - t) / 200 * 1e6
    rows = []
    for name, _ in MODES:
        for rate in RATES:
            ms = statistics.median(times[(name, rate)])
            rows.append(
                {
                    "mode": name,
                    "speed": rate,
                    "ms": round(ms, 1),
                    "speech_s": round(speech[(name, rate)], 2),
                    "ms_per_speech_s": round(ms / speech[(name, rate)], 1),
                    "at_rate_us": round(arithmetic[rate], 1),
                }
            )
    result = {
        "model_dir": str(model),
        "device": device,
        "dtype": dtype,
        "torch_threads": torch.get_num_threads(),
        "rows": len(spans),
        "units": sum(counts),
        "rounds": rounds,
        "cpus": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "runs": rows,
    }
    print(f"{'mode':10}{'speed':>7}{'ms':>10}{'speech s':>10}{'ms/speech s':>13}{'at_rate us':>12}")
    for row in rows:
        print(
            f"{row['mode']:10}{row['speed']:>7}{row['ms']:>10}{row['speech_s']:>10}"
            f"{row['ms_per_speech_s']:>13}{row['at_rate_us']:>12}"
        )
    print(f"load average (1, 5, 15 min): {load_start} at the start, {result['load_average_end']} at the end")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
