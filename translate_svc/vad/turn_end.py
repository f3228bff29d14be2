"""Smart Turn v3: is the turn that just paused complete? An end-of-turn classifier read at a VAD
pause, so that a finished sentence closes sooner than the silence rule and a mid-sentence pause
(a breath, a hesitation) does not cut it (docs/decisions.md, on Smart Turn v3).

The model is Pipecat's Smart Turn v3.2 (BSD-2): a Whisper-Tiny encoder with a classifier head over
the last 8 s of 16 kHz audio, 23 languages, an int8 ONNX file of 8.7 MB that ships inside the
``pipecat-ai`` wheel (``pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx``). Only the
file is read: the package is installed without its dependencies (its ``protobuf<7`` pin would
break our generated code) and never imported; it is found with ``importlib.util.find_spec``.

Its input is Whisper's log-mel spectrogram of exactly 8 s: the audio's last 8 s (shorter audio
zero-padded in front, so the pause is always at the end), normalised to zero mean and unit
variance, a centred 400-point STFT (reflected edges, periodic Hann window, hop 160), the power
of each bin projected onto 80 Slaney-normalised mel filters from 0 to 8 kHz, ``log10`` floored
at 1e-10, the last frame dropped, everything held within 8 (log10 units) of the loudest value and
scaled by ``(x + 4) / 4``: (80, 800) float32 values, as ``transformers.WhisperFeatureExtractor(
chunk_length=8)`` makes them (tests/vad/test_turn_end.py holds both equal). Its output is the
probability that the turn is complete, one per row: rows of any number of streams go in one call.

Thread safety: one ``SmartTurn`` serves every stream (``InferenceSession.run`` may be called from
several threads; it holds no per-call state). Cost: measured in docs/performance.md.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from translate_svc.types import MODEL_SAMPLE_RATE
from translate_svc.vad.onnx_session import one_thread_session

logger = logging.getLogger(__name__)

#: the wheel that ships the model file (its Python is not imported)
SMART_TURN_WHEEL = "pipecat-ai==1.14.0"
MODEL_FILE = Path("audio") / "turn" / "smart_turn" / "data" / "smart-turn-v3.2-cpu.onnx"
#: what the model reads: the last 8 s of 16 kHz audio
WINDOW_S = 8
WINDOW_SAMPLES = WINDOW_S * MODEL_SAMPLE_RATE
N_FFT = 400
HOP = 160
N_MELS = 80
FRAMES = WINDOW_SAMPLES // HOP  # 800 (the STFT's 801st frame is dropped)
_LOG_FLOOR = 1e-10
_VARIANCE_EPS = 1e-7
#: log10 units kept below the loudest value of a window
_DYNAMIC_RANGE = 8.0


class TurnModelMissing(RuntimeError):
    """The Smart Turn model file is not installed (``pip install --no-deps pipecat-ai==...``)."""


def exact_fused_int8(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether onnxruntime's fused int8 kernels sum this CPU's products exactly: with VNNI
    (AVX-512 VNNI, AVX-VNNI or AMX). Without it (AVX2 alone) their sums saturate and the model's
    answers move (jfk's "ask" alone 67 % complete fused, 10 % unfused, on an AMD EPYC): there it
    runs unfused, 1.7 times the CPU (docs/performance.md, "The end-of-turn model on CPUs
    without VNNI"). Not x86, or no /proc/cpuinfo: unfused."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    return re.search(r"^flags\s*:.*\b(avx512_vnni|avx_vnni|amx_int8)\b", text, re.MULTILINE) is not None


def model_path() -> Path:
    """The model file inside the installed ``pipecat-ai`` package, found without importing it."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        raise TurnModelMissing(f"the end-of-turn model is not installed: pip install --no-deps {SMART_TURN_WHEEL}")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise TurnModelMissing(
            f"pipecat-ai is installed but {path} is missing: pip install --no-deps {SMART_TURN_WHEEL}"
        )
    return path


def _slaney_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's mel scale: linear (3 mels per 200 Hz) below 1 kHz, logarithmic above it."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3.0 / 200.0
    log = 15.0 + np.log(np.maximum(hz, 1e-12) / 1000.0) * (27.0 / np.log(6.4))
    return np.where(hz >= 1000.0, log, linear)


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    """The inverse of ``_slaney_mel``."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * 200.0 / 3.0
    log = 1000.0 * np.exp((mel - 15.0) * (np.log(6.4) / 27.0))
    return np.where(mel >= 15.0, log, linear)


@functools.cache
def mel_filters() -> np.ndarray:
    """(201, 80) triangular filters, their centres evenly spaced in Slaney mels from 0 to 8 kHz,
    each scaled to unit area (2 / its width in Hz): a power spectrum's bins to mel bands."""
    edges = _slaney_hz(np.linspace(_slaney_mel(0.0), _slaney_mel(MODEL_SAMPLE_RATE / 2), N_MELS + 2))
    bins = np.linspace(0.0, MODEL_SAMPLE_RATE / 2, N_FFT // 2 + 1)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins[:, None] - lower) / (centre - lower)
    falling = (upper - bins[:, None]) / (upper - centre)
    filters: np.ndarray = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (upper - lower))
    return filters


@functools.cache
def _window() -> np.ndarray:
    """The periodic Hann window of ``N_FFT`` samples (torch's ``hann_window`` default), float64."""
    n = np.arange(N_FFT, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * n / N_FFT)


def last_window(audio: np.ndarray) -> np.ndarray:
    """The audio's last ``WINDOW_S`` seconds as float32, zero-padded in front where shorter: the
    pause the decision is about is at the end of what the model reads."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"a turn's audio is 16 kHz mono, one dimension; got shape {x.shape}")
    x = x[-WINDOW_SAMPLES:]
    return np.pad(x, (WINDOW_SAMPLES - len(x), 0)) if len(x) < WINDOW_SAMPLES else x


def features(audio: np.ndarray) -> np.ndarray:
    """(80, 800) float32 log-mel features of ``audio``'s last 8 s (16 kHz mono; module docstring)."""
    x = last_window(audio)
    x = (x - x.mean()) / np.sqrt(x.var() + _VARIANCE_EPS)  # float32, as the reference normalises
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _window(), axis=-1)) ** 2  # (801, 201)
    mel = np.log10(np.maximum(_LOG_FLOOR, power @ mel_filters())).T[:, :FRAMES]  # (80, 800)
    mel = np.maximum(mel, mel.max() - _DYNAMIC_RANGE)
    out: np.ndarray = ((mel + 4.0) / 4.0).astype(np.float32)
    return out


class SmartTurn:
    """The end-of-turn classifier: ``complete`` scores any number of turns in one model call."""

    _shared: SmartTurn | None = None
    _lock = threading.Lock()

    @classmethod
    def shared(cls) -> SmartTurn | None:
        """The process's model, loaded on first use (the front end loads it at start); None
        where it is not installed (streams that ask for it then keep the silence rule)."""
        with cls._lock:
            if cls._shared is None:
                try:
                    cls._shared = cls()
                except TurnModelMissing:
                    return None
            return cls._shared

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or model_path()
        if not self.path.is_file():
            raise TurnModelMissing(f"end-of-turn model file {self.path} does not exist")
        self._session = one_thread_session(self.path, fuse=exact_fused_int8())  # the same answers on every CPU
        inputs = {i.name: i.shape for i in self._session.get_inputs()}
        if list(inputs) != ["input_features"] or list(inputs["input_features"][1:]) != [N_MELS, FRAMES]:
            raise TurnModelMissing(f"{self.path} does not read (batch, {N_MELS}, {FRAMES}) input_features: {inputs}")
        logger.info("loaded the end-of-turn model from %s", self.path)

    def complete(self, turns: Sequence[np.ndarray]) -> list[float]:
        """For each turn's audio so far (16 kHz mono, the pause at its end), the probability that
        the turn is complete; one model call for all of them."""
        if not turns:
            return []
        batch = np.stack([features(t) for t in turns])
        (out,) = self._session.run(None, {"input_features": batch})
        return [float(p) for p in np.asarray(out).reshape(len(turns))]


__all__ = ["SMART_TURN_WHEEL", "SmartTurn", "TurnModelMissing", "features", "model_path"]
