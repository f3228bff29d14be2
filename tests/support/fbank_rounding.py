"""How far the host's filterbank may be from transformers' ``SeamlessM4TFeatureExtractor``: in the
extractor's own float32 rounding of a mel bin's log energy carried through the normalisation. Shared
by the CPU tests (tests/model/stages/test_fbank.py) and the CUDA ones (tests/gpu/test_fbank_cuda.py)."""

from __future__ import annotations

import numpy as np
from transformers import SeamlessM4TFeatureExtractor

from translate_svc.model.stages.fbank import VARIANCE_FLOOR

#: how far features may be from the extractor's (the batch's are normalised in float64), in its own
#: float32 rounding of a mel bin's log energy carried through the normalisation (``rounding``);
#: measured: up to 2.9 on the shared speech
ROUNDINGS = 4


def rounding(extractor: SeamlessM4TFeatureExtractor, audio: np.ndarray) -> np.ndarray:
    """Per feature (160: frames stacked in pairs), one float32 rounding step of its mel bin's log
    energy (the extractor's own, before the normalisation) divided by what the normalisation
    divides it by: the bin's deviation over the segment, sqrt(variance + 1e-7). Float32 rounding
    is ~2e-6 a feature on a second of speech; a bin that hardly varies (a few frames, silence)
    magnifies it (silence: 3e-3, the extractor's own rounding of a constant's mean)."""
    logmel = extractor._extract_fbank_features(audio)
    step = np.spacing(np.abs(logmel).max(0)) / np.sqrt(logmel.var(0, ddof=1) + VARIANCE_FLOOR)
    return np.tile(step, 2)
