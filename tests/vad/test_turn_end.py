"""The end-of-turn model (Smart Turn v3.2, its real weights from the ``pipecat-ai`` wheel) as
translate_svc/vad/turn_end.py runs it: its features equal transformers' own Whisper feature
extractor at 8 s, on speech, on a short clip padded in front and on silence; on jfk.flac (one
sentence in four phrases, ../shared/research/end-of-turn.md) the turn reads complete after "my
fellow Americans," and after "for your country." and incomplete after "ask not" and "what your
country can do for you,"; a batch gives each row what it gives alone; a missing file says how to
install it. The package's Python is never imported."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import read_16k
from translate_svc.vad import turn_end
from translate_svc.vad.turn_end import (
    FRAMES,
    N_MELS,
    WINDOW_SAMPLES,
    SmartTurn,
    TurnModelMissing,
    features,
    last_window,
)

pytestmark = [pytest.mark.unit]

#: where each of jfk.flac's phrases ends (silero's regions: 0.3-2.3, 3.3-4.4, 5.4-7.7, 8.2-10.6 s)
PHRASE_ENDS_S = (2.3, 4.4, 7.7, 10.6)


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return read_16k(shared_audio / "jfk.flac")


@pytest.fixture(scope="module")
def model() -> SmartTurn:
    return SmartTurn()


def whisper_features(audio: np.ndarray) -> np.ndarray:
    """transformers' ``WhisperFeatureExtractor`` at 8 s on the window the model reads."""
    from transformers import WhisperFeatureExtractor

    extractor = WhisperFeatureExtractor(chunk_length=8, feature_size=N_MELS, sampling_rate=16000)
    out = extractor(
        last_window(audio),
        sampling_rate=16000,
        padding="max_length",
        max_length=WINDOW_SAMPLES,
        truncation=True,
        do_normalize=True,
        return_tensors="np",
    )
    return np.asarray(out.input_features[0])


@pytest.mark.parametrize("clip", ["speech", "short", "silence"])
def test_the_features_are_whispers_at_eight_seconds(jfk: np.ndarray, clip: str) -> None:
    audio = {"speech": jfk, "short": jfk[: 16000 * 2], "silence": np.zeros(16000 * 3, np.float32)}[clip]
    ours = features(audio)
    assert ours.shape == (N_MELS, FRAMES) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, whisper_features(audio), atol=2e-5)


def test_a_finished_sentence_reads_complete_and_its_pauses_do_not(model: SmartTurn, jfk: np.ndarray) -> None:
    turns = [jfk[: round(end * 16000)] for end in PHRASE_ENDS_S]
    batched = model.complete(turns)
    alone = [model.complete([t])[0] for t in turns]
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    complete = [p > 0.5 for p in batched]
    assert complete == [True, False, False, True], batched
    assert batched[1] < 0.1 and batched[2] < 0.1 and batched[3] > 0.9, batched
    assert model.complete([]) == []
    assert not [m for m in sys.modules if m == "pipecat" or m.startswith("pipecat.")]


def test_a_missing_model_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec

    def without_pipecat(name: str, *args: object) -> object:
        return None if name == "pipecat" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(turn_end.importlib.util, "find_spec", without_pipecat)
    with pytest.raises(TurnModelMissing, match=r"pip install --no-deps pipecat-ai==1\.14\.0"):
        SmartTurn()
    with pytest.raises(TurnModelMissing, match="does not exist"):
        SmartTurn(tmp_path / "none.onnx")


def test_fused_int8_kernels_only_where_they_sum_exactly(tmp_path: Path) -> None:
    """onnxruntime's fused int8 kernels saturate without VNNI (AVX2 alone): the model then runs
    unfused, so its answers are the same on every CPU (jfk's "ask" 67 % complete fused on an AMD
    EPYC, 10 % unfused)."""
    info = tmp_path / "cpuinfo"
    for flags, exact in (
        ("fpu sse2 avx avx2 fma", False),
        ("fpu avx2 avx512f avx512_vnni", True),
        ("fpu avx2 avx_vnni", True),
        ("fpu avx2 amx_bf16 amx_int8", True),
        ("fpu avx2 avx512f avx512_vnnix", False),
    ):
        info.write_text(f"processor\t: 0\nmodel name\t: x\nflags\t\t: {flags}\n")
        assert turn_end.exact_fused_int8(info) is exact, flags
    assert turn_end.exact_fused_int8(tmp_path / "none") is False
