"""Silero VAD v5/v6 run with onnxruntime: one shared session, state kept per stream.

The ONNX file comes from the installed ``silero-vad`` wheel, located with ``importlib.util.find_spec``
rather than by importing ``silero_vad``: importing that package imports torch and calls
``torch.set_num_threads(1)`` for the whole process, which would slow the model thread.

The calling convention is the one of silero's own ``OnnxWrapper`` (``silero_vad/utils_vad.py``):
each call takes one 512-sample window at 16 kHz with the previous window's last 64 samples
prepended (the "context"), the recurrent state (2, batch, 128) and the rate as an int64 scalar;
it returns one speech probability and the next state. Reproducing it exactly gives the same
probabilities as silero's ``get_speech_timestamps``, so its tuned defaults keep their meaning.

Streams never call the model themselves: every call goes through the one
:class:`~translate_svc.vad.worker.VadWorker`, which scores the streams' states together on its
thread; a session pushes the probabilities into its :class:`~translate_svc.vad.segmenter.Segmenter`.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from translate_svc.types import MODEL_SAMPLE_RATE
from translate_svc.vad.onnx_session import one_thread_session
from translate_svc.vad.segmenter import WINDOW_SAMPLES

logger = logging.getLogger(__name__)

# WINDOW_SAMPLES (512, 32 ms) is the only window size silero v5+ accepts at 16 kHz.
#: Samples of the previous window prepended to each window.
CONTEXT_SAMPLES = 64
_STATE_SHAPE = (2, 1, 128)
_SR = np.array(MODEL_SAMPLE_RATE, dtype=np.int64)


class SileroModelMissing(RuntimeError):
    """The silero-vad wheel or its ONNX file is not installed (raised at start-up, not per request)."""


def silero_onnx_path() -> Path:
    """Path of ``silero_vad.onnx`` inside the installed silero-vad wheel, without importing it."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise SileroModelMissing("the silero-vad package is not installed: pip install 'silero-vad==6.2.3'")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.onnx"
    if not path.is_file():
        raise SileroModelMissing(f"silero-vad is installed but {path} is missing: reinstall silero-vad")
    return path


@dataclass
class SileroState:
    """Per-stream VAD state: recurrent state, last 64 samples, samples not yet a whole window.

    Mutable and owned by one stream; never share one between streams or threads. Its arrays are
    replaced by each call, never written in place (they may be views of a batched call's arrays),
    so a caller that kept the old references can put a state back as it was (``VadWorker``).
    """

    rnn: np.ndarray = field(default_factory=lambda: np.zeros(_STATE_SHAPE, dtype=np.float32))
    context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT_SAMPLES, dtype=np.float32))
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    #: Windows scored so far (probability i belongs to samples [512 i, 512 (i + 1)) of the stream).
    windows: int = 0


def with_pending(states: Sequence[SileroState], chunks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each stream's samples not yet a whole window, then its new chunk (16 kHz float32 mono): what
    its next windows are cut from. States must be distinct; a chunk must be 1-D."""
    if len({id(s) for s in states}) != len(states):
        raise ValueError("each stream's state may appear once per call")
    bufs = []
    for state, chunk in zip(states, chunks, strict=True):
        x = np.ascontiguousarray(chunk, dtype=np.float32)
        if x.ndim != 1:
            raise ValueError(f"expected 1-D mono samples, got shape {x.shape}")
        bufs.append(np.concatenate([state.pending, x]) if state.pending.size else x)
    return bufs


class SileroVad:
    """One onnxruntime session for the whole process; call :meth:`new_state` per stream.

    Thread-safety: ``InferenceSession.run`` may be called concurrently from several threads and
    this object holds no per-call state, so one instance serves every stream. Each call runs on
    one intra-op thread (the model is tiny; more threads only add contention with the model
    thread). Cost: roughly 0.1 ms of CPU per 32 ms window.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or silero_onnx_path()
        if not self.path.is_file():
            raise SileroModelMissing(f"silero VAD model file {self.path} does not exist")
        self._session = one_thread_session(self.path)
        # Fail at start-up, not on the first stream, if the file's interface is not the expected one.
        silence = self.probabilities(self.new_state(), np.zeros(WINDOW_SAMPLES, dtype=np.float32))
        if silence.shape != (1,) or not 0.0 <= float(silence[0]) < 0.5:
            raise SileroModelMissing(f"{self.path} does not behave like silero VAD v5/v6 (silence scored {silence})")
        logger.info("loaded silero VAD from %s", self.path)

    def new_state(self) -> SileroState:
        """Fresh state for a new stream (as silero's ``reset_states``)."""
        return SileroState()

    def probabilities(self, state: SileroState, samples16k: np.ndarray) -> np.ndarray:
        """Score every whole 512-sample window now available; keep the remainder in ``state``.

        ``samples16k`` continues the stream (16 kHz float32 mono). Returns one float32 speech
        probability per newly completed window, in stream order (possibly none).
        """
        return self.probabilities_many([state], [samples16k])[0]

    def probabilities_many(self, states: Sequence[SileroState], chunks: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`probabilities` for several streams at once: window k of every stream that has
        one goes into the same batched model call (silero's state and context are per row, so a
        row's result equals its single-stream call). One call per window index, not per window:
        under load this is what keeps VAD off the critical path. States must be distinct."""
        bufs = with_pending(states, chunks)
        counts = [b.size // WINDOW_SAMPLES for b in bufs]
        probs = [np.empty(n, dtype=np.float32) for n in counts]
        for k in range(max(counts, default=0)):
            rows = [r for r, n in enumerate(counts) if n > k]
            if len(rows) == 1:
                r = rows[0]
                probs[r][k] = self._step(states[r], bufs[r][k * WINDOW_SAMPLES : (k + 1) * WINDOW_SAMPLES])
                continue
            # the rows written in place (no per-row arrays), and each row's next state left as a
            # view of this call's arrays: a few microseconds a row, with twenty rows a call
            x = np.empty((len(rows), CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)
            rnn = np.empty((_STATE_SHAPE[0], len(rows), _STATE_SHAPE[2]), dtype=np.float32)
            for i, r in enumerate(rows):
                st = states[r]
                x[i, :CONTEXT_SAMPLES] = st.context
                x[i, CONTEXT_SAMPLES:] = bufs[r][k * WINDOW_SAMPLES : (k + 1) * WINDOW_SAMPLES]
                rnn[:, i] = st.rnn[:, 0]
            out, rnn = self._session.run(None, {"input": x, "state": rnn, "sr": _SR})
            context = x[:, -CONTEXT_SAMPLES:]
            for i, r in enumerate(rows):
                st = states[r]
                st.rnn = rnn[:, i : i + 1]
                st.context = context[i]
                st.windows += 1
                probs[r][k] = out[i, 0]
        for state, buf, n in zip(states, bufs, counts, strict=True):
            state.pending = buf[n * WINDOW_SAMPLES :].copy()
        return probs

    def finish(self, state: SileroState) -> np.ndarray:
        """End of stream: score the buffered partial window zero-padded, as ``get_speech_timestamps``
        does with the tail of a clip. Returns zero or one probability."""
        if not state.pending.size:
            return np.zeros(0, dtype=np.float32)
        window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        window[: state.pending.size] = state.pending
        state.pending = np.zeros(0, dtype=np.float32)
        return np.array([self._step(state, window)], dtype=np.float32)

    def _step(self, state: SileroState, window: np.ndarray) -> float:
        x = np.concatenate([state.context, window])[np.newaxis, :]
        out, rnn = self._session.run(None, {"input": x, "state": np.ascontiguousarray(state.rnn), "sr": _SR})
        state.rnn = rnn
        state.context = x[0, -CONTEXT_SAMPLES:]
        state.windows += 1
        return float(out[0, 0])
