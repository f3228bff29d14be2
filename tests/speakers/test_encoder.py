"""The GE2E encoder run with numpy equals Resemblyzer's own layers in torch (and librosa's mel),
and online clustering labels two voices taking turns in one channel (issue 72)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.ear_audio import agreement, two_voices, voice_of
from tests.support.speech import read_16k, vad_segments
from translate_svc.speakers.checkpoint import CheckpointError, load_state
from translate_svc.speakers.cluster import ClusterConfig, OnlineSpeakers
from translate_svc.speakers.encoder import SpeakerEncoder, mel_spectrogram, pretrained_path

pytestmark = [pytest.mark.unit]

#: measured: 13 of 13 segments (docs/performance.md, "Speaker labels"); asserted a little under
MIN_AGREEMENT = 12 / 13


def test_the_checkpoint_reads_as_torch_reads_it() -> None:
    import torch

    ours = load_state(pretrained_path())["model_state"]
    theirs = torch.load(pretrained_path(), map_location="cpu", weights_only=True)["model_state"]
    assert set(ours) == set(theirs)
    for k, v in theirs.items():
        np.testing.assert_array_equal(ours[k], v.numpy())


def test_a_checkpoint_naming_other_code_is_refused(tmp_path: Path) -> None:
    import pickle

    p = tmp_path / "bad.pt"
    with open(p, "wb") as f:
        for obj in (0x1950A86A20F9469CFC6C, 1001, {}):
            pickle.dump(obj, f)
        pickle.dump(print, f)  # a global no state dict names
    with pytest.raises(CheckpointError):
        load_state(p)


def test_mel_and_layers_equal_librosa_and_torch(shared_audio: Path) -> None:
    import librosa
    import torch

    x = read_16k(shared_audio / "jfk.flac")
    ref = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=400, hop_length=160, n_mels=40).T
    mel = mel_spectrogram(x)
    assert mel.shape == ref.shape
    assert np.abs(mel - ref).max() <= 1e-5 * ref.max()
    state = torch.load(pretrained_path(), map_location="cpu", weights_only=True)["model_state"]
    lstm, linear = torch.nn.LSTM(40, 256, 3, batch_first=True), torch.nn.Linear(256, 256)
    lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
    linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
    mels = np.stack([ref[:160], ref[300:460]])
    with torch.no_grad():
        _, (h, _) = lstm(torch.from_numpy(mels))
        e = torch.relu(linear(h[-1]))
        e = (e / e.norm(dim=1, keepdim=True)).numpy()
    np.testing.assert_allclose(SpeakerEncoder().forward(mels), e, atol=1e-5)


@pytest.mark.asyncio(loop_scope="session")
async def test_two_voices_taking_turns_are_told_apart(shared_audio: Path) -> None:
    files = [await vad_segments(read_16k(shared_audio / n)) for n in ("jfk.flac", "silero_test.wav")]
    clip, truth = two_voices(shared_audio, files)
    segments = await vad_segments(clip)
    encoder = SpeakerEncoder()
    for max_speakers in (2, 4):
        speakers = OnlineSpeakers(ClusterConfig(max_speakers=max_speakers))
        labels = [
            speakers.assign(i, encoder.embed(s.samples), s.end_ms - s.start_ms)[0] for i, s in enumerate(segments)
        ]
        voices = [voice_of(s.start_ms, s.end_ms, truth) for s in segments]
        assert len(segments) >= 12
        assert agreement(labels, voices) >= MIN_AGREEMENT, (labels, voices)
