"""A stream's VAD as it stood at a window boundary: silero's recurrent state and context, and the
segmenter's hysteresis (whether speech is on, and where a pause in progress began), so that a
stream started there with it scores and segments every later window as the stream it was taken
from (a resumed job: ``jobs/checkpoints.py``). Plain values: the arrays are copies, never shared
with a live state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from translate_svc.vad.segmenter import WINDOW_SAMPLES


@dataclass(frozen=True, eq=False)
class VadSnapshot:
    """Taken after the windows before ``sample`` (16 kHz, on the stream it was taken from; a whole
    number of windows) were scored and segmented."""

    sample: int
    #: silero's recurrent state (2, 1, 128) and its last 64 samples, float32
    rnn: np.ndarray
    context: np.ndarray
    #: the segmenter's hysteresis: speech on, and the first silent window of a pause in progress
    triggered: bool
    temp_end: int | None

    def __post_init__(self) -> None:
        if self.sample % WINDOW_SAMPLES:
            raise ValueError(f"a VAD snapshot is taken on a window boundary, not at sample {self.sample}")

    def moved(self, start: int) -> VadSnapshot:
        """The snapshot on a stream that starts at ``start`` of this one's (negative: one that
        starts before it); a pause's start moves with it (before the stream's start, where it began
        before that)."""
        temp_end = None if self.temp_end is None else self.temp_end - start
        return VadSnapshot(self.sample - start, self.rnn, self.context, self.triggered, temp_end)
