"""Input frames padded up to a length bucket (``SeamlessStages(pad_frames=True)``, the CUDA shapes
experiment of benchmarks/tools/profile_stages.py ``--pad-frames``): the encoder sees repeating
shapes, and every row still equals ``generate`` on it alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.support.reference import hf_generate, plain_reference
from tests.support.speech import read_16k
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.shapes import frame_bucket
from translate_svc.model_api.requests import ModelInput

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]


def test_rows_padded_to_a_frame_bucket_equal_generate_alone_and_batched(
    test_model_dir: Path, shared_audio: Path
) -> None:
    # CUDA's vocoder (masked, batched) with its lengths bucketed too: the experiment's configuration
    stages = SeamlessStages(
        test_model_dir, device="cpu", dtype="float32", pad_frames=True, batch_vocoder=True, pad_shapes=True
    )
    runner = SeamlessRunner(stages)
    x = read_16k(shared_audio / "jfk.flac")
    audios = [x[int(a * 16000) : int(b * 16000)] for a, b in [(0.3, 2.3), (3.3, 4.4), (5.4, 7.7)]]
    items = [ModelInput(a, ("spa",), "eng") for a in audios]
    own = [len(runner.extract_features(a).values) for a in audios]
    with torch.inference_mode():
        feats = stages.speech_encoder.features([stages.extract_features(a) for a in audios]).values
    assert feats.shape[1] == frame_bucket(max(own)) > max(own)  # padded past the longest row
    reference = plain_reference(test_model_dir)
    batched = runner.run(items)
    for item, b in zip(items, batched, strict=True):
        alone = runner.run([item])[0]
        text, wave = hf_generate(reference, item.audio, "spa")
        transcript, _ = hf_generate(reference, item.audio, "eng", speech=False)
        for how, out in {"alone": alone, "batched": b}.items():
            assert out.texts["spa"] == text, how
            assert out.transcript == transcript, how
            assert out.waveforms["spa"].shape == wave.shape, how
            np.testing.assert_allclose(out.waveforms["spa"], wave, atol=1e-4, err_msg=how)
