"""HiFi-GAN's width guessed on the host against the width read from the device (issue 88), counted on CPU.

The runner in the CUDA plan on this CPU (``tests/support/host_path.py``), warmed as ``host_costs``
warms it, then 32 live segments of 16 streams of the shared speech through the stepping decoder
one at a time and 8 together; every HiFi-GAN call's width (its bucket) is compared with the bucket
of the frames its rows hold (what a read of the device would have chosen), as rows x frames: the
extra arithmetic the guess costs, and the guesses that fell short (made again). Run from the
repository root::

    python -m benchmarks.tools.frame_guess /tmp/real-layers
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from benchmarks.tools.host_costs import warm
from benchmarks.tools.loadgen.clips import load_clips, stream_clips
from benchmarks.tools.loadgen.options import DEFAULT_FILES
from benchmarks.tools.profile_stages import segments_of
from tests.support.host_path import cuda_plan_runner, through_stepper
from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S
from translate_svc.model.stages.vocoder import MaskedVocoder
from translate_svc.model_api.requests import ModelInput


def main(model: Path) -> None:
    torch.set_num_threads(1)
    clips = load_clips(tuple(DEFAULT_FILES.split(",")))
    segs = [s for c in stream_clips(clips, 16, DEFAULT_SHIFT_S) for s in segments_of(c.pcm)]
    runner = cuda_plan_runner(model)
    warm(runner, False, 8, max(len(s) for s in segs) / 16000)
    voc = runner.stages._vocoder
    calls: list[tuple[int, int, int]] = []  # (real rows, width run, width the frames need)
    hifigan = MaskedVocoder.hifigan

    def spy(self: MaskedVocoder, started: Any, width: int) -> Any:
        need = int(started.frames[: started.real].max())  # on a CPU a free read
        calls.append((started.real, self._width(width), self._width(need)))
        return hifigan(self, started, width)

    MaskedVocoder.hifigan = spy  # type: ignore[method-assign]
    for size in (1, 8):
        calls.clear()
        before = voc.guess.misses
        through_stepper(runner, [ModelInput(s, ("spa",), None, True) for s in segs[:32]], size)
        guessed = sum(r * g for r, g, _ in calls)
        needed = sum(r * n for r, _, n in calls)
        wider = sum(1 for _, g, n in calls if g > n)
        print(
            f"size {size}: {len(calls)} HiFi-GAN calls (made-again included), rows x frames guessed {guessed} "
            f"against read {needed}: {guessed / needed:.3f}x; a wider bucket in {wider}, short "
            f"{voc.guess.misses - before}; frames a unit learned {voc.guess.per_unit:.3f}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
