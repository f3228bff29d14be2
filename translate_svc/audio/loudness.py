"""Loudness-true tracks: ITU-R BS.1770-4 integrated loudness and true peak, and a normaliser that
brings a track to a target loudness under a true-peak ceiling (broadcast and streaming deliverables:
EBU R128 -23 LUFS, ATSC A/85 -24 LKFS, streaming -14 LUFS; a -1 or -2 dBTP ceiling).

- ``LoudnessMeter`` measures a signal fed in pieces of any size: the K-weighting filter (its two
  stages from BS.1770's analog prototype, so any sample rate), mean squares per 100 ms, gated 400 ms
  blocks (75 % overlap; absolute gate -70 LUFS, relative gate -10 LU), and the true peak from the
  signal oversampled four times (``oversampled_peaks``).
- ``Normaliser`` applies a gain and a true-peak limiter to a signal fed in pieces: a look-ahead
  (``LOOKAHEAD_S``) so the gain is down before a peak arrives, a linear release (``RELEASE_S``);
  its output is the same whatever the pieces' sizes, so a measuring pass predicts the written one.
- ``plan_loudness`` finds the gain that lands a track on its target: it runs the normaliser over the
  track (``source`` makes the track again for each pass) and measures what comes out, correcting the
  gain for what the limiter took (a few passes; each is numpy over the track, never the model).

Pure: no I/O; any thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import minimum_filter1d
from scipy.signal import lfilter

#: BS.1770's K-weighting, stage 1 (a high shelf: the head's acoustic effect), as its analog prototype
SHELF_HZ, SHELF_DB, SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
#: stage 2 (the RLB high-pass)
HIGHPASS_HZ, HIGHPASS_Q = 38.13547087602444, 0.5003270373238773
#: gating: 400 ms blocks stepped by 100 ms; absolute gate; relative gate below the ungated loudness
BLOCK_STEPS, STEP_S, ABSOLUTE_GATE, RELATIVE_GATE = 4, 0.1, -70.0, -10.0
#: true peak: the signal oversampled this many times (BS.1770-4 Annex 2 below 96 kHz)
OVERSAMPLE = 4
#: the oversampling filter's taps per phase (a Kaiser-windowed sinc; BS.1770-4's example has 12: a
#: click's overshoot between samples near Nyquist is found within 0.1 dB of a long sinc's at 32)
TAPS_PER_PHASE = 32
#: the limiter: the gain is down this long before a peak, and comes back up over this
LOOKAHEAD_S, RELEASE_S = 0.005, 0.1
#: the limiter aims this far under the ceiling (its inter-sample estimate against the meter's)
MARGIN_DB = 0.2
#: ``plan_loudness`` stops within this of the target, after at most this many passes
TOLERANCE_LU, MAX_PASSES = 0.2, 4


@dataclass(frozen=True)
class LoudnessTarget:
    """An integrated loudness to reach (LUFS, as LKFS) and a true-peak ceiling not to pass (dBTP)."""

    integrated_lufs: float
    true_peak_dbtp: float

    def __post_init__(self) -> None:
        if not -70.0 <= self.integrated_lufs <= -5.0:
            raise ValueError(f"a target loudness is -70..-5 LUFS, got {self.integrated_lufs}")
        if not -20.0 <= self.true_peak_dbtp <= 0.0:
            raise ValueError(f"a true-peak ceiling is -20..0 dBTP, got {self.true_peak_dbtp}")


#: the ceiling of a target named by its loudness alone (dBTP): EBU R128's and streaming's
DEFAULT_TRUE_PEAK_DBTP = -1.0

#: the named deliverables: EBU R128 (broadcast, Europe), ATSC A/85 (broadcast, US), streaming platforms
PRESETS = {
    "ebu_r128": LoudnessTarget(-23.0, -1.0),
    "atsc_a85": LoudnessTarget(-24.0, -2.0),
    "streaming": LoudnessTarget(-14.0, -1.0),
}


def k_weighting(rate: int) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The two biquads (b, a) of BS.1770's K-weighting at ``rate``, from their analog prototypes by
    the bilinear transform (at 48 kHz: the coefficients the recommendation tabulates)."""
    k = math.tan(math.pi * SHELF_HZ / rate)
    vh = 10 ** (SHELF_DB / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / SHELF_Q + k * k
    shelf_b = np.array(
        [(vh + vb * k / SHELF_Q + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / SHELF_Q + k * k) / a0]
    )
    shelf_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / SHELF_Q + k * k) / a0])
    k = math.tan(math.pi * HIGHPASS_HZ / rate)
    a0 = 1 + k / HIGHPASS_Q + k * k
    high_b = np.array([1.0, -2.0, 1.0])
    high_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / HIGHPASS_Q + k * k) / a0])
    return (shelf_b, shelf_a), (high_b, high_a)


def _oversampling_filter() -> np.ndarray:
    """The interpolator's phases, (``OVERSAMPLE``, ``TAPS_PER_PHASE``): phase ``p`` gives the value
    ``p / OVERSAMPLE`` of a sample after the middle of its taps."""
    n = OVERSAMPLE * TAPS_PER_PHASE
    t = (np.arange(n) - (n // 2)) / OVERSAMPLE  # in input samples, 0 at the middle
    h = np.sinc(t) * np.kaiser(n, 8.0)
    phases = np.stack([h[p::OVERSAMPLE][::-1] for p in range(OVERSAMPLE)])  # reversed: a correlation
    normed: np.ndarray = phases / phases.sum(axis=1, keepdims=True)
    return normed


_PHASES = _oversampling_filter()
#: the input samples an oversampled value needs on each side of it
_HALF = TAPS_PER_PHASE // 2


def oversampled_peaks(x: np.ndarray) -> np.ndarray:
    """The true peak around each sample of ``x`` (1-D) but its first ``_HALF - 1`` and last
    ``_HALF``: the largest magnitude of the signal from that sample to the next, oversampled
    ``OVERSAMPLE`` times (the sample itself is phase 0). Value ``j`` is sample ``j + _HALF - 1``'s;
    ``len(x) - 2 * _HALF + 1`` values."""
    n = len(x) - 2 * _HALF + 1
    if n <= 0:
        return np.zeros(0, np.float64)
    peaks = np.zeros(n)
    for phase in _PHASES:
        np.maximum(peaks, np.abs(np.correlate(x, phase, "valid")), out=peaks)
    return peaks


class LoudnessMeter:
    """BS.1770-4 integrated loudness and true peak of a signal of ``channels`` channels at
    ``rate`` Hz, fed in pieces (``add``: (n,) mono, or (n, channels)), then ``finish``; channels
    weighed 1 each (left, right, centre: what a dub track has). Not thread-safe."""

    def __init__(self, rate: int, channels: int = 1) -> None:
        self.rate, self.channels = rate, channels
        (self._sb, self._sa), (self._hb, self._ha) = k_weighting(rate)
        self._sz = np.zeros((2, channels))
        self._hz = np.zeros((2, channels))
        self._step = round(STEP_S * rate)
        self._partial = np.zeros(0)  # the weighted squares of the step under way (summed over channels)
        self._steps: list[float] = []  # each whole step's sum of weighted squares
        self._tail = np.zeros((2 * _HALF, channels))  # the last samples (zeros before the signal)
        self._peak = 0.0

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float64).reshape(len(x), self.channels)
        if not len(x):
            return
        y, self._sz = lfilter(self._sb, self._sa, x, axis=0, zi=self._sz)
        y, self._hz = lfilter(self._hb, self._ha, y, axis=0, zi=self._hz)
        squares = np.concatenate([self._partial, (y * y).sum(axis=1)])
        whole = len(squares) // self._step * self._step
        self._steps.extend(squares[:whole].reshape(-1, self._step).sum(axis=1).tolist())
        self._partial = squares[whole:]
        self._peaks(x)

    def _peaks(self, x: np.ndarray) -> None:
        joined = np.concatenate([self._tail, x])
        for c in range(self.channels):
            peaks = oversampled_peaks(joined[:, c])
            if len(peaks):
                self._peak = max(self._peak, float(peaks.max()))
        self._tail = joined[-2 * _HALF :]

    def finish(self) -> None:
        """The signal has ended: its last samples' true peaks (zeros after it) are counted."""
        self._peaks(np.zeros((_HALF, self.channels)))

    def integrated(self) -> float:
        """The gated integrated loudness (LUFS); -inf with no block above the absolute gate."""
        steps = np.asarray(self._steps)
        if len(steps) < BLOCK_STEPS:
            return -math.inf
        blocks = np.lib.stride_tricks.sliding_window_view(steps, BLOCK_STEPS).sum(axis=1) / (BLOCK_STEPS * self._step)
        with np.errstate(divide="ignore"):
            level = -0.691 + 10 * np.log10(blocks)
        loud = blocks[level >= ABSOLUTE_GATE]
        if not len(loud):
            return -math.inf
        relative = -0.691 + 10 * math.log10(loud.mean()) + RELATIVE_GATE
        kept = loud[-0.691 + 10 * np.log10(loud) >= relative]
        return -0.691 + 10 * math.log10(kept.mean())

    def true_peak(self) -> float:
        """The true peak (dBTP; -inf for silence), the last samples' once ``finish`` was called."""
        return 20 * math.log10(self._peak) if self._peak > 0 else -math.inf


class Normaliser:
    """``gain_db``, then a true-peak limiter at ``ceiling_dbtp``, over a signal of ``channels``
    channels fed in pieces (``process``, then ``flush`` at its end). Together they return exactly
    as many samples as were fed, the same ones whatever the pieces' sizes (to the rounding of a
    running sum). Not thread-safe.

    Sample ``i``'s gain ``g[i]``: each sample may be let through at ``a[i]`` = the ceiling over its
    true peak (at most 1); ``m[i]`` is the least ``a`` over the look-ahead (``i`` to ``i + A - 1``),
    ``g0[i]`` the mean of ``m`` over the ``A`` samples up to ``i`` (every one of them saw ``a[i]``,
    so ``g0[i] <= a[i]``: the gain slides down ahead of a peak); ``g[i]`` rises from a dip by at
    most ``1 / (RELEASE_S * rate)`` a sample (the least over ``k <= i`` of ``g0[k] + (i - k) *
    slope``)."""

    def __init__(self, rate: int, channels: int, gain_db: float, ceiling_dbtp: float) -> None:
        self.channels = channels
        self._gain = 10 ** (gain_db / 20)
        self._ceiling = 10 ** ((ceiling_dbtp - MARGIN_DB) / 20)
        self._ahead = max(1, round(LOOKAHEAD_S * rate))
        self._slope = 1.0 / max(1, round(RELEASE_S * rate))
        #: the scaled signal from index ``_start`` on (zeros before the signal)
        self._s = np.zeros((_HALF - 1, channels))
        self._start = -(_HALF - 1)
        self._a_next = 0  # the next sample whose ``a`` is computed
        self._a = np.zeros(0)  # ``a`` of the samples from ``_m_next`` to ``_a_next``
        self._m_next = 0  # the next sample whose ``m`` (and gain, and output) is computed
        self._m_before = np.ones(self._ahead - 1)  # ``m`` of the ``A - 1`` samples before ``_m_next``
        self._rise = math.inf  # the least ``g0[k] - k * slope`` so far
        self._taken = 0
        #: samples the limiter turned down
        self.limited = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        """More samples ((n,) or (n, channels)): the output's samples that are final now."""
        x = np.asarray(x, np.float64).reshape(len(x), self.channels)
        self._taken += len(x)
        return self._run(x * self._gain)

    def flush(self) -> np.ndarray:
        """The rest of the output (the signal's end: zeros after it)."""
        given = self._m_next
        out = self._run(np.zeros((_HALF + self._ahead, self.channels)))
        return out[: max(0, self._taken - given)]

    def _run(self, x: np.ndarray) -> np.ndarray:
        self._s = np.concatenate([self._s, x])
        # ``a`` of every sample whose true peak can be computed now (``_HALF`` samples after it)
        first = self._a_next - (_HALF - 1) - self._start  # its window's first sample, in ``_s``
        peaks = np.zeros(0)
        for c in range(self.channels):
            p = oversampled_peaks(self._s[first:, c])
            peaks = p if not len(peaks) else np.maximum(peaks, p)
        with np.errstate(divide="ignore"):
            a = np.minimum(1.0, self._ceiling / peaks)
        self._a = np.concatenate([self._a, a])
        self._a_next += len(a)
        # ``m`` and the gain of every sample whose look-ahead is known
        count = len(self._a) - self._ahead + 1
        if count <= 0:
            return np.zeros((0, self.channels))
        half = self._ahead // 2  # the filter's window is centred: sample ``half`` on is the look-ahead's
        m = minimum_filter1d(self._a, self._ahead)[half : half + count]
        self._a = self._a[count:]
        joined = np.concatenate([self._m_before, m])
        sums = np.cumsum(np.concatenate([[0.0], joined]))
        g0 = (sums[self._ahead :] - sums[: len(sums) - self._ahead]) / self._ahead
        self._m_before = joined[len(joined) - (self._ahead - 1) :]
        k = self._m_next + np.arange(count)
        rise = np.minimum.accumulate(np.concatenate([[self._rise], g0 - k * self._slope]))[1:]
        self._rise = float(rise[-1])
        gain = np.minimum(rise + k * self._slope, 1.0)
        at = self._m_next - self._start
        out: np.ndarray = self._s[at : at + count] * gain[:, None]
        self.limited += int((gain < 1.0).sum())
        self._m_next += count
        keep = min(self._m_next, self._a_next - (_HALF - 1))  # what the next pass still reads
        self._s = self._s[keep - self._start :]
        self._start = keep
        return out


@dataclass(frozen=True)
class LoudnessPlan:
    """How a track is brought to its target: the gain before the limiter, and what was measured
    before (the track as made) and after (as it will be written)."""

    target: LoudnessTarget
    gain_db: float
    before_lufs: float
    before_dbtp: float
    after_lufs: float
    after_dbtp: float


def measure(pieces: Iterable[np.ndarray], rate: int, channels: int = 1) -> tuple[float, float]:
    """(integrated loudness LUFS, true peak dBTP) of a signal given in pieces."""
    meter = LoudnessMeter(rate, channels)
    for piece in pieces:
        meter.add(piece)
    meter.finish()
    return meter.integrated(), meter.true_peak()


def normalised(
    pieces: Iterable[np.ndarray], rate: int, channels: int, gain_db: float, ceiling: float
) -> Iterable[np.ndarray]:
    """``pieces`` through a ``Normaliser``: the same samples, brought up by ``gain_db`` and limited."""
    norm = Normaliser(rate, channels, gain_db, ceiling)
    for piece in pieces:
        out = norm.process(piece)
        if len(out):
            yield out
    yield norm.flush()


def plan_loudness(
    source: Callable[[], Iterable[np.ndarray]], rate: int, channels: int, target: LoudnessTarget
) -> LoudnessPlan:
    """The gain that brings the track ``source()`` makes (again for each pass) to ``target``'s
    loudness, its true peak under the ceiling: measured as made, then through the normaliser until
    its loudness is within ``TOLERANCE_LU`` (at most ``MAX_PASSES``: a track whose peaks the limiter
    must take down by much loses some loudness each pass). Where the gain keeps every true peak under
    the ceiling the limiter never acts: the gain is exact, no pass is needed. A silent track: no gain."""
    before, peak = measure(source(), rate, channels)
    if not math.isfinite(before):
        return LoudnessPlan(target, 0.0, before, peak, before, peak)
    gain = target.integrated_lufs - before
    if peak + gain <= target.true_peak_dbtp - MARGIN_DB:  # the limiter stays idle: the gain is exact
        return LoudnessPlan(target, gain, before, peak, before + gain, peak + gain)
    after, after_peak = before, peak
    for _ in range(MAX_PASSES):
        after, after_peak = measure(normalised(source(), rate, channels, gain, target.true_peak_dbtp), rate, channels)
        miss = target.integrated_lufs - after
        if abs(miss) <= TOLERANCE_LU:
            break
        gain += miss
    return LoudnessPlan(target, gain, before, peak, after, after_peak)
