"""What the model's dtype costs on this machine: float32 against bfloat16, in one run.

Run from the repository root::

    python -m benchmarks.studies.dtype_cost                              # the test checkpoint, on CPU
    python -m benchmarks.studies.dtype_cost --model-dir model_cache/seamless-m4t-v2-large --json out/dtype.json

Each dtype runs in a fresh Python process (so its memory is its own, not what the other left
behind), one after the other. Per dtype: the seconds ``SeamlessStages`` takes to load the
checkpoint; the process's resident memory (RSS) before the load (torch and transformers imported),
after it, and its peak after the runs; the model time per segment: over ``--repeats`` passes
(after one untimed run of each segment: on CPU oneDNN builds its kernels for a new shape on the
first call), the median pass's milliseconds per segment, each segment run alone (speech into one
language plus its transcript), and all segments in one ``run``. Segments: every segment the server's
VAD cuts from the shared files. On CPU a bfloat16 runner runs each input alone
(``SeamlessStages.exact_rows``), so its batch column shows what that costs. The load average is
printed with the table: on a shared machine the figures move with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from tests.support.paths import REPO, SHARED_AUDIO, TEST_MODEL

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
DTYPES = ("float32", "bfloat16")
FILES = ("jfk.flac", "silero_test.wav")


def rss_mib() -> tuple[float, float]:
    """(current, peak) resident memory of this process, MiB (Linux: /proc/self/status)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def measure(model_dir: Path, dtype: str, repeats: int) -> dict[str, Any]:
    """One dtype, in this process: load time, memory and model time per segment."""
    import numpy as np
    import soundfile as sf
    import torch

    from tests.support.speech import vad_segments
    from translate_svc.audio.resample import resample
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages
    from translate_svc.model_api.requests import ModelInput

    segments: list[np.ndarray] = []
    for name in FILES:
        audio, rate = sf.read(SHARED_AUDIO / name, dtype="float32", always_2d=True)
        x = audio.mean(axis=1)
        x = x if rate == 16000 else resample(x, rate, 16000)
        segments += [e.samples for e in asyncio.run(vad_segments(x))]
    before, _ = rss_mib()
    t0 = time.perf_counter()
    runner = SeamlessRunner(SeamlessStages(model_dir, device="cpu", dtype=dtype))
    load_s = time.perf_counter() - t0
    loaded, _ = rss_mib()
    items = [ModelInput(a, ("spa",), "eng") for a in segments]
    for item in items:  # untimed: kernels for each shape
        runner.run([item])
    alone: list[float] = []  # per pass over the segments, each alone: ms per segment
    for _ in range(repeats):
        t = time.perf_counter()
        for item in items:
            runner.run([item])
        alone.append((time.perf_counter() - t) * 1000 / len(items))
    runner.run(items)
    batch: list[float] = []
    for _ in range(repeats):
        t = time.perf_counter()
        runner.run(items)
        batch.append((time.perf_counter() - t) * 1000 / len(items))
    after, peak = rss_mib()
    return {
        "dtype": dtype,
        "param_dtype": str(next(runner.stages.model.parameters()).dtype).removeprefix("torch."),
        "exact_rows": runner.stages.exact_rows,
        "torch_threads": torch.get_num_threads(),
        "load_s": round(load_s, 3),
        "rss_before_load_mib": round(before, 1),
        "rss_loaded_mib": round(loaded, 1),
        "rss_after_runs_mib": round(after, 1),
        "rss_peak_mib": round(peak, 1),
        "segments": len(items),
        "segment_audio_s_mean": round(float(np.mean([len(a) / 16000 for a in segments])), 2),
        "alone_ms_per_segment": round(statistics.median(alone), 1),
        "batch_ms_per_segment": round(statistics.median(batch), 1),
    }


@app.command()
def main(
    model_dir: Annotated[Path, typer.Option(help="checkpoint directory")] = TEST_MODEL,
    repeats: Annotated[int, typer.Option(min=1, help="timed runs of each segment (and of the batch)")] = 5,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the result here")] = None,
    child: Annotated[str | None, typer.Option(hidden=True)] = None,
) -> None:
    if child is not None:  # one dtype, in a fresh process
        print(json.dumps(measure(model_dir, child, repeats)))
        return
    load_start = os.getloadavg()
    results = []
    for dtype in DTYPES:
        cmd = [sys.executable, "-m", "benchmarks.studies.dtype_cost", "--model-dir", str(model_dir)]
        done = subprocess.run(
            [*cmd, "--repeats", str(repeats), "--child", dtype], capture_output=True, text=True, cwd=REPO, check=True
        )
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    result = {
        "model_dir": str(model_dir),
        "cpus": os.cpu_count(),
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "runs": results,
    }
    keys = [k for k in results[0] if k != "dtype"]
    print(f"{'':30}" + "".join(f"{r['dtype']:>12}" for r in results))
    for key in keys:
        print(f"{key:30}" + "".join(f"{r[key]!s:>12}" for r in results))
    print(f"load average (1, 5, 15 min): {load_start} at the start, {result['load_average_end']} at the end")
    print(json.dumps(result, indent=2))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
