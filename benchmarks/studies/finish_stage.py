"""The finish stage against finishing inline (issue 70 item 2, model/finish/stage.py), in process:
a burst of segments through the stepping decoder, one admitted at each tick (as a queue of finals
would be), with ``finish_thread`` off and on, interleaved, ``--rounds`` times.

Run from the repository root::

    python -m benchmarks.studies.finish_stage --device cpu --rounds 3

Reported per mode and round: when the last segment of the burst came back and when its median one
did (seconds from the first admission), the model thread's ticks, and the stage's calls. The
segments: 2.3 s, 1.1 s, 2.3 s and 5 s spans of jfk.flac and 3 s and 1.2 s spans of
silero_test.wav, in turn, each to ``--targets`` with the transcript and speech.
"""

from __future__ import annotations

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
    segments: Annotated[int, typer.Option(min=1, help="segments in the burst")] = 16,
    rounds: Annotated[int, typer.Option(min=1, help="rounds (inline, then the stage, each round)")] = 3,
    targets: Annotated[str, typer.Option(help="target languages, comma-separated")] = "spa",
    max_jobs: Annotated[int, typer.Option(min=1, help="the stage's jobs a call at most")] = 8,
    device: Annotated[str, typer.Option(help="model.device")] = "cpu",
    dtype: Annotated[str, typer.Option(help="model.dtype")] = "float32",
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
) -> None:
    from tests.support.speech import read_16k
    from translate_svc.model.decode.batch import LoopDecoder
    from translate_svc.model.runner import SeamlessRunner
    from translate_svc.model.stages.seamless import SeamlessStages
    from translate_svc.model.stepping import SteppingDecoder
    from translate_svc.model_api.requests import ModelInput

    stages = SeamlessStages(model, device=device, dtype=dtype)
    runner = SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=64))
    audio = {name: read_16k(SHARED_AUDIO / name) for name in {s[0] for s in SPANS}}
    spans = [audio[name][int(a * 16000) : int(b * 16000)] for name, a, b in SPANS]
    langs = tuple(targets.split(","))
    items = [ModelInput(spans[k % len(spans)], langs, "eng") for k in range(segments)]
    runner.run(items[: len(SPANS)])  # every stage once before the first timed burst
    for r in range(1, rounds + 1):
        for thread in (False, True):
            stepper = SteppingDecoder(runner, slots=64, finish_thread=thread)
            if stepper.stage is not None:
                stepper.stage.max_jobs = max_jobs
            t0 = time.perf_counter()
            done: list[float] = []
            failed = ticks = k = 0
            while k < len(items) or len(stepper):
                if k < len(items):
                    stepper.admit(k, items[k])
                    k += 1
                for _, output in stepper.tick(4):
                    done.append(time.perf_counter() - t0)
                    failed += output is None
                ticks += 1
            calls = "-" if stepper.stage is None else stepper.stage.batches
            stepper.close()
            print(
                f"round {r} finish {'thread' if thread else 'inline'}: last {max(done):.2f} s, median"
                f" {statistics.median(done):.2f} s, {ticks} ticks, stage calls {calls}, failed {failed}",
                flush=True,
            )


if __name__ == "__main__":
    app()
