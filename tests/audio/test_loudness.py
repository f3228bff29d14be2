"""Loudness-true tracks (issue 100 item 4; translate_svc/audio/loudness.py): the BS.1770-4 meter
against the recommendation's own coefficients, EBU Tech 3341's tone and an independent
implementation (pyloudnorm) on real speech; the normaliser brings real speech to each preset's
loudness (measured by pyloudnorm) under its true-peak ceiling (measured by soxr's oversampling),
whatever the sizes of the pieces it is fed."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
import soxr

from translate_svc.audio.loudness import (
    PRESETS,
    LoudnessTarget,
    Normaliser,
    k_weighting,
    measure,
    normalised,
    plan_loudness,
)

pytestmark = pytest.mark.unit


def pieces(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [x[i : i + size] for i in range(0, len(x), size)]


def true_peak_db(x: np.ndarray, rate: int) -> float:
    """An independent true peak: soxr's four-times oversampling."""
    return float(20 * np.log10(np.abs(soxr.resample(x, rate, 4 * rate)).max()))


@pytest.fixture(scope="module")
def speech(shared_audio: Path) -> np.ndarray:
    x, rate = sf.read(shared_audio / "jfk.flac")
    mono = np.asarray(x, np.float64).mean(axis=1) if np.ndim(x) == 2 else np.asarray(x, np.float64)
    return np.asarray(soxr.resample(mono, rate, 16000), np.float64)


def test_the_k_weighting_is_the_recommendations_at_48_khz() -> None:
    (shelf_b, shelf_a), (high_b, high_a) = k_weighting(48000)
    # ITU-R BS.1770-4, tables 1 and 2
    assert np.allclose(shelf_b, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-10)
    assert np.allclose(shelf_a, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-10)
    assert np.allclose(high_b, [1.0, -2.0, 1.0]) and np.allclose(high_a, [1.0, -1.99004745483398, 0.99007225036621])


def test_a_tone_reads_as_ebu_tech_3341_says() -> None:
    """Tech 3341 test 1: a 1 kHz sine at -23 dBFS in two channels is -23.0 LUFS (+-0.1); its true
    peak is its amplitude. Seconds of silence after it are gated out (only the blocks that straddle
    the tone's end count: within 0.05 LU)."""
    rate = 48000
    t = np.arange(20 * rate) / rate
    tone = 10 ** (-23 / 20) * np.sin(2 * np.pi * 1000 * t)
    stereo = np.stack([tone, tone], axis=1)
    lufs, peak = measure(pieces(stereo, 4801), rate, channels=2)
    assert abs(lufs - -23.0) <= 0.1 and abs(peak - -23.0) <= 0.05, (lufs, peak)
    quiet = np.concatenate([stereo, np.zeros((10 * rate, 2))])
    assert abs(measure([quiet], rate, channels=2)[0] - lufs) < 0.05
    # a section 30 LU quieter is below the relative gate: the loud one alone counts (and the blocks across)
    mixed = np.concatenate([stereo, stereo * 10 ** (-30 / 20)])
    assert abs(measure([mixed], rate, channels=2)[0] - lufs) < 0.05


@pytest.mark.parametrize("rate", [16000, 48000])
def test_real_speech_reads_as_an_independent_meter_says(speech: np.ndarray, rate: int) -> None:
    x = speech if rate == 16000 else np.asarray(soxr.resample(speech, 16000, rate), np.float64)
    lufs, peak = measure(pieces(x, 3333), rate)
    assert abs(lufs - pyloudnorm.Meter(rate).integrated_loudness(x)) < 0.2  # its K-weighting approximates BS.1770's
    assert abs(peak - true_peak_db(x, rate)) < 0.05
    assert measure([x], rate) == pytest.approx((lufs, peak), abs=1e-9)  # the pieces' sizes do not matter


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_speech_is_brought_to_each_presets_loudness_under_its_ceiling(speech: np.ndarray, preset: str) -> None:
    target = PRESETS[preset]
    plan = plan_loudness(lambda: pieces(speech, 16000), 16000, 1, target)
    out = np.concatenate(list(normalised(pieces(speech, 7777), 16000, 1, plan.gain_db, target.true_peak_dbtp)))[:, 0]
    assert len(out) == len(speech)
    assert abs(pyloudnorm.Meter(16000).integrated_loudness(out) - target.integrated_lufs) <= 1.0
    assert abs(plan.after_lufs - target.integrated_lufs) <= 0.2
    assert true_peak_db(out, 16000) <= target.true_peak_dbtp
    other = np.concatenate(list(normalised(pieces(speech, 1000), 16000, 1, plan.gain_db, target.true_peak_dbtp)))
    assert np.abs(other[:, 0] - out).max() < 1e-9  # what a measuring pass heard is what is written


def test_the_limiter_takes_peaks_down_and_the_loudness_still_lands(speech: np.ndarray) -> None:
    """Speech with clicks 20 dB over it, brought to -14 LUFS under -1 dBTP: without the limiter the
    clicks would be far over the ceiling."""
    x = speech.copy()
    rng = np.random.default_rng(7)
    for at in rng.integers(0, len(x) - 40, 30):
        x[at : at + 8] += 0.9 * np.sign(rng.standard_normal(8))
    x /= np.abs(x).max() * 1.01
    target = LoudnessTarget(-14.0, -1.0)
    plan = plan_loudness(lambda: pieces(x, 16000), 16000, 1, target)
    norm = Normaliser(16000, 1, plan.gain_db, target.true_peak_dbtp)
    out = np.concatenate([norm.process(p) for p in pieces(x, 5000)] + [norm.flush()])[:, 0]
    assert norm.limited > 0 and plan.before_dbtp + plan.gain_db > target.true_peak_dbtp + 3
    assert true_peak_db(out, 16000) <= target.true_peak_dbtp
    assert abs(pyloudnorm.Meter(16000).integrated_loudness(out) - target.integrated_lufs) <= 1.0


def test_silence_takes_no_gain_and_a_target_out_of_range_is_refused() -> None:
    plan = plan_loudness(lambda: [np.zeros(48000)], 16000, 1, PRESETS["ebu_r128"])
    assert plan.gain_db == 0.0 and plan.before_lufs == -math.inf
    with pytest.raises(ValueError, match=r"-70\.\.-5 LUFS"):
        LoudnessTarget(0.0, -1.0)
    with pytest.raises(ValueError, match=r"-20\.\.0 dBTP"):
        LoudnessTarget(-23.0, 1.0)
