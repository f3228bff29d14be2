"""Resampling to 16 kHz: chunk-size independence, identity, length and fidelity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from translate_svc.audio.resample import StreamResampler, resample

pytestmark = pytest.mark.unit

RATES = [8000, 11025, 22050, 24000, 32000, 44100, 48000]


def _noise(rate: int, seconds: float = 2.5, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(rate * seconds))).astype(np.float32)


def _chunked(x: np.ndarray, rate: int, chunk_ms: int) -> np.ndarray:
    n = rate * chunk_ms // 1000
    stream = StreamResampler(rate)
    out = [stream.process(x[i : i + n]) for i in range(0, x.size, n)]
    out.append(stream.process(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(out)


@pytest.mark.parametrize("rate", RATES)
def test_chunking_does_not_change_the_output(rate: int) -> None:
    x = _noise(rate)
    whole = StreamResampler(rate).process(x, last=True)
    for chunk_ms in (20, 100, 1000):
        parts = _chunked(x, rate, chunk_ms)
        assert parts.size == whole.size, chunk_ms
        np.testing.assert_allclose(parts, whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("rate", RATES)
def test_offline_equals_streaming(rate: int) -> None:
    x = _noise(rate, seed=1)
    offline = resample(x, rate)
    assert offline.dtype == np.float32
    np.testing.assert_array_equal(offline, StreamResampler(rate).process(x, last=True))
    np.testing.assert_allclose(offline, _chunked(x, rate, 20), atol=1e-6, rtol=0)


def test_uneven_chunks_with_last_on_a_data_chunk() -> None:
    x = _noise(44100, seed=2)
    whole = resample(x, 44100)
    stream = StreamResampler(44100)
    edges = [0, 1, 7, 1000, 1001, 30000, 30000, 77777, x.size]
    out = [stream.process(x[a:b], last=(b == x.size)) for a, b in itertools.pairwise(edges)]
    np.testing.assert_allclose(np.concatenate(out), whole, atol=1e-6, rtol=0)


@pytest.mark.parametrize("rate", RATES)
def test_output_length(rate: int) -> None:
    x = _noise(rate, seconds=1.337)
    assert abs(resample(x, rate).size - x.size * 16000 / rate) <= 1


def test_identity_at_16k() -> None:
    x = _noise(16000)
    np.testing.assert_array_equal(resample(x, 16000), x)
    stream = StreamResampler(16000)
    parts = [stream.process(x[:320]), stream.process(x[320:], last=True)]
    np.testing.assert_array_equal(np.concatenate(parts), x)
    assert resample(x.astype(np.float64), 16000).dtype == np.float32


def test_tone_is_preserved() -> None:
    t = np.arange(44100 * 2) / 44100
    y = resample(np.sin(2 * np.pi * 440 * t).astype(np.float32), 44100)
    expected = np.sin(2 * np.pi * 440 * np.arange(y.size) / 16000)
    # No delay and no level change: soxr's stream output is time-aligned with its input.
    np.testing.assert_allclose(y[1000:-1000], expected[1000:-1000], atol=1e-4)


def test_use_after_last_is_refused() -> None:
    stream = StreamResampler(8000)
    stream.process(_noise(8000, 0.1), last=True)
    assert stream.finished
    with pytest.raises(RuntimeError, match="last chunk"):
        stream.process(_noise(8000, 0.1))


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="positive"):
        StreamResampler(0)
    with pytest.raises(ValueError, match="1-D"):
        StreamResampler(8000).process(np.zeros((10, 2), dtype=np.float32))
