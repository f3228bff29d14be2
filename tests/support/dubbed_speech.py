"""A fake model's speech for dubbed-track tests, and the track it implies: each segment's speech
three times as long as the segment, at a level of its own (from its length), so every segment's
speech runs over the gap after it and into the next, and a speech in the wrong place shows."""

from __future__ import annotations

from typing import Any

import numpy as np

from translate_svc.model_api.requests import ModelInput
from translate_svc.settings.jobs import DubOverflow

#: speech this many times as long as its segment
LONGER = 3


def amplitude(samples: int) -> float:
    """Each segment's speech level, told apart by its length (so a speech in the wrong place shows)."""
    return 0.05 + (samples // 512 % 13) / 100


def speech_of(item: ModelInput, lang: str) -> np.ndarray:
    return np.full(LONGER * len(item.audio), amplitude(len(item.audio)), np.float32)


def implied(segments: list[dict[str, Any]], length: int, overflow: DubOverflow) -> np.ndarray:
    """The track the segments imply, made the plain way: a whole array, each speech at its start."""
    track = np.zeros(length, np.int64)
    starts = [s["start_ms"] * 16 for s in segments]
    for i, s in enumerate(segments):
        samples = (s["end_ms"] - s["start_ms"]) * 16  # the segment's length: its boundaries are whole ms here
        level = int(np.clip(np.float32(amplitude(samples)), -1, 1) * 32767)
        end = starts[i] + LONGER * samples
        if overflow is DubOverflow.CUT and i + 1 < len(segments):
            end = min(end, starts[i + 1])
        track[starts[i] : min(end, length)] += level
    return np.clip(track, -32768, 32767).astype(np.int16)


def speaking_runner() -> Any:
    """A ``FakeRunner`` whose speech is ``speech_of``'s (each segment's its own, three times as long)."""
    from tests.support.fake_runner import FakeRunner

    runner = FakeRunner()
    runner.waveform = speech_of
    return runner
