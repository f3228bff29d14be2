"""Mark synthetic speech and detect the mark: float32 mono audio at any rate in, the same out.

The signal path around the PerTh network (``perth``): resample to its 32 kHz with soxr, a
``torch.stft`` log-magnitude spectrogram, the encoder's residual on the sub-band under 2 kHz,
and back. Only the mark is resampled and added: its spectrogram is the change in magnitude with
each bin's own phase (``torch.polar(marked - magnitude, phase)``), ``torch.istft``'s inverse of that
is resampled to the caller's rate and added to the untouched input, so the output differs from the
input by the mark alone (no resampling round trip of the speech, the same length). The network
reads the mark from the magnitudes only, at any rate whose band holds 2 kHz (``MIN_RATE``).

The decoder's one presence score per clip is the ``probability`` (clipped to [0, 1]). It was trained
to score a clip, not a frame (its per-frame tracks spike on unmarked speech), so the ``spans`` are
read the same way: the decoder scores windows of ``SPAN_WINDOW_S`` every ``SPAN_STEP_S`` (one batch),
and the windows over ``SPAN_THRESHOLD`` are joined.

Thread safety: a ``Watermarker`` holds one network, loaded once (``shared()``: lazily, once per
process, under a lock) and only read; every call runs under ``torch.inference_mode()`` and keeps
its state on its own stack, so any number of threads may mark and detect at once (torch's own
intra-op threads are shared; the caller bounds how many calls run together).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soxr
import torch

from translate_svc.marking.perth import PerthNetwork, SpectrumParams, hann, load_network

#: the lowest sample rate accepted: its band (to half the rate) must hold the mark's (to 2 kHz)
#: with soxr's transition band to spare
MIN_RATE = 8_000
#: soxr's quality preset (as translate_svc.audio.resample): transparent for speech
QUALITY = "HQ"
#: spans: the decoder reads windows of this many seconds, this far apart (the last one ends with
#: the clip), and a window scoring over ``SPAN_THRESHOLD`` is marked; measured on the shared speech
#: (docs/performance.md): 2 s windows of unmarked speech up to 0.68, of marked speech 0.91 and over
SPAN_WINDOW_S = 2.0
SPAN_STEP_S = 1.0
SPAN_THRESHOLD = 0.75


class MarkingInputError(ValueError):
    """Audio the watermarker cannot take (its message says what to fix)."""


@dataclass(frozen=True)
class Detection:
    """A detector's answer for one clip.

    ``probability``: how surely the clip carries the mark (0-1; marked speech reads near 1,
    unmarked near 0). It is the decoder's score, not calibrated: clips of 2 s of speech and more
    are told apart (unmarked up to 0.68 measured, marked 0.91 and over), shorter ones are not
    (unmarked 0.5-1 s clips up to 0.89). ``spans``: (start_s, end_s) stretches of the clip read as marked, in order.
    ``watermarker``: which mark was looked for (scheme and trained checkpoint)."""

    probability: float
    spans: tuple[tuple[float, float], ...]
    watermarker: str


def _check(wave: np.ndarray, rate: int) -> np.ndarray:
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer):
        raise MarkingInputError(f"the sample rate must be a whole number of Hz, got {rate!r}")
    if rate < MIN_RATE:
        raise MarkingInputError(f"sample rate {rate!r} Hz is too low to carry the mark: give {MIN_RATE} Hz or more")
    x = np.asarray(wave)
    if x.ndim != 1:
        raise MarkingInputError(f"expected mono samples (one dimension), got shape {x.shape}: mix or pick a channel")
    if not np.issubdtype(x.dtype, np.floating):
        raise MarkingInputError(f"expected float samples in [-1, 1], got {x.dtype}: scale PCM to float32 first")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise MarkingInputError("the samples hold NaN or infinity")
    return x


def _resample(x: np.ndarray, rate_in: int, rate_out: int, length: int | None = None) -> np.ndarray:
    y = x if rate_in == rate_out else soxr.resample(x, rate_in, rate_out, quality=QUALITY)
    if length is not None and len(y) != length:
        y = y[:length] if len(y) > length else np.pad(y, (0, length - len(y)))
    return np.asarray(y, dtype=np.float32)


class Watermarker:
    """Marks waves and detects the mark with one PerTh network (see the module's docstring)."""

    def __init__(self, network: PerthNetwork, step: int) -> None:
        self._network = network
        self._params: SpectrumParams = network.params
        self._window = hann(self._params)
        self.name = f"perth-implicit@{step}"

    @classmethod
    def load(cls) -> Watermarker:
        network, step = load_network()
        return cls(network, step)

    # -- the spectrogram -------------------------------------------------------------------

    def _spectrum(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, N) 32 kHz samples -> (B, F, T) complex STFT (centred, reflected edges)."""
        p = self._params
        return torch.stft(
            batch,
            n_fft=p.n_fft,
            hop_length=p.hop,
            win_length=p.window,
            window=self._window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )

    def _normalise(self, magnitude: torch.Tensor) -> torch.Tensor:
        """Linear magnitudes -> dB over the floor, in units of ``db_span`` (the network's input)."""
        p = self._params
        db = 20.0 * torch.log10(magnitude.clamp(min=p.magnitude_floor))
        return (db - p.floor_db) / p.db_span

    def _spectra(self, waves: Sequence[np.ndarray], rate: int) -> tuple[list[torch.Tensor], list[int]]:
        """Each wave's own (F, T) spectrum at 32 kHz (one at a time, so each has its own reflected
        edges, as alone; a wave shorter than one FFT is zero-padded to it), and its length there."""
        p = self._params
        resampled = [_resample(w, rate, p.sample_rate) for w in waves]
        spectra = [
            self._spectrum(torch.from_numpy(np.pad(r, (0, max(0, p.n_fft - len(r)))))[None])[0] for r in resampled
        ]
        return spectra, [len(r) for r in resampled]

    def _normalised_batch(self, spectra: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, F, T_max): the spectra's normalised magnitudes, the shorter ones followed by zeros
        (silence: the floor). The network reads such frames as no sound, but its convolutions see
        their biases there where a clip alone ends in each layer's zero padding: a clip's last
        0.2 s (their reach, 15 frames, and half a window) may differ from that clip alone."""
        batch = torch.zeros(len(spectra), spectra[0].shape[0], max(s.shape[1] for s in spectra))
        for row, spectrum in zip(batch, spectra, strict=True):
            row[:, : spectrum.shape[1]] = self._normalise(spectrum.abs())
        return batch

    # -- marking ---------------------------------------------------------------------------

    def mark(self, wave: np.ndarray, rate: int) -> np.ndarray:
        """``wave`` (float32 mono at ``rate``) with the mark added: same length, same rate."""
        return self.mark_many([wave], rate)[0]

    def mark_many(self, waves: Sequence[np.ndarray], rate: int) -> list[np.ndarray]:
        """Several waves at one rate, the network run on them as one batch; each answer is its own
        length and equals ``mark`` of that wave alone but in the last 0.2 s of one shorter than the
        longest (``_normalised_batch``), still marked there."""
        checked = [_check(w, rate) for w in waves]
        if not checked:
            return []
        p = self._params
        out = []
        with torch.inference_mode():
            spectra, lengths = self._spectra(checked, rate)
            residuals = self._network.encoder(self._normalised_batch(spectra))
            for wave, spectrum, residual, length in zip(checked, spectra, residuals, lengths, strict=True):
                sub = spectrum[: p.subband]
                magnitude = sub.abs().clamp(min=p.magnitude_floor)
                marked = magnitude * torch.pow(10.0, residual[:, : sub.shape[1]] * (p.db_span / 20.0))
                change = torch.zeros_like(spectrum)
                change[: p.subband] = torch.polar(marked - magnitude, sub.angle())
                delta = torch.istft(
                    change,
                    n_fft=p.n_fft,
                    hop_length=p.hop,
                    win_length=p.window,
                    window=self._window,
                    center=True,
                    length=max(length, p.n_fft),
                )
                out.append(wave + _resample(delta[:length].numpy(), p.sample_rate, rate, length=len(wave)))
        return out

    # -- detecting -------------------------------------------------------------------------

    def detect(self, wave: np.ndarray, rate: int) -> Detection:
        """How surely ``wave`` (float32 mono at ``rate``) carries the mark, and where."""
        x = _check(wave, rate)
        if not len(x):
            return Detection(0.0, (), self.name)
        p = self._params
        spectra, lengths = self._spectra([x], rate)
        frames = 1 + lengths[0] // p.hop  # the clip's own frames (not its padding to one FFT)
        width, step = round(SPAN_WINDOW_S * p.sample_rate / p.hop), round(SPAN_STEP_S * p.sample_rate / p.hop)
        starts = [*range(0, frames - width, step), max(0, frames - width)]
        with torch.inference_mode():
            normalised = self._normalised_batch(spectra)
            probability = float(self._network.decoder(normalised)[0].clamp(0.0, 1.0))
            if frames > width:
                windows = torch.stack([normalised[0, :, s : s + width] for s in starts])
                scores = self._network.decoder(windows).numpy()
            else:
                starts, scores = [0], np.array([probability])
        frame_s = p.hop / p.sample_rate
        hot = [(s * frame_s, (s + width) * frame_s) for s, v in zip(starts, scores, strict=True) if v > SPAN_THRESHOLD]
        return Detection(probability, _merged(hot, len(x) / rate), self.name)


def _merged(windows: list[tuple[float, float]], duration: float) -> tuple[tuple[float, float], ...]:
    """Overlapping or touching (start_s, end_s) windows, in order, joined; ends clipped to the clip."""
    spans: list[tuple[float, float]] = []
    for start, end in windows:
        if spans and start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], end))
        else:
            spans.append((start, end))
    return tuple((round(a, 3), round(min(b, duration), 3)) for a, b in spans)


_shared: Watermarker | None = None
_shared_lock = threading.Lock()


def shared() -> Watermarker:
    """The process's one watermarker, loaded on first use (about 40 MB of weights read once)."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = Watermarker.load()
    return _shared


__all__ = ["MIN_RATE", "Detection", "MarkingInputError", "Watermarker", "shared"]
