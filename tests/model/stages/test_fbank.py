"""The vectorised filterbank (model/stages/fbank.py ``Fbank``) against transformers' own
``SeamlessM4TFeatureExtractor``, the features every parity test's reference (``generate``) reads:
over the shared speech at lengths that are and are not whole frames, odd and even frame counts,
silence spliced in and whole, the host's features (the engine's features thread) are the
extractor's bit for bit on this CPU, and within its own float32 rounding anywhere; a padded batch
(what the encoder computes on its device) gives each row its features alone within that rounding;
a segment's cost does not grow in Python with its length (all frames in one call); and the
encoder fed audio (``audio_batch``, the CUDA plan's) equals the encoder fed the host's features.
Only equalities and counts."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import SeamlessM4TFeatureExtractor

from tests.support.fbank_rounding import ROUNDINGS, rounding
from tests.support.speech import read_16k
from translate_svc.model.stages.fbank import FRAME, HOP, Fbank, frame_count, frames_samples
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.shapes import frame_bucket

pytestmark = pytest.mark.integration

#: the share of the host's features that may differ from the extractor's at all: its float64
#: spectrum and filterbank product from another FFT and BLAS may round once the other way (0 here)
NOT_BITWISE = 1e-4


@pytest.fixture(scope="module")
def extractor() -> SeamlessM4TFeatureExtractor:
    return SeamlessM4TFeatureExtractor()


@pytest.fixture(scope="module")
def fbank(extractor: SeamlessM4TFeatureExtractor) -> Fbank:
    return Fbank(extractor, torch.device("cpu"))


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> dict[str, np.ndarray]:
    return {name: read_16k(shared_audio / name) for name in ("jfk.flac", "silero_test.wav")}


def reference(extractor: SeamlessM4TFeatureExtractor, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = extractor(audio, sampling_rate=16000, return_attention_mask=True, return_tensors="np")
    return f["input_features"][0], f["attention_mask"][0]


def spans(speech: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """Cuts of both files: whole frames and not (a hop plus 1..159 samples), odd and even frame
    counts, from 2 frames to the whole file, and speech with 0.6 s of digital silence inside."""
    jfk, silero = speech["jfk.flac"], speech["silero_test.wav"]
    out = [(f"jfk[{n}]", jfk[3000 : 3000 + n]) for n in (560, 720, 1_213, 16_000, 16_003, 32_123, 36_800, 48_159)]
    out += [(f"silero[{n}]", silero[8000 : 8000 + n]) for n in (24_000, 40_161)]
    out += [("jfk whole", jfk), ("silero whole", silero)]
    gap = jfk[:40_000].copy()
    gap[12_000:21_600] = 0.0
    out.append(("jfk with silence inside", gap))
    out += [(f"silence[{n}]", np.zeros(n, dtype=np.float32)) for n in (16_000, 20_123)]
    return out


def test_the_hosts_features_are_the_extractors_on_the_shared_speech(
    extractor: SeamlessM4TFeatureExtractor, fbank: Fbank, speech: dict[str, np.ndarray]
) -> None:
    cases = spans(speech)
    counts = {frame_count(len(a)) % 2 for _, a in cases}
    assert counts == {0, 1}, "odd and even frame counts"
    assert any((len(a) - FRAME) % HOP for _, a in cases), "lengths that are not whole frames"
    differ = total = 0
    for label, audio in cases:
        want, want_mask = reference(extractor, audio)
        got = fbank.features(audio)
        assert got.values.dtype == want.dtype and got.mask.dtype == want_mask.dtype, label
        assert got.values.shape == want.shape, label
        np.testing.assert_array_equal(got.mask, want_mask, err_msg=label)
        diff = np.abs(got.values - want)
        assert np.all(diff <= ROUNDINGS * rounding(extractor, audio)), f"{label}: {diff.max()}"
        differ, total = differ + int(np.count_nonzero(diff)), total + diff.size
    assert differ <= NOT_BITWISE * total, f"{differ} of {total} features differ from the extractor's"


def test_a_padded_batch_gives_each_row_its_features_alone(
    extractor: SeamlessM4TFeatureExtractor, fbank: Fbank, speech: dict[str, np.ndarray]
) -> None:
    """The device's call (``SpeechEncoder.audio_batch``): rows of audio padded with zeros, each
    row's frame count a tensor, the normalisation masked by it (in float64: not the extractor's
    float32 rounding, but within it); zero past each row's features. Digital silence floors every
    mel bin at a constant: 0 here, the extractor's float32 rounding of that constant's mean (3e-3)."""
    audios = [a for _, a in spans(speech)]
    counts = [frame_count(len(a)) for a in audios]
    width = max(fbank.stacked(n) for n in counts) + 3  # a bucket wider than the longest row
    padded = np.zeros((len(audios), frames_samples(2 * width)), dtype=np.float32)
    for row, (a, n) in enumerate(zip(audios, counts, strict=True)):
        padded[row, : frames_samples(n)] = a[: frames_samples(n)]
    batch = fbank(torch.from_numpy(padded), torch.tensor(counts)).numpy()
    assert batch.shape == (len(audios), width, fbank.dim)
    for row, audio in enumerate(audios):
        alone = fbank.features(audio).values
        diff = np.abs(batch[row, : len(alone)] - alone)
        assert np.all(diff <= ROUNDINGS * rounding(extractor, audio)), f"row {row}: {diff.max()}"
        if len(audio) >= 16_000 and audio.any():  # a second of speech or more: float32 rounding
            assert diff.max() <= 1e-5, f"row {row}: {diff.max()}"
        assert np.all(batch[row, len(alone) :] == 0.0)
    assert np.all(batch[-1] == 0.0)  # the last row is silence


def test_a_segment_shorter_than_one_frame_is_refused_with_the_minimum(fbank: Fbank) -> None:
    with pytest.raises(ValueError, match=f"at least {FRAME} samples"):
        fbank.features(np.zeros(FRAME - 1, dtype=np.float32))


def python_calls(work: Callable[[], Any]) -> int:
    """Python and C function calls made while ``work`` runs (``sys.setprofile``)."""
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        work()
    finally:
        sys.setprofile(None)
    return calls


def test_a_segments_features_are_a_fixed_number_of_calls_whatever_its_length(
    test_model_dir: Path, speech: dict[str, np.ndarray]
) -> None:
    """All frames in one call: the features of 10 s cost the Python of 1 s (the extractor loops
    over 10 ms frames in Python, one ``rfft`` and one ``mean`` each, holding the GIL)."""
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32")
    jfk = speech["jfk.flac"]
    stages.extract_features(jfk[:16_000])  # first-call set-up out of the count
    short = python_calls(lambda: stages.extract_features(jfk[:16_000]))
    long = python_calls(lambda: stages.extract_features(jfk[:160_000]))
    assert long == short


def test_the_encoder_fed_audio_equals_the_encoder_fed_the_hosts_features(
    test_model_dir: Path, speech: dict[str, np.ndarray]
) -> None:
    """The CUDA plan's batch (``audio_batch``: the features computed inside ``encode``) against the
    CPU plan's (``features`` of ``extract_features``), padded to frame buckets and row buckets:
    the same mask, own frames, and encoder output."""
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32", pad_frames=True)
    speech_encoder = stages.speech_encoder
    speech_encoder.pad_rows = True
    jfk = speech["jfk.flac"]
    audios = [jfk[1000:33_123], jfk[40_000:52_000], jfk[60_000:60_900]]
    host = speech_encoder.features([stages.extract_features(a) for a in audios])
    device = speech_encoder.audio_batch(audios)
    assert host.mask.shape[0] == 4 and host.mask.shape[1] == frame_bucket(host.mask.shape[1])  # both buckets
    assert device.values is None and device.audio is not None
    assert torch.equal(device.mask, host.mask) and torch.equal(device.own_frames, host.own_frames)
    assert device.mask_frames == host.mask_frames
    with torch.inference_mode():
        want, got = speech_encoder.encode(host), speech_encoder.encode(device)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
