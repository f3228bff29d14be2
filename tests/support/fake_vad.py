"""A scripted VAD, as livekit-agents' tests have one: its speech and silence follow a script the
test gives, whatever the audio, so a session test gets exactly the segments it asks for from
silence (no real speech, no silero) and knows them before it feeds a byte.

``ScriptedVad`` has our VAD's interface (``vad/silero.py``'s ``SileroVad``: ``new_state``,
``probabilities``, ``probabilities_many``, ``finish``), the seam the stream core scores audio
through: ``VadWorker`` runs it on its thread, ``session/stream/vad_bridge.py`` feeds it a stream's samples
and the ``Segmenter`` cuts on what it answers. Only the probabilities are made up: the windowing
(512 samples, a stream's partial window kept, the tail zero-padded at its end) is silero's, so the
worker, the bridge and the segmenter run as they do in production.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from translate_svc.types import MODEL_SAMPLE_RATE
from translate_svc.vad.segmenter import WINDOW_SAMPLES
from translate_svc.vad.silero import SileroState, SileroVad, with_pending
from translate_svc.vad.worker import VadWorker

#: what a window in the script's speech scores, and one outside it (the segmenter's default
#: threshold is 0.5, off below 0.35)
SPEECH_P = 0.9
SILENCE_P = 0.02


class ScriptedVad(SileroVad):
    """Speech where ``speech`` says, silence elsewhere. A ``SileroVad`` by type (the worker takes
    one), not by construction: no ONNX session is loaded, every method that would run it is
    scripted."""

    def __init__(self, speech: Sequence[tuple[float, float]]) -> None:
        """``speech``: the [start, end) spans, in seconds of each stream's 16 kHz timeline from its
        first sample, that are speech; a window is speech when its middle is in one."""
        self.speech = tuple(speech)
        self.windows_scored = 0

    def new_state(self) -> SileroState:
        return SileroState()

    def probability(self, window: int) -> float:
        """What the script says of a stream's ``window``-th window."""
        middle_s = (window + 0.5) * WINDOW_SAMPLES / MODEL_SAMPLE_RATE
        return SPEECH_P if any(start <= middle_s < end for start, end in self.speech) else SILENCE_P

    def probabilities(self, state: SileroState, samples16k: np.ndarray) -> np.ndarray:
        return self.probabilities_many([state], [samples16k])[0]

    def probabilities_many(self, states: Sequence[SileroState], chunks: Sequence[np.ndarray]) -> list[np.ndarray]:
        out = []
        for state, buf in zip(states, with_pending(states, chunks), strict=True):
            n = buf.size // WINDOW_SAMPLES
            out.append(np.array([self.probability(state.windows + k) for k in range(n)], dtype=np.float32))
            state.windows += n
            state.pending = buf[n * WINDOW_SAMPLES :].copy()
            self.windows_scored += n
        return out

    def finish(self, state: SileroState) -> np.ndarray:
        if not state.pending.size:
            return np.zeros(0, dtype=np.float32)
        state.pending = np.zeros(0, dtype=np.float32)
        state.windows += 1
        self.windows_scored += 1
        return np.array([self.probability(state.windows - 1)], dtype=np.float32)


def scripted_worker(speech: Sequence[tuple[float, float]]) -> VadWorker:
    """A ``VadWorker`` (its thread, its turns) over a ``ScriptedVad`` of ``speech``."""
    return VadWorker(ScriptedVad(speech))
