"""What the engine needs from a model: the ``Runner`` Protocol and the job types that cross it.

``model/`` implements the Protocol (``SeamlessRunner``); the engine and the sessions only know this
module, so importing them never loads torch, and their tests run on a fake runner that implements
the same Protocol (mypy checks it).

Every type here is a frozen dataclass of numpy arrays and plain values: safe to hand from the event
loop to the model thread and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from translate_svc.types import Language, ModelInfo


@dataclass(frozen=True, eq=False)
class Features:
    """One segment's model input features (``Runner.extract_features``), unpadded."""

    values: np.ndarray  # (frames, feature_dim) float32
    mask: np.ndarray  # (frames,) int


@dataclass(frozen=True, eq=False)
class ModelInput:
    """One segment: 16 kHz mono float32 samples and what to produce from them."""

    audio: np.ndarray
    targets: tuple[str, ...]
    transcript_language: str | None = None
    speech: bool = True
    speaker_id: int = 0
    #: computed ahead (off the model thread) when given; else computed in ``run``
    features: Features | None = None


@dataclass(frozen=True, eq=False)
class ModelOutput:
    transcript: str | None
    texts: dict[str, str]
    #: language -> float32 waveform at MODEL_SAMPLE_RATE (absent when speech was not asked for)
    waveforms: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelCard:
    """What the loaded model offers, read once at load: languages, voices, identity. Read-only."""

    info: ModelInfo
    languages: tuple[Language, ...]
    num_speakers: int

    @property
    def text_codes(self) -> frozenset[str]:
        """Languages the text decoder can write (targets, and the transcript's language)."""
        return frozenset(lang.code for lang in self.languages if lang.text_output)

    @property
    def speech_codes(self) -> frozenset[str]:
        """Languages the vocoder can speak."""
        return frozenset(lang.code for lang in self.languages if lang.speech_output)


class Runner(Protocol):
    """The model behind the engine. ``run`` is called from exactly one thread (the engine's model
    thread); ``extract_features`` must be thread-safe (it runs on a CPU thread beside it)."""

    @property
    def card(self) -> ModelCard: ...

    def extract_features(self, audio: np.ndarray) -> Features: ...

    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]: ...
