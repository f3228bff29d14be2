"""What a door test checks of a speaking rate (issue 90 item 1; the shared facts in
notes/SPEED.md): speech at ``speed`` is the speech at 1 divided by ``speed``, within a few vocoder
frames, and a translation's word timings lie inside its own speech. Plain values: sample counts
and milliseconds, whichever door they came through. Never the words (a random-weight model's
words mean nothing)."""

from __future__ import annotations

#: one vocoder frame: 20 ms of the model's 16 kHz audio
FRAME_S = 0.020
#: the tolerance: this many frames, plus this share of the expected length
SLACK_FRAMES = 2
SLACK_SHARE = 0.05


def rate_bounds(samples_at_1: int, speed: float, sample_rate_hz: int) -> tuple[float, float]:
    """The sample counts speech at ``speed`` may have, given the same speech at 1: ``samples_at_1 /
    speed`` within 2 frames and 5 %."""
    expected = samples_at_1 / speed
    slack = SLACK_FRAMES * FRAME_S * sample_rate_hz + SLACK_SHARE * expected
    return expected - slack, expected + slack


def at_rate(samples_at_1: int, samples: int, speed: float, sample_rate_hz: int) -> bool:
    lo, hi = rate_bounds(samples_at_1, speed, sample_rate_hz)
    return lo <= samples <= hi


def rate_failure(samples_at_1: int, samples: int, speed: float, sample_rate_hz: int) -> str:
    lo, hi = rate_bounds(samples_at_1, speed, sample_rate_hz)
    return f"{samples} samples at speed {speed}, {samples_at_1} at 1: expected {lo:.0f}..{hi:.0f}"


def long_enough(samples_at_1: int, sample_rate_hz: int, frames: int = 10) -> bool:
    """Speech long enough that a rate shows past the slack (a speech of a frame or two cannot)."""
    return samples_at_1 >= frames * FRAME_S * sample_rate_hz


def words_inside(words: list[tuple[int, int]], samples: int, sample_rate_hz: int) -> bool:
    """Each (start_ms, end_ms) in order, not reversed, inside the speech's ``samples``."""
    end_ms = samples * 1000 / sample_rate_hz
    last = 0
    for start, end in words:
        if not last <= start <= end <= end_ms + 1:  # +1: ms rounding
            return False
        last = start
    return True
