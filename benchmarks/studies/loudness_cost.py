"""What bringing a dubbed track to a loudness costs (``audio/loudness.py``), per minute of track: a
measuring pass (the BS.1770 meter), a normaliser pass (gain and the true-peak limiter), and
``plan_loudness`` for each preset (its passes: none beyond the first measurement where the limiter
stays idle), over ten minutes of jfk.flac tiled, mono at 16 kHz (the dub alone: the speech's own
rate) and at 48 kHz (the rate a voice-over mix or an Opus track is written at). The process's CPU
time (``time.process_time``), one thread: what ``media.cpu_s_per_loudness_minute`` budgets.

Run from the repository root::

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.studies.loudness_cost
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import soxr

from tests.support.paths import SHARED_AUDIO
from translate_svc.audio.loudness import PRESETS, measure, normalised, plan_loudness
from translate_svc.client_cli.decode import load_pcm16k

MINUTES = 10.0


def _cpu(work: Callable[[], object]) -> float:
    t = time.process_time()
    work()
    return time.process_time() - t


def _study(track: np.ndarray, rate: int) -> None:
    def pieces() -> Iterable[np.ndarray]:
        return (track[i : i + rate] for i in range(0, len(track), rate))  # a second at a time, as the remux

    metered = _cpu(lambda: measure(pieces(), rate))
    limited = _cpu(lambda: list(normalised(pieces(), rate, 1, 6.0, -1.0)))
    print(
        f"{rate} Hz: measure {metered / MINUTES:.3f} s CPU a minute; normalise (limiting) "
        f"{limited / MINUTES:.3f} s a minute"
    )
    for name, target in sorted(PRESETS.items()):
        t = time.process_time()
        plan = plan_loudness(pieces, rate, 1, target)
        cpu = time.process_time() - t
        print(
            f"  {name}: plan {cpu / MINUTES:.3f} s CPU a minute; gain {plan.gain_db:+.2f} dB, "
            f"{plan.before_lufs:.2f} -> {plan.after_lufs:.2f} LUFS, true peak {plan.after_dbtp:.2f} dBTP"
        )


def main() -> None:
    speech = load_pcm16k(SHARED_AUDIO / "jfk.flac").astype(np.float64) / 32768.0
    for rate in (16000, 48000):
        one = speech if rate == 16000 else np.asarray(soxr.resample(speech, 16000, rate), np.float64)
        track = np.tile(one, int(np.ceil(MINUTES * 60 * rate / len(one))))[: int(MINUTES * 60 * rate)]
        _study(track, rate)


if __name__ == "__main__":
    main()
