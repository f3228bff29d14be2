"""Resemblyzer's GE2E speaker encoder run with numpy: 16 kHz speech -> a 256-value voice embedding.

The weights are the ``pretrained.pt`` that the ``Resemblyzer`` wheel ships (Apache 2.0), found with
``importlib.util.find_spec`` without importing the package (its ``__init__`` imports webrtcvad,
librosa and torch) and read with ``checkpoint.load_state`` (no torch). The computation is
Resemblyzer's ``VoiceEncoder.embed_utterance``: a 40-band mel power spectrogram (25 ms windows,
10 ms hop: librosa's ``melspectrogram`` with Slaney mel filters), cut into 1.6 s partials at 1.3 a
second; each partial through a 3-layer LSTM (256 units), a linear layer and a ReLU, L2-normed; the
utterance's embedding is the L2-normed mean of its partials'. Resemblyzer's ``preprocess_wav``
normalises the volume to -30 dBFS (raising only), as here, and also trims long silences with
webrtcvad, which a VAD-cut segment does not need. Equal to Resemblyzer's own layers (run in torch)
and to librosa's mel within float32 rounding: ``tests/speakers/test_encoder.py``.

``SpeakerEncoder`` is shared by every stream and thread-safe (read-only weights); one call is a
few numpy matrix products per 10 ms frame, run off the event loop by its caller.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from translate_svc.speakers.checkpoint import load_state
from translate_svc.types import MODEL_SAMPLE_RATE

N_FFT = 400  # 25 ms
HOP = 160  # 10 ms
N_MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIALS_PER_S = 1.3
MIN_COVERAGE = 0.75
_TARGET_DBFS = -30.0
#: the wheel whose weights are used (installed without its dependencies: the Makefile, the Dockerfiles)
RESEMBLYZER = "Resemblyzer==0.1.4"


class EncoderMissing(RuntimeError):
    """The Resemblyzer wheel or its pretrained.pt is not installed (raised at start-up)."""


def pretrained_path() -> Path:
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderMissing(f"the Resemblyzer package is not installed: pip install --no-deps {RESEMBLYZER}")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise EncoderMissing(f"Resemblyzer is installed but {path} is missing: pip install --no-deps {RESEMBLYZER}")
    return path


@functools.cache
def installed() -> bool:
    """Whether the weights are here (Resemblyzer is installed without its dependencies, apart from
    the project's: a server without it runs, and refuses speaker labels saying why)."""
    try:
        pretrained_path()
    except EncoderMissing:
        return False
    return True


def mel_filters(sr: int = MODEL_SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels) (Slaney scale and norm), (n_mels, 1 + n_fft // 2)."""

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        mel = f / (200.0 / 3)
        log = f >= 1000.0
        out: np.ndarray = np.where(log, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)
        return out

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        f = (200.0 / 3) * m
        out: np.ndarray = np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), f)
        return out

    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(sr / 2.0)), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    filters: np.ndarray = weights.astype(np.float32)
    return filters


_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)  # periodic Hann
_MEL = mel_filters()


def mel_spectrogram(wav: np.ndarray) -> np.ndarray:
    """librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160, n_mels=40) as
    (frames, 40) float32 (centred frames, zero padding: librosa 0.10+'s default)."""
    x = np.pad(np.asarray(wav, np.float32), N_FFT // 2)
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, shape=(n, N_FFT), strides=(x.strides[0] * HOP, x.strides[0]))
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    mel: np.ndarray = (power.astype(np.float32) @ _MEL.T).astype(np.float32)
    return mel


def partial_slices(n_samples: int) -> list[slice]:
    """Resemblyzer's ``compute_partial_slices`` (rate 1.3, min_coverage 0.75): mel frame ranges."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((MODEL_SAMPLE_RATE / PARTIALS_PER_S) / HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + step + 1)
    mels = [slice(i, i + PARTIAL_FRAMES) for i in range(0, steps, step)]
    last = mels[-1]
    coverage = (n_samples - last.start * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < MIN_COVERAGE and len(mels) > 1:
        mels = mels[:-1]
    return mels


@dataclass(frozen=True)
class Embedding:
    """An utterance's voice: ``vector`` (L2-normed mean) and its partials' (1.6 s each, L2-normed)."""

    vector: np.ndarray
    partials: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))
    return out


class SpeakerEncoder:
    """The GE2E encoder (weights read once). Thread-safe: nothing is written after ``__init__``."""

    _shared: SpeakerEncoder | None = None
    _lock = threading.Lock()

    def __init__(self, path: Path | None = None) -> None:
        state = load_state(path or pretrained_path())["model_state"]
        self._layers = [
            (
                np.ascontiguousarray(state[f"lstm.weight_ih_l{i}"].T),
                np.ascontiguousarray(state[f"lstm.weight_hh_l{i}"].T),
                (state[f"lstm.bias_ih_l{i}"] + state[f"lstm.bias_hh_l{i}"]).astype(np.float32),
            )
            for i in range(3)
        ]
        self._linear_w = np.ascontiguousarray(state["linear.weight"].T)
        self._linear_b = state["linear.bias"]

    @classmethod
    def shared(cls) -> SpeakerEncoder:
        """The process's encoder, loaded on first use (``app.py`` loads it at start)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def forward(self, mels: np.ndarray) -> np.ndarray:
        """(batch, frames, 40) mel partials -> (batch, 256) L2-normed embeddings (``VoiceEncoder.forward``)."""
        x = mels.astype(np.float32)
        batch, steps, _ = x.shape
        for w_ih, w_hh, b in self._layers:
            hidden = w_hh.shape[0]
            pre = x @ w_ih + b  # (batch, steps, 4 * hidden): the inputs' part of every step at once
            h = np.zeros((batch, hidden), np.float32)
            c = np.zeros((batch, hidden), np.float32)
            out = np.empty((batch, steps, hidden), np.float32)
            for t in range(steps):
                g = pre[:, t] + h @ w_hh
                i, f = _sigmoid(g[:, :hidden]), _sigmoid(g[:, hidden : 2 * hidden])
                cell, o = np.tanh(g[:, 2 * hidden : 3 * hidden]), _sigmoid(g[:, 3 * hidden :])
                c = f * c + i * cell
                h = o * np.tanh(c)
                out[:, t] = h
            x = out
        raw = np.maximum(x[:, -1] @ self._linear_w + self._linear_b, 0)
        normed: np.ndarray = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
        return normed

    def embed(self, wav16k: np.ndarray) -> Embedding:
        """One utterance's embedding (``VoiceEncoder.embed_utterance`` after ``normalize_volume``)."""
        wav = np.asarray(wav16k, np.float32)
        power = float(np.mean(wav.astype(np.float64) ** 2)) if len(wav) else 0.0
        if power > 0:
            change = _TARGET_DBFS - 10 * np.log10(power)
            if change > 0:
                wav = wav * np.float32(10 ** (change / 20))
        slices = partial_slices(len(wav))
        need = slices[-1].stop * HOP
        if need >= len(wav):
            wav = np.pad(wav, (0, need - len(wav)))
        mel = mel_spectrogram(wav)
        partials = self.forward(np.stack([mel[s] for s in slices]))
        mean = partials.mean(axis=0)
        return Embedding(mean / max(float(np.linalg.norm(mean)), 1e-12), partials)
