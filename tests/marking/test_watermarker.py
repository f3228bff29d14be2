"""Real speech marked by our PerTh path reads as marked, the same speech unmarked does not, the mark
changes the speech little and only under 2 kHz, and the edges (short clips, silence, other rates,
bad input, several threads) are handled. Bounds: docs/performance.md, "Marking synthetic speech"."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.speech import read_16k
from translate_svc.marking.watermarker import MarkingInputError, Watermarker, shared

pytestmark = [pytest.mark.unit]

#: measured 1.000 on both shared files (whole, first second, at 8-48 kHz); asserted with margin
MARKED_OVER = 0.9
#: measured 0.218 (jfk.flac) and 0.036 (silero_test.wav) unmarked
UNMARKED_UNDER = 0.5
#: measured 15.8 dB (jfk.flac) and 15.9 dB (silero_test.wav)
MIN_SNR_DB = 12.0


def snr_db(clean: np.ndarray, marked: np.ndarray) -> float:
    with np.errstate(divide="ignore"):  # equal: infinite
        return float(10 * np.log10(np.sum(clean**2) / np.sum((marked - clean) ** 2)))


@pytest.fixture(scope="module")
def marker() -> Watermarker:
    return shared()


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return read_16k(shared_audio / "jfk.flac")


@pytest.mark.parametrize("name", ["jfk.flac", "silero_test.wav"])
def test_marked_speech_is_detected_and_the_same_speech_unmarked_is_not(
    marker: Watermarker, shared_audio: Path, name: str
) -> None:
    clean = read_16k(shared_audio / name)[: 30 * 16000]  # jfk.flac whole, silero_test.wav's first half
    marked = marker.mark(clean, 16000)
    assert marked.dtype == np.float32 and marked.shape == clean.shape
    found, unmarked = marker.detect(marked, 16000), marker.detect(clean, 16000)
    assert found.probability > MARKED_OVER, found
    assert unmarked.probability < UNMARKED_UNDER, unmarked
    duration = len(clean) / 16000
    assert found.spans == ((0.0, duration),)
    assert unmarked.spans == ()
    assert found.watermarker == unmarked.watermarker == "perth-implicit@250000"
    assert snr_db(clean, marked) > MIN_SNR_DB


def test_the_mark_changes_only_the_band_under_two_kilohertz(marker: Watermarker, jfk: np.ndarray) -> None:
    change = marker.mark(jfk, 16000) - jfk
    power = np.abs(np.fft.rfft(change)) ** 2
    hz = np.fft.rfftfreq(len(change), 1 / 16000)
    assert power[hz > 2200].sum() < 1e-3 * power.sum()  # measured 5e-6: soxr's and the STFT's leakage


def test_a_file_at_its_own_rate_keeps_its_rate_and_length(marker: Watermarker, shared_audio: Path) -> None:
    audio, rate = sf.read(shared_audio / "jfk.flac", dtype="float32", always_2d=True)
    clean = audio.mean(axis=1)
    assert rate == 44100
    marked = marker.mark(clean, rate)
    assert marked.shape == clean.shape and marked.dtype == np.float32
    assert marker.detect(marked, rate).probability > MARKED_OVER
    assert marker.detect(clean, rate).probability < UNMARKED_UNDER


@pytest.mark.parametrize("rate", [8000, 24000, 48000])
def test_other_rates_carry_the_mark(marker: Watermarker, jfk: np.ndarray, rate: int) -> None:
    import soxr

    clean = soxr.resample(jfk[: 4 * 16000], 16000, rate).astype(np.float32)
    marked = marker.mark(clean, rate)
    assert marked.shape == clean.shape
    assert marker.detect(marked, rate).probability > MARKED_OVER
    assert marker.detect(clean, rate).probability < UNMARKED_UNDER


def test_the_spans_say_which_part_is_marked(marker: Watermarker, jfk: np.ndarray) -> None:
    half = 16000 * 5  # jfk.flac: a pause from 4.4 to 5.4 s
    mixed = np.concatenate([marker.mark(jfk[:half], 16000), jfk[half:]])
    spans = marker.detect(mixed, 16000).spans
    assert len(spans) == 1, spans
    start, end = spans[0]
    assert start == 0.0 and 5.0 <= end <= 7.0  # 2 s windows a second apart: an edge within one window


@pytest.mark.parametrize("seconds", [1.0, 0.5])
def test_a_short_clip_is_marked_and_detected(marker: Watermarker, jfk: np.ndarray, seconds: float) -> None:
    clip = jfk[16000 : 16000 + int(16000 * seconds)]  # speech (0.3-2.3 s)
    marked = marker.mark(clip, 16000)
    assert marked.shape == clip.shape
    assert marker.detect(marked, 16000).probability > MARKED_OVER  # every such clip of jfk.flac: 0.998+
    # (unmarked, clips this short are not told apart reliably: up to 0.88 measured; this one 0.30-0.46)


@pytest.mark.parametrize("samples", [0, 1, 160, 16000])
def test_silence_and_tiny_clips_pass_unharmed(marker: Watermarker, jfk: np.ndarray, samples: int) -> None:
    silence = np.zeros(samples, dtype=np.float32)
    np.testing.assert_array_equal(marker.mark(silence, 16000), silence)  # no sound: nothing to mark
    assert marker.detect(silence, 16000).probability == 0.0
    tiny = jfk[16000 : 16000 + samples]
    assert marker.mark(tiny, 16000).shape == tiny.shape
    assert 0.0 <= marker.detect(tiny, 16000).probability <= 1.0


def test_a_batch_marks_each_wave_as_alone(marker: Watermarker, jfk: np.ndarray) -> None:
    waves = [jfk[: 3 * 16000], jfk[5 * 16000 : 11 * 16000], jfk[16000:24000]]
    batch = marker.mark_many(waves, 16000)
    for wave, marked in zip(waves, batch, strict=True):
        alone = marker.mark(wave, 16000)
        assert marked.shape == wave.shape
        # the padding is seen by the convolutions' last 15 frames only (measured: equal to 1.2e-7
        # before the last 0.2 s; the marks of the 0.5 s wave 19 dB apart over its last 0.2 s)
        np.testing.assert_allclose(marked[:-3200], alone[:-3200], atol=1e-6)
        assert snr_db(alone - wave, marked - wave) > 12.0
        assert marker.detect(marked, 16000).probability > MARKED_OVER
    assert marker.mark_many([], 16000) == []


def test_threads_share_one_watermarker(marker: Watermarker, jfk: np.ndarray) -> None:
    clips = [jfk[k * 16000 : (k + 2) * 16000] for k in range(4)]
    marked = [marker.mark(c, 16000) for c in clips]
    alone = [marker.detect(m, 16000).probability for m in marked]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda _: shared(), range(4))) == [marker] * 4
        together = list(pool.map(lambda m: marker.detect(m, 16000).probability, marked))
        again = list(pool.map(lambda c: marker.mark(c, 16000), clips))
    assert together == pytest.approx(alone, abs=1e-5)
    for a, b in zip(again, marked, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    ("wave", "rate", "says"),
    [
        (np.zeros(100, np.float32), 4000, "too low"),
        (np.zeros(100, np.float32), 16000.0, "whole number"),
        (np.zeros((2, 100), np.float32), 16000, "mono"),
        (np.zeros(100, np.int16), 16000, "float"),
        (np.array([0.0, np.nan], np.float32), 16000, "NaN"),
    ],
)
def test_audio_it_cannot_take_is_refused_saying_what_to_fix(
    marker: Watermarker, wave: np.ndarray, rate: int, says: str
) -> None:
    with pytest.raises(MarkingInputError, match=says):
        marker.mark(wave, rate)
    with pytest.raises(MarkingInputError, match=says):
        marker.detect(wave, rate)
