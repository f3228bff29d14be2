"""The watermark on synthetic speech, added where the vocoder makes it.

Every waveform the vocoder returns (``SeamlessStages.vocode``: a segment's speech, its renditions,
a respeak's, a simultaneous chunk's) is marked here, on the host, before anything encodes it: so
every door (streams, clips, texts, rooms, phones, the OpenAI and Riva doors, MCP, jobs) sends
marked speech and none of them knows of it. The finish marks all the rows of one finish call in
one batch (``SeamlessStages.mark_waves``), the other callers one batch per vocoder call.

``model.watermark`` (an operator's setting, never a caller's option) picks the mark: ``perth``, the
PerTh network of translate_svc/marking, whose weights load once per process at the model's load
(``speech_marker``), so a missing wheel fails the start, not a request.

Thread safety: a ``SpeechMarker`` only reads its watermarker, which any number of threads may run
at once; it runs on the stages' thread (the model thread, or the finish stage's worker), never on
the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np

from translate_svc.marking.watermarker import Watermarker, shared
from translate_svc.types import MODEL_SAMPLE_RATE

logger = logging.getLogger(__name__)


class SpeechMarker:
    """Marks the vocoder's waves with one watermarker; ``name`` says which mark (the card's)."""

    def __init__(self, watermarker: Watermarker) -> None:
        self._watermarker = watermarker
        self.name = watermarker.name

    def mark(self, waves: Sequence[np.ndarray], rate: int) -> list[np.ndarray]:
        """Each wave with the mark added (same length and rate), the network run on them as one
        batch; empty waves come back as they are."""
        out = list(waves)
        sounding = [i for i, wave in enumerate(out) if len(wave)]
        if sounding:
            marked = self._watermarker.mark_many([out[i] for i in sounding], rate)
            for i, wave in zip(sounding, marked, strict=True):
                out[i] = wave
        return out


def speech_marker(kind: Literal["perth", "off"]) -> SpeechMarker | None:
    """The marker ``model.watermark`` picks, loaded and run once (its first call's one-off costs
    paid at start, not by a request); None for ``off``. Model thread, at load."""
    if kind == "off":
        logger.warning("synthetic speech is NOT watermarked (model.watermark: off)")
        return None
    marker = SpeechMarker(shared())
    marker.mark([np.zeros(MODEL_SAMPLE_RATE, np.float32)], MODEL_SAMPLE_RATE)
    logger.info("synthetic speech is watermarked: %s (model.watermark: %s)", marker.name, kind)
    return marker


__all__ = ["SpeechMarker", "speech_marker"]
