"""From requests to the stages' arguments: the one place in model/ where a ``ModelInput`` is read
for its features, its language detection and its text, so that no stage takes a request.
The runners (model/runner.py, model/simultaneous.py) call these, then hand the stages tensors and
a plan (model_api/rows.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from translate_svc.model.stages.encoders import EncoderBatch
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput, SourceText


def features_of(stages: SeamlessStages, inputs: Sequence[ModelInput]) -> EncoderBatch:
    """The inputs' features, padded into one batch: computed ahead where given, else here; on the
    encoder's device inside its call (``SpeechEncoder.audio_batch``) where it computes them and
    no input brought its own."""
    speech = stages.speech_encoder
    if speech.device_features and all(i.features is None for i in inputs):
        return speech.audio_batch([i.audio for i in inputs])
    per = [i.features if i.features is not None else stages.extract_features(i.audio) for i in inputs]
    return speech.features(per)


def detect(stages: SeamlessStages, inputs: Sequence[ModelInput]) -> tuple[dict[int, dict[str, float]], float]:
    """The spoken language of the inputs that ask (``detect``), in one identifier batch: each one's
    scores by input index, and the milliseconds it took."""
    asking = [k for k, item in enumerate(inputs) if item.detect is not None]
    if not asking:
        return {}, 0.0
    t0 = time.perf_counter()
    scores = stages.identify([inputs[k].audio for k in asking], [inputs[k].detect or () for k in asking])
    return dict(zip(asking, scores, strict=True)), (time.perf_counter() - t0) * 1000


def texts_of(inputs: Sequence[ModelInput]) -> list[SourceText]:
    """Text inputs' texts (``ModelInput.text``)."""
    out = []
    for item in inputs:
        if item.text is None:
            raise ValueError("not a text input: ModelInput.text is None")
        out.append(item.text)
    return out
