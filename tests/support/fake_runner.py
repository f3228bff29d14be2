"""A ``Runner`` that needs no checkpoint and no torch: engine and session behaviour in milliseconds.

Its outputs are a deterministic function of the input (text names the segment's length, or a text
input's text: ``<lang>:text=<its text>``), so tests can tell results apart. ``gate`` blocks ``run``
until set (to hold work in the model or the queue); ``fail_when`` makes a batch raise; ``die`` makes
the model thread raise a BaseException, which kills the engine loop as a crashed worker would.
``waveform`` chooses the speech returned for an input and a language (a test can return one the
output encoding refuses); ``ran`` keeps every batch's inputs; ``on_features`` sees each segment's
audio as its features are computed (on the engine's features thread), i.e. once per submitted job.

A simultaneous step (``ModelInput.simul``) gets, per target, the hypothesis ``committed +
(len(audio),)``; it commits nothing before the final step, which commits and speaks it all. (For a
translator whose commit points mean something, see ``model/testing/stable.py``.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np

from translate_svc.model_api.requests import Features, ModelInput, ModelOutput, SimulRowOutput
from translate_svc.model_api.runner import Runner
from translate_svc.types import Language, ModelCard, ModelInfo

LANGUAGES = (
    Language("eng", "English", True, True, True),
    Language("spa", "Spanish", True, True, True),
    Language("fra", "French", True, True, True),
    Language("cmn", "Mandarin Chinese", True, True, False),
)


class ModelThreadDied(BaseException):
    """Not an Exception: the engine's per-batch retry does not catch it, so its loop dies."""


class FakeRunner:
    def __init__(self) -> None:
        self._card = ModelCard(ModelInfo("fake", "none", True), LANGUAGES, num_speakers=2)
        self.gate = threading.Event()
        self.gate.set()
        self.fail_when: Callable[[ModelInput], bool] = lambda item: False
        self.die = False
        self.batches: list[int] = []  # batch sizes, in order
        self.ran: list[tuple[ModelInput, ...]] = []  # every batch's inputs, in order
        self.waveform: Callable[[ModelInput, str], np.ndarray] = lambda item, lang: np.zeros(
            len(item.audio) // 2 if item.text is None else 160 * len(item.text.text), np.float32
        )
        self.on_features: Callable[[np.ndarray], None] = lambda audio: None
        self.started = threading.Event()  # set when a batch enters run()

    @property
    def card(self) -> ModelCard:
        return self._card

    def extract_features(self, audio: np.ndarray) -> Features:
        self.on_features(audio)
        frames = max(1, len(audio) // 320)
        return Features(np.zeros((frames, 4), np.float32), np.ones(frames, np.int64))

    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]:
        self.started.set()
        self.gate.wait(30)
        if self.die:
            raise ModelThreadDied("the model thread crashed")
        self.batches.append(len(inputs))
        self.ran.append(tuple(inputs))
        if any(self.fail_when(i) for i in inputs):
            raise RuntimeError("bad segment")
        return [
            self._step(i)
            if i.simul is not None
            else ModelOutput(
                transcript=f"n={len(i.audio)}" if i.transcript_language else None,
                texts={lang: f"{lang}:{_size(i)}" for lang in i.targets},
                waveforms={lang: self.waveform(i, lang) for lang in i.targets} if i.speech else {},
            )
            for i in inputs
        ]

    def _step(self, i: ModelInput) -> ModelOutput:
        assert i.simul is not None
        rows = {}
        for t in i.simul.targets:
            ids = (*t.committed, len(i.audio))
            committed = ids if i.simul.final else t.committed
            chunk = self.waveform(i, t.language) if i.simul.final and i.speech else None
            text = " ".join(f"w{k}" for k in committed)
            rows[t.language] = SimulRowOutput(
                t.language,
                ids,
                " ".join(f"w{k}" for k in ids),
                tuple(range(len(ids))),
                committed,
                text,
                len(committed),
                tuple(committed) if chunk is not None else (),
                chunk,
                len(committed) if chunk is not None else t.spoken_tokens,
                len(committed) if chunk is not None else t.spoken_units,
            )
        return ModelOutput(
            transcript=f"n={len(i.audio)}" if i.transcript_language else None,
            texts={lang: row.committed_text for lang, row in rows.items()},
            simul=rows,
        )


def _size(i: ModelInput) -> str:
    """What a fake translation names: the segment's samples, or a text input's ``text=<text>``."""
    return f"text={i.text.text}" if i.text is not None else str(len(i.audio))


def _typed(r: FakeRunner) -> Runner:
    return r  # mypy checks that FakeRunner implements the Runner Protocol
