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

from translate_svc.types import Language, ModelInfo, Term


@dataclass(frozen=True, eq=False)
class Features:
    """One segment's model input features (``Runner.extract_features``), unpadded."""

    values: np.ndarray  # (frames, feature_dim) float32
    mask: np.ndarray  # (frames,) int


#: ``ModelInput.transcript_language`` with ``detect``: the transcript in the language detected
DETECTED = "*"


@dataclass(frozen=True, eq=False)
class ModelInput:
    """One segment: 16 kHz mono float32 samples and what to produce from them."""

    audio: np.ndarray
    #: empty: ASR only (the transcript row alone)
    targets: tuple[str, ...]
    #: the transcript's language (a model code, or DETECTED); None: no transcript
    transcript_language: str | None = None
    speech: bool = True
    speaker_id: int = 0
    #: detect the spoken language among these (empty: any the identifier can pick); the transcript
    #: is then decoded in the language chosen; None: no detection
    detect: tuple[str, ...] | None = None
    #: phrases to boost or keep (``types.Term``); empty: the plain greedy decode
    terms: tuple[Term, ...] = ()
    #: computed ahead (off the model thread) when given; else computed in ``run``
    features: Features | None = None

    @property
    def text_rows(self) -> int:
        """Text decoder rows this segment takes: one per language, the transcript's included."""
        extra = self.transcript_language is not None and self.transcript_language not in self.targets
        return len(set(self.targets)) + int(extra)


@dataclass(frozen=True, eq=False)
class ModelOutput:
    transcript: str | None
    texts: dict[str, str]
    #: language -> float32 waveform at MODEL_SAMPLE_RATE (absent when speech was not asked for)
    waveforms: dict[str, np.ndarray] = field(default_factory=dict)
    #: with ``detect``: each candidate's probability (the chosen one is the highest)
    detected: dict[str, float] | None = None
    #: the batch's time in text-to-unit and the vocoder, and in language identification
    speech_ms: float = 0.0
    language_id_ms: float = 0.0


@dataclass(frozen=True)
class ModelCard:
    """What the loaded model offers, read once at load: languages, voices, identity. Read-only."""

    info: ModelInfo
    languages: tuple[Language, ...]
    num_speakers: int
    #: the spoken-language identifier, when one is installed (``Language.detectable`` says what it picks)
    identifier: ModelInfo | None = None

    @property
    def detectable_codes(self) -> frozenset[str]:
        return frozenset(lang.code for lang in self.languages if lang.detectable)

    @property
    def text_codes(self) -> frozenset[str]:
        """Languages the text decoder can write (targets, and the transcript's language)."""
        return frozenset(lang.code for lang in self.languages if lang.text_output)

    @property
    def speech_codes(self) -> frozenset[str]:
        """Languages the vocoder can speak."""
        return frozenset(lang.code for lang in self.languages if lang.speech_output)


class LanguageIdentifier(Protocol):
    """Spoken-language identification of segments (``model/lid.py``: MMS-LID). Called on the
    engine's model thread only, on a batch of segments, before their text is decoded."""

    @property
    def languages(self) -> frozenset[str]:
        """The model codes (SeamlessM4T's: ``eng``, ``cmn``...) it can pick."""
        ...

    @property
    def name(self) -> str:
        """The identifier's checkpoint, for logs and ListLanguages."""
        ...

    @property
    def info(self) -> ModelInfo:
        """Its checkpoint's identity (ListLanguages' ``language_identifier``)."""
        ...

    def identify(self, audios: Sequence[np.ndarray], candidates: Sequence[tuple[str, ...]]) -> list[dict[str, float]]:
        """For each 16 kHz mono float32 segment, a probability per candidate (model codes, each in
        ``languages``): the identifier's softmax restricted to the candidates (they sum to 1). An
        empty candidate tuple means every language in ``languages``."""
        ...


class Runner(Protocol):
    """The model behind the engine. ``run`` is called from exactly one thread (the engine's model
    thread); ``extract_features`` must be thread-safe (it runs on a CPU thread beside it)."""

    @property
    def card(self) -> ModelCard: ...

    def extract_features(self, audio: np.ndarray) -> Features: ...

    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]: ...
