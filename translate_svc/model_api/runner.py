"""What the engine needs from a model: the ``Runner`` and ``LanguageIdentifier`` Protocols.

``model/`` implements them; the engine and the sessions only know this module and the job
vocabulary (``model_api/requests.py``), so importing them never loads torch, and their tests run on a
fake runner that implements the same Protocol (mypy checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from translate_svc.model_api.requests import Features, ModelInput, ModelOutput
from translate_svc.types import ModelCard, ModelInfo


class LanguageIdentifier(Protocol):
    """Spoken-language identification of segments (``model/stages/lid.py``: MMS-LID). Called on the
    engine's model thread only, on a batch of segments, before their text is decoded."""

    @property
    def languages(self) -> frozenset[str]:
        """The model codes (SeamlessM4T's: ``eng``, ``cmn``...) it can pick."""
        ...

    @property
    def name(self) -> str:
        """The identifier's checkpoint, for logs and ListLanguages."""
        ...

    @property
    def info(self) -> ModelInfo:
        """Its checkpoint's identity (ListLanguages' ``language_identifier``)."""
        ...

    def identify(self, audios: Sequence[np.ndarray], candidates: Sequence[tuple[str, ...]]) -> list[dict[str, float]]:
        """For each 16 kHz mono float32 segment, a probability per candidate (model codes, each in
        ``languages``): the identifier's softmax restricted to the candidates (they sum to 1). An
        empty candidate tuple means every language in ``languages``."""
        ...


class Runner(Protocol):
    """The model behind the engine. ``run`` is called from exactly one thread (the engine's model
    thread); ``extract_features`` must be thread-safe (it runs on a CPU thread beside it)."""

    @property
    def card(self) -> ModelCard: ...

    def extract_features(self, audio: np.ndarray) -> Features: ...

    def run(self, inputs: Sequence[ModelInput]) -> list[ModelOutput]: ...


@runtime_checkable
class FeaturesInRun(Protocol):
    """A runner that may compute segments' features itself, inside ``run`` (on its device, as part
    of its encoder's work: model/stages/encoders.py), instead of on the engine's features thread.
    Where ``features_in_run`` is true the engine queues a segment as it comes (``ModelInput.features``
    None) and ``extract_features`` is not called; optional: a runner without it gets its features
    computed ahead. Read once, after the runner is loaded."""

    @property
    def features_in_run(self) -> bool: ...


@runtime_checkable
class Warmable(Protocol):
    """A runner that wants to know when the engine's warm-up is over (``TranslationEngine.start``):
    from then on it counts the tensor shapes it meets for the first time (model/stages/shapes.py
    ``ShapeLog``). Optional: a runner without it is simply not told."""

    def warmed(self) -> None: ...


@runtime_checkable
class ShapeWarmable(Protocol):
    """A runner that warms its stages' shape buckets itself (the warm-up ``buckets``,
    engine/warmup.py): every bucket of the stages whose shapes the engine's batches cannot pick
    (t2u's and the vocoder's, set by predicted durations) for batches of up to ``max_rows``
    rows of up to ``longest_s``, at most ``row_seconds`` rows times seconds a batch (None: no
    bound), stopping at ``deadline`` (``time.perf_counter``; None: no limit). Returns the calls it
    ran."""

    def warm_shapes(
        self, max_rows: int, longest_s: float, deadline: float | None, *, row_seconds: float | None = None
    ) -> int: ...


#: ``Stepper.admit``'s priorities: a final's rows, a live caption's or simultaneous step's, a job's
FINAL, LIVE_OPTIONAL, BACKGROUND = 0, 1, 2


class Stepper(Protocol):
    """Rows of many jobs in one running decode (iteration-level scheduling): a job's rows
    join at any step and leave the step they finish, so a short job never waits for a long one
    that was admitted before it. ``model/stepping.py`` ``SteppingDecoder`` implements it; the
    engine's ``StepCore`` (engine/step_core.py) drives it. Model thread only, like ``Runner.run``.
    Jobs are known by the caller's ``key``; a job it does not ``take`` goes through ``Runner.run``."""

    def takes(self, item: ModelInput) -> bool:
        """Whether ``item`` can go through the running decode (else: ``Runner.run``)."""
        ...

    def admit(self, key: int, item: ModelInput, *, priority: int = FINAL) -> None:
        """``item`` joins: prefilled at the next ``tick``, its rows decoded as slots free up, those of
        a lower ``priority`` value first (then oldest first); live rows (below ``BACKGROUND``) that
        find the pool full take background rows' slots."""
        ...

    def tick(self, max_steps: int) -> list[tuple[int, ModelOutput | None]]:
        """Up to ``max_steps`` decode steps (fewer once none is left to step, or a job failed); the
        jobs that finished, each with its output, or None where it failed (that job alone): those
        whose rows ended in the tick are finished together at its end. A stepper that finishes
        jobs beside the model thread may return a job at a later tick than the step its rows ended."""
        ...

    def drop(self, key: int) -> None:
        """The job leaves (its rows with it); the others go on. Unknown keys are ignored."""
        ...

    def clear(self) -> None:
        """Every job leaves."""
        ...

    def close(self) -> None:
        """Every job leaves, and what it runs beside the model thread (a finish stage) ends."""
        ...

    def wake(self) -> None:
        """Any thread (the one exception): a ``tick`` waiting for work it runs beside the model
        thread returns now, because a job was queued that the next tick should take."""
        ...

    def room(self, *, live: bool = True) -> int:
        """Rows that could join the pool at the next tick without waiting: its free slots less the
        rows admitted that wait for one (of live work, for ``live``: theirs go first); for
        ``live`` rows, background rows' slots count as free (they yield them). At most 0 when
        full: the engine then keeps new work in its queue."""
        ...


@runtime_checkable
class Steppable(Protocol):
    """A runner that can decode rows of many jobs in one running decode (``Stepper``); None where
    it cannot now (the exact runner, rows decoded one by one)."""

    def stepper(self) -> Stepper | None: ...
