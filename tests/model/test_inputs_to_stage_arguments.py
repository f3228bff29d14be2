"""Requests into the stages' arguments (model/inputs.py, issue 69; its own test module since issue
89 item 4): the one place in model/ that reads a ``ModelInput`` for its features, its detection and
its text. Fake stages record what they are handed: no checkpoint, no model run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from translate_svc.model.inputs import detect, features_of, texts_of
from translate_svc.model_api.requests import Features, ModelInput, SourceText

pytestmark = pytest.mark.unit


def clip(seconds: float, value: float = 0.0) -> np.ndarray:
    return np.full(int(seconds * 16000), value, dtype=np.float32)


class FakeEncoder:
    def __init__(self, device_features: bool = False) -> None:
        self.device_features = device_features
        self.batches: list[list[Features]] = []
        self.audio_batches: list[list[int]] = []

    def features(self, per: Sequence[Features]) -> str:
        self.batches.append(list(per))
        return "batch"

    def audio_batch(self, audios: Sequence[np.ndarray]) -> str:
        self.audio_batches.append([len(a) for a in audios])
        return "audio batch"


class FakeStages:
    def __init__(self) -> None:
        self.speech_encoder = FakeEncoder()
        self.extracted: list[int] = []
        self.identified: list[tuple[list[int], list[tuple[str, ...]]]] = []

    def extract_features(self, audio: np.ndarray) -> Features:
        self.extracted.append(len(audio))
        return Features(np.zeros((len(audio) // 160, 80), np.float32), np.ones(len(audio) // 160, np.int64))

    def identify(self, audios: Sequence[np.ndarray], candidates: Sequence[tuple[str, ...]]) -> list[dict[str, float]]:
        self.identified.append(([len(a) for a in audios], list(candidates)))
        return [{c[0] if c else "eng": 1.0} for c in candidates]


def test_features_computed_ahead_are_used_and_the_others_computed_here() -> None:
    stages = FakeStages()
    ahead = Features(np.ones((7, 80), np.float32), np.ones(7, np.int64))
    inputs = [
        ModelInput(clip(1.0), ("fra",), features=ahead),
        ModelInput(clip(0.5), ("fra",)),
    ]
    assert features_of(stages, inputs) == "batch"  # type: ignore[arg-type,comparison-overlap]
    assert stages.extracted == [8000]  # the second input's alone
    (batch,) = stages.speech_encoder.batches
    assert batch[0] is ahead and batch[1].values.shape == (50, 80)


def test_an_encoder_that_computes_features_gets_the_audio_unless_an_input_brought_its_own() -> None:
    """``device_features`` (the CUDA plan): the batch's audio goes to the encoder, which computes
    the features in its own call; an input with features computed ahead keeps the host's path."""
    stages = FakeStages()
    stages.speech_encoder = FakeEncoder(device_features=True)
    plain = [ModelInput(clip(1.0), ("fra",)), ModelInput(clip(0.5), ("fra",))]
    assert features_of(stages, plain) == "audio batch"  # type: ignore[arg-type,comparison-overlap]
    assert stages.speech_encoder.audio_batches == [[16000, 8000]] and stages.extracted == []
    ahead = Features(np.ones((7, 80), np.float32), np.ones(7, np.int64))
    mixed = [ModelInput(clip(1.0), ("fra",), features=ahead), plain[1]]
    assert features_of(stages, mixed) == "batch"  # type: ignore[arg-type,comparison-overlap]
    assert stages.extracted == [8000] and stages.speech_encoder.batches[0][0] is ahead


def test_only_the_inputs_that_ask_are_identified_in_one_batch_keyed_by_their_index() -> None:
    stages = FakeStages()
    inputs = [
        ModelInput(clip(1.0), ("fra",)),
        ModelInput(clip(2.0), ("fra",), transcript_language="*", detect=("spa", "deu")),
        ModelInput(clip(0.5), ("fra",)),
        ModelInput(clip(3.0), ("fra",), detect=()),
    ]
    scores, ms = detect(stages, inputs)  # type: ignore[arg-type]
    assert stages.identified == [([32000, 48000], [("spa", "deu"), ()])]
    assert scores == {1: {"spa": 1.0}, 3: {"eng": 1.0}}
    assert ms >= 0.0


def test_no_input_asking_means_no_identifier_call_and_no_time() -> None:
    stages: Any = FakeStages()
    assert detect(stages, [ModelInput(clip(1.0), ("fra",))]) == ({}, 0.0)
    assert stages.identified == []


def test_texts_are_read_from_text_inputs_and_a_speech_input_is_refused() -> None:
    hello = SourceText("hello there", "eng")
    assert texts_of([ModelInput(clip(0.0), ("fra",), text=hello)]) == [hello]
    with pytest.raises(ValueError, match="not a text input"):
        texts_of([ModelInput(clip(0.0), ("fra",), text=hello), ModelInput(clip(1.0), ("fra",))])
