"""The encoder stages (model/stages/encoders.py, issues 36, 69 and 88; its own test module since
issue 89 item 4) on the test checkpoint, float32, CPU: a batch's features padded with zeros and
masked, each row's own frames carried with it; each row of a padded batch encoded as it is alone;
the encoder's frames known on the host as the model computes them; rows padded to a power of two
with copies of a real row; text tokenized each in its own language and its modality set back after.
Noise as audio: only equalities and counts, nothing about words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from translate_svc.model.stages.encoders import SpeechEncoder
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.shapes import frame_bucket, ladder
from translate_svc.model_api.requests import SourceText

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stages(test_model_dir: Path) -> SeamlessStages:
    return SeamlessStages(test_model_dir, device="cpu", dtype="float32", pad_frames=False)


def noise(seconds: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)


def test_a_batch_pads_each_rows_features_with_zeros_and_keeps_its_own_frames(stages: SeamlessStages) -> None:
    per = [stages.extract_features(noise(s, k)) for k, s in enumerate((1.0, 0.43))]
    batch = stages.speech_encoder.features(per)
    own = [f.values.shape[0] for f in per]
    assert batch.values.shape == (2, max(own), per[0].values.shape[1])
    assert batch.own_frames.tolist() == own
    assert batch.mask_frames == tuple(int(f.mask.sum()) for f in per)
    assert batch.mask[1, own[1] :].eq(0).all() and batch.values[1, own[1] :].eq(0).all()
    assert torch.equal(batch.values[1, : own[1]], torch.from_numpy(per[1].values))


def test_each_row_of_a_padded_batch_encodes_as_it_does_alone(stages: SeamlessStages) -> None:
    audio = [noise(1.2, 1), noise(0.5, 2), noise(0.77, 3)]
    per = [stages.extract_features(a) for a in audio]
    with torch.inference_mode():
        together = stages.speech_encoder.encode(stages.speech_encoder.features(per))
        alone = [stages.speech_encoder.encode(stages.speech_encoder.features([f])) for f in per]
    for row, single in enumerate(alone):
        frames = single.shape[1]
        assert torch.allclose(together[row, :frames], single[0], atol=1e-5), row


def test_the_encoders_frames_are_known_on_the_host_as_the_model_counts_them(stages: SeamlessStages) -> None:
    per = [stages.extract_features(noise(s, k)) for k, s in enumerate((2.0, 1.01, 0.3))]
    batch = stages.speech_encoder.features(per)
    counted = stages.model._compute_sub_sample_lengths_from_attention_mask(batch.mask).tolist()
    width = int(max(counted))
    assert stages.speech_encoder.encoder_frames(batch.mask_frames, width) == counted
    assert stages.speech_encoder.encoder_frames(batch.mask_frames, 3) == [min(3, c) for c in counted]


def test_encoder_widths_are_one_per_frame_bucket_and_none_without_buckets(stages: SeamlessStages) -> None:
    assert stages.speech_encoder.encoder_widths(5.0) == []  # this encoder pads to the longest row only
    bucketed = SpeechEncoder(stages.model, stages.processor, stages.device, stages.dtype, frame_bucket)
    widths = bucketed.encoder_widths(5.0)
    buckets = ladder(5 * 50 + 1, frame_bucket)  # 50 feature frames a second
    assert len(widths) == len(buckets) and widths == sorted(widths)
    longest = stages.model._compute_sub_sample_lengths_from_attention_mask(torch.ones(1, buckets[-1]))
    assert widths[-1] == int(longest[0])


def test_rows_padded_to_a_power_of_two_copy_the_first_row(stages: SeamlessStages) -> None:
    encoder = SpeechEncoder(stages.model, stages.processor, stages.device, stages.dtype, frame_bucket, pad_rows=True)
    per = [stages.extract_features(noise(s, k)) for k, s in enumerate((0.6, 0.4, 0.5))]
    batch = encoder.features(per)
    assert batch.values.shape[0] == 4 and batch.values.shape[1] == frame_bucket(max(f.values.shape[0] for f in per))
    assert torch.equal(batch.values[3], batch.values[0]) and torch.equal(batch.mask[3], batch.mask[0])
    assert batch.own_frames[3] == batch.own_frames[0]
    assert len(batch.mask_frames) == 3  # the inputs' own counts only


def test_texts_are_tokenized_each_in_its_own_language_and_right_padded(stages: SeamlessStages) -> None:
    texts = [SourceText("hello there", "eng"), SourceText("hola", "spa")]
    ids, mask = stages.text_encoder.tokenize(texts)
    tok = stages.processor.tokenizer
    for row, text in enumerate(texts):
        alone = tok(text.text, src_lang=text.language)["input_ids"]
        assert ids[row, : len(alone)].tolist() == list(alone) and mask[row].sum().item() == len(alone)
        assert ids[row, len(alone) :].eq(tok.pad_token_id).all()
    assert ids[0].tolist() != ids[1].tolist()


def test_the_text_modality_is_set_back_to_speech_even_on_failure(stages: SeamlessStages) -> None:
    with pytest.raises(RuntimeError), stages.text_encoder.text_modality():
        assert stages.model.main_input_name == "input_ids"
        raise RuntimeError("encoder failed")
    assert stages.model.main_input_name == "input_features"
