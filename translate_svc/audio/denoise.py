"""Noise suppression before the VAD: RNNoise at its own rate and frame size, one state per stream.

RNNoise (``librnnoise`` as the ``pyrnnoise`` wheel ships it) works on 48 kHz mono, 480 samples
(10 ms) a frame, on int16-scaled floats. A stream's 16 kHz samples go up to 48 kHz (a soxr stream),
through RNNoise a frame at a time, and back down to 16 kHz (another soxr stream), so the VAD and the
model get the suppressed audio on the stream's own timeline: ``Denoiser.process`` returns, over the
stream, exactly as many samples as it was given, each where its input was (RNNoise's one-frame delay
is taken off; what is held back comes out with ``last=True``).

The library is loaded with ctypes from the wheel's directory, located with
``importlib.util.find_spec`` without importing ``pyrnnoise`` (whose ``__init__`` imports audiolab,
PyAV graphs and tqdm, none needed here). The library is shared and reentrant; a ``Denoiser`` is one
stream's and is used by one caller at a time (the session's ingest, on the loop or a worker thread).
"""

from __future__ import annotations

import ctypes
import importlib.util
import threading
import weakref
from pathlib import Path

import numpy as np
import soxr

from translate_svc.types import MODEL_SAMPLE_RATE

#: RNNoise's own rate and frame (the library says its frame size; 480 in every release)
RNNOISE_RATE = 48_000
_SCALE = 32768.0  # RNNoise works on int16-scaled floats
#: RNNoise's output lags its input by two frames (20 ms; measured by cross-correlation on speech,
#: tests/audio/test_denoise.py): taken off, so suppressed audio stays where its input was
_LAG_FRAMES = 2


class DenoiserMissing(RuntimeError):
    """The pyrnnoise wheel or its librnnoise is not installed (raised at start-up, not per request)."""


def rnnoise_library_path() -> Path:
    """``librnnoise.so`` inside the installed pyrnnoise wheel, found without importing the package."""
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        raise DenoiserMissing("the pyrnnoise package is not installed: pip install 'pyrnnoise>=0.4.5,<0.5'")
    path = Path(next(iter(spec.submodule_search_locations))) / "librnnoise.so"
    if not path.is_file():
        raise DenoiserMissing(f"pyrnnoise is installed but {path} is missing: reinstall pyrnnoise")
    return path


class Rnnoise:
    """The loaded library (one per process, ``Rnnoise.shared()``): thread-safe, it holds no state of
    its own; each stream's state is made with ``create`` and freed with ``destroy``."""

    _shared: Rnnoise | None = None
    _lock = threading.Lock()

    def __init__(self, path: Path | None = None) -> None:
        lib = ctypes.CDLL(str(path or rnnoise_library_path()))
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_destroy.restype = None
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        self._lib = lib
        #: samples per frame at 48 kHz (480: 10 ms)
        self.frame = int(lib.rnnoise_get_frame_size())

    @classmethod
    def shared(cls) -> Rnnoise:
        """The process's library, loaded on first use (``app.py`` loads it at start when enabled)."""
        with cls._lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def create(self) -> int:
        state = self._lib.rnnoise_create(None)
        if not state:
            raise MemoryError("rnnoise_create failed")
        return int(state)

    def destroy(self, state: int) -> None:
        self._lib.rnnoise_destroy(state)

    def process(self, state: int, frames: np.ndarray) -> None:
        """Suppress noise in ``frames`` (float32, int16-scaled, shape (n, frame)) in place."""
        for row in frames:
            ptr = row.ctypes.data
            self._lib.rnnoise_process_frame(state, ptr, ptr)


class Denoiser:
    """One stream's noise suppressor: 16 kHz float32 in, the same number of samples out (over the
    stream), suppressed. Not thread-safe: one caller at a time. ``close`` (or garbage collection)
    frees the RNNoise state."""

    def __init__(self, lib: Rnnoise | None = None) -> None:
        self._lib = lib or Rnnoise.shared()
        self._state = self._lib.create()
        self._free = weakref.finalize(self, self._lib.destroy, self._state)
        kw = {"dtype": "float32", "quality": "HQ"}
        self._up = soxr.ResampleStream(MODEL_SAMPLE_RATE, RNNOISE_RATE, 1, **kw)
        self._down = soxr.ResampleStream(RNNOISE_RATE, MODEL_SAMPLE_RATE, 1, **kw)
        self._carry = np.zeros(0, np.float32)  # 48 kHz samples short of a frame
        self._skip = _LAG_FRAMES * self._lib.frame  # RNNoise's output lags its input (48 kHz samples)
        self._given = 0  # 16 kHz samples given
        self._returned = 0  # 16 kHz samples returned
        self.finished = False

    def process(self, samples16k: np.ndarray, *, last: bool = False) -> np.ndarray:
        """The suppressed audio available so far (``last``: all the rest, and the end)."""
        if self.finished or not self._free.alive:
            raise RuntimeError("the denoiser received its last chunk or was closed; make a new one per stream")
        x = np.ascontiguousarray(samples16k, dtype=np.float32)
        self._given += len(x)
        up = self._up.resample_chunk(x, last=last)
        if last:  # push the held frame and RNNoise's lag through with silence
            up = np.concatenate([up, np.zeros((_LAG_FRAMES + 1) * self._lib.frame, np.float32)])
        buf = np.concatenate([self._carry, up]) if len(self._carry) else up
        n = len(buf) // self._lib.frame * self._lib.frame
        frames = (buf[:n] * _SCALE).reshape(-1, self._lib.frame)
        self._carry = np.ascontiguousarray(buf[n:], dtype=np.float32)
        self._lib.process(self._state, frames)
        clean = frames.reshape(-1) / _SCALE
        if self._skip:
            cut = min(self._skip, len(clean))
            clean, self._skip = clean[cut:], self._skip - cut
        out = np.asarray(self._down.resample_chunk(clean.astype(np.float32), last=last), dtype=np.float32)
        if last:  # exactly as many samples as were given, over the stream
            out = out[: self._given - self._returned]
            out = np.pad(out, (0, self._given - self._returned - len(out)))
            self.finished = True
            self.close()
        self._returned += len(out)
        return out

    def close(self) -> None:
        self._free()
