"""Noise suppression before the VAD: RNNoise at its own rate and frame size, one state per stream,
never allowed to erase speech.

RNNoise (``librnnoise`` as the ``pyrnnoise`` wheel ships it) works on 48 kHz mono, 480 samples
(10 ms) a frame, on int16-scaled floats. A stream's 16 kHz samples go up to 48 kHz (a soxr stream),
through RNNoise a frame at a time, and back down to 16 kHz (another soxr stream), so the VAD and the
model get the suppressed audio on the stream's own timeline: ``Denoiser.process`` returns, over the
stream, exactly as many samples as it was given, each where its input was (RNNoise's two frames of
delay are taken off; what is held back comes out with ``last=True``).

RNNoise alone erased clean speech: its gains depend on what came before, and of 69
clean phrases (benchmarks/studies/ear.py) 30 came out more than 6 dB down, the worst 33.7 dB after
another voice and 28-30 dB at a stream's start or after a second of silence. So its output is
mixed with the dry signal, frame by frame (``SpeechKeeper``): a frame keeps at least the energy it
has above the stream's noise floor (the least of its smoothed frame energies over the last 3 s,
times a 9 dB margin). Clean speech stands far above its floor and comes out as it went in;
stationary noise is at the floor and is RNNoise's to remove; speech buried in noise is near the
floor too, and RNNoise's gains stand there, as before. The mix is never below ``KEEP_AT_LEAST_DB``
of the dry frame, whatever RNNoise's state.

The library is loaded with ctypes from the wheel's directory, located with
``importlib.util.find_spec`` without importing ``pyrnnoise`` (whose ``__init__`` imports audiolab,
PyAV graphs and tqdm, none needed here). A server without the wheel starts and refuses noise
suppression per request (``installed``). The library is shared and reentrant; a ``Denoiser`` is one
stream's and is used by one caller at a time (the session's ingest, on the loop or a worker thread).
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
import threading
import weakref
from collections import deque
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
#: the least of a frame the mix keeps, whatever RNNoise's gain (dB relative to the dry frame)
KEEP_AT_LEAST_DB = -20.0
#: a frame's energy above MARGIN times the noise floor is signal, kept (9 dB: the floor is a
#: minimum, below the noise's mean; 6 dB let babble's peaks through as invented speech)
MARGIN = 8.0
#: the noise floor: the least smoothed frame energy over the last SUBWINDOWS x SUBWINDOW_FRAMES
#: frames (3 s; Martin's minimum statistics, kept as the minimum of each 0.5 s sub-window)
SUBWINDOW_FRAMES = 50
SUBWINDOWS = 6
_SMOOTH = 0.7  # the frame energies' smoothing before their minimum is taken (about 30 ms)
#: a frame's dry share is the most of its own, the HOLD_FRAMES' before it (200 ms) and the
#: _LAG_FRAMES + AHEAD_FRAMES' after it (50 ms): a pause inside a phrase, and a word's soft start
#: and end, stand near the floor; taken as noise they made pauses the VAD cut phrases at
HOLD_FRAMES = 20
#: frames the mix waits past RNNoise's own lag (30 ms more latency with suppression on)
AHEAD_FRAMES = 3


#: the wheel this needs (pyproject's pin)
PYRNNOISE = "pyrnnoise>=0.4.5,<0.5"


class DenoiserMissing(RuntimeError):
    """The pyrnnoise wheel or its librnnoise is not installed (``installed`` says so without raising)."""


def rnnoise_library_path() -> Path:
    """``librnnoise.so`` inside the installed pyrnnoise wheel, found without importing the package."""
    spec = importlib.util.find_spec("pyrnnoise")
    if spec is None or not spec.submodule_search_locations:
        raise DenoiserMissing(f"the pyrnnoise package is not installed: pip install '{PYRNNOISE}'")
    path = Path(next(iter(spec.submodule_search_locations))) / "librnnoise.so"
    if not path.is_file():
        raise DenoiserMissing(f"pyrnnoise is installed but {path} is missing: reinstall pyrnnoise")
    return path


@functools.cache
def installed() -> bool:
    """Whether librnnoise is here and loads (``Rnnoise.shared``, so the server's start loads it, not
    a first request on the loop): noise suppression is an option per request, so a server without
    it starts, and refuses the option saying why (``session/task/checks.py``'s ``check_ear``)."""
    try:
        Rnnoise.shared()
    except (DenoiserMissing, OSError):  # absent, or a library that does not load here
        return False
    return True


class SpeechKeeper:
    """One stream's mix of RNNoise's output with the dry signal, frame by frame, so that no frame
    loses the energy it has above the stream's noise floor (module docstring). Pure and per stream:
    int16-scaled 48 kHz frames in, as RNNoise takes them; one caller at a time.

    Each frame's dry share ``w`` (0: RNNoise's output, 1: the dry frame) is ``sqrt(S / E)``, where
    ``E`` is the frame's energy and ``S = E - MARGIN * floor`` the part of it above the noise
    floor, and never less than ``KEEP_AT_LEAST_DB``; it moves from one frame's to the next's along
    the frame (a ramp, not a step: no click at 100 Hz). A frame's share is then the most of the
    shares of the ``hold`` frames before it, its own and the ``lag_frames + ahead`` after it: the
    quiet starts and ends of words and the short pauses inside a phrase sit near the floor, and
    RNNoise's gains lag a word's start; suppressed, they left pauses 60 ms longer than the dry
    audio's and the VAD cut clean phrases in two (5 of 104 in benchmarks/studies/ear.py; jfk.flac's
    second phrase at 3.84 s). The floor follows the frames as they come (a fall at once, a rise
    within 3 s: after digital silence, noise that starts passes as it is for up to 3 s); RNNoise's
    output of a frame comes ``lag_frames`` later (its delay), and the frame, its share and
    RNNoise's output are held ``ahead`` frames more."""

    def __init__(
        self,
        frame: int,
        lag_frames: int = _LAG_FRAMES,
        least_db: float = KEEP_AT_LEAST_DB,
        hold: int = HOLD_FRAMES,
        ahead: int = AHEAD_FRAMES,
    ) -> None:
        self._least = 10 ** (least_db / 20)
        self._held = np.zeros((lag_frames + ahead, frame), np.float32)  # the dry frames not mixed yet
        self._held_wet = np.zeros((ahead, frame), np.float32)  # RNNoise's output not mixed yet
        self._held_shares = np.full(lag_frames + ahead, self._least, np.float32)  # the held dry frames' shares
        self._past = np.full(hold, self._least, np.float32)  # the shares of the last frames mixed
        self._span = hold + lag_frames + ahead + 1  # the frames whose most is a frame's share
        self._smoothed: float | None = None
        self._mins: deque[float] = deque(maxlen=SUBWINDOWS - 1)  # the finished sub-windows' minima
        self._least_now = math.inf  # this sub-window's so far
        self._counted = 0
        self._share = self._least  # the last frame's dry share
        self._ramp = np.arange(1, frame + 1, dtype=np.float32) / frame
        self.ahead = ahead

    def shares(self, energies: np.ndarray) -> np.ndarray:
        """Each frame's dry share, from its energy, as the frames come (the floor follows them)."""
        out = np.empty(len(energies), np.float32)
        for i, e in enumerate(energies.tolist()):
            s = e if self._smoothed is None else _SMOOTH * self._smoothed + (1 - _SMOOTH) * e
            self._smoothed = s
            self._least_now = min(self._least_now, s)
            floor = min(self._least_now, min(self._mins, default=math.inf))
            self._counted += 1
            if self._counted == SUBWINDOW_FRAMES:
                self._mins.append(self._least_now)
                self._least_now, self._counted = math.inf, 0
            above = e - MARGIN * floor
            out[i] = max(self._least, math.sqrt(above / e)) if above > 0 else self._least
        return out

    def mix(self, given: np.ndarray, wet: np.ndarray) -> np.ndarray:
        """RNNoise's output ``wet`` for the frames ``given`` to it now (a copy, taken before it
        worked in place), mixed with the dry frames it stands for, (n, frame) each."""
        n = len(given)
        if not n:
            return wet
        frames = np.concatenate([self._held, given])
        wets = np.concatenate([self._held_wet, wet])
        shares = np.concatenate([self._held_shares, self.shares(np.mean(np.square(given, dtype=np.float64), axis=1))])
        around = np.concatenate([self._past, shares])
        dry, w = frames[:n], np.lib.stride_tricks.sliding_window_view(around, self._span).max(axis=1)[:n]
        wet = wets[:n]
        self._held, self._held_shares, self._held_wet = frames[n:].copy(), shares[n:].copy(), wets[n:].copy()
        self._past = around[n : n + len(self._past)].copy()
        start = np.concatenate([[self._share], w[:-1]]).astype(np.float32)
        self._share = float(w[-1])
        ramp = start[:, None] + (w - start)[:, None] * self._ramp[None, :]
        out: np.ndarray = wet + ramp * (dry - wet)
        return out


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

    def __init__(self, lib: Rnnoise | None = None, *, keep_speech: bool = True) -> None:
        """``keep_speech``: mix RNNoise's output with the dry signal (``SpeechKeeper``); off, its
        output alone (RNNoise alone, which erased clean speech: the study's "before")."""
        self._lib = lib or Rnnoise.shared()
        self._state = self._lib.create()
        self._free = weakref.finalize(self, self._lib.destroy, self._state)
        kw = {"dtype": "float32", "quality": "HQ"}
        self._up = soxr.ResampleStream(MODEL_SAMPLE_RATE, RNNOISE_RATE, 1, **kw)
        self._down = soxr.ResampleStream(RNNOISE_RATE, MODEL_SAMPLE_RATE, 1, **kw)
        self._carry = np.zeros(0, np.float32)  # 48 kHz samples short of a frame
        self._keeper = SpeechKeeper(self._lib.frame) if keep_speech else None
        # RNNoise's output lags its input, and the mix waits a little more (48 kHz samples)
        self._lag = _LAG_FRAMES + (self._keeper.ahead if self._keeper is not None else 0)
        self._skip = self._lag * self._lib.frame
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
            up = np.concatenate([up, np.zeros((self._lag + 1) * self._lib.frame, np.float32)])
        buf = np.concatenate([self._carry, up]) if len(self._carry) else up
        n = len(buf) // self._lib.frame * self._lib.frame
        frames = (buf[:n] * _SCALE).reshape(-1, self._lib.frame)
        self._carry = np.ascontiguousarray(buf[n:], dtype=np.float32)
        given = frames.copy() if self._keeper is not None else None  # RNNoise works in place
        self._lib.process(self._state, frames)
        if self._keeper is not None and given is not None:
            frames = self._keeper.mix(given, frames)
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
