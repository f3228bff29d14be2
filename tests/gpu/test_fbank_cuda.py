"""The filterbank on CUDA (model/stages/fbank.py ``Fbank``, the CUDA plan's features inside the
encoder's call): a padded batch of the shared speech computed on the device, eagerly and replayed
from a captured graph (cuFFT inside a capture), gives each row the extractor's features within its
own float32 rounding (tests/model/stages/test_fbank.py ``rounding``) and zero past them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.gpu]


def test_the_fbank_on_cuda_eager_and_captured_gives_the_extractors_features(shared_audio: Path) -> None:
    import torch
    from transformers import SeamlessM4TFeatureExtractor

    from tests.support.fbank_rounding import ROUNDINGS, rounding
    from tests.support.speech import read_16k
    from translate_svc.model.stages.fbank import Fbank, frame_count, frames_samples

    extractor = SeamlessM4TFeatureExtractor()
    fbank = Fbank(extractor, torch.device("cuda"))
    jfk = read_16k(shared_audio / "jfk.flac")
    audios = [jfk[1000:33_123], jfk[40_000:52_000], jfk[60_000:100_161], np.zeros(20_000, np.float32)]
    counts = [frame_count(len(a)) for a in audios]
    width = max(fbank.stacked(n) for n in counts)
    padded = np.zeros((len(audios), frames_samples(2 * width)), dtype=np.float32)
    for row, (a, n) in enumerate(zip(audios, counts, strict=True)):
        padded[row, : frames_samples(n)] = a[: frames_samples(n)]
    audio, frames = torch.from_numpy(padded).cuda(), torch.tensor(counts).cuda()
    eager = fbank(audio, frames).cpu().numpy()
    for _ in range(2):  # warm runs before the capture (cuFFT plans made), as model/capture.py does
        fbank(audio, frames)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fbank(audio, frames)
    graph.replay()
    torch.cuda.synchronize()
    captured = out.cpu().numpy()
    for row, a in enumerate(audios):
        want = extractor(a, sampling_rate=16000, return_tensors="np")["input_features"][0]
        bound = ROUNDINGS * rounding(extractor, a)
        for label, got in (("eager", eager), ("captured", captured)):
            assert np.all(np.abs(got[row, : len(want)] - want) <= bound), f"{label} row {row}"
            assert np.all(got[row, len(want) :] == 0.0), f"{label} row {row}"
