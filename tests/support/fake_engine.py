"""An ``EngineClient`` with no engine behind it: session tests decide when and how each job ends.

Every submitted job waits in ``jobs`` until the test resolves it (in any order), fails it, or the
session aborts it. ``overloaded`` makes ``submit`` refuse; ``droppable`` says whether best-effort
jobs (captions) are taken; ``joined`` holds the sessions that count in the share (``max_queued`` //
their number, as the engine's). mypy checks that it implements the ``EngineClient`` Protocol.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from translate_svc.engine.client import EngineClient
from translate_svc.engine.results import EngineResult, EngineStats
from translate_svc.errors import Overloaded
from translate_svc.model_api.requests import ModelInput, ModelOutput
from translate_svc.types import Language, ModelCard, ModelInfo

LANGUAGES = (
    Language("eng", "English", True, True, True),
    Language("spa", "Spanish", True, True, True),
    Language("fra", "French", True, True, True),
)


@dataclass
class FakeJob:
    owner: str
    item: ModelInput
    future: asyncio.Future[EngineResult]
    droppable: bool


class FakeEngineClient:
    def __init__(self, *, max_queued: int = 512) -> None:
        self.jobs: list[FakeJob] = []
        self.aborted: list[str] = []
        self.joined: set[str] = set()
        self.overloaded = False
        self.droppable = True
        self._max_queued = max_queued
        self._card = ModelCard(ModelInfo("fake", "none", True), LANGUAGES, num_speakers=2)

    # -- the Protocol ---------------------------------------------------------------------------

    def submit(self, owner: str, item: ModelInput) -> asyncio.Future[EngineResult]:
        if self.overloaded:
            raise Overloaded("server busy (fake)", retry_after_ms=1000)
        return self._add(owner, item, droppable=False)

    def submit_droppable(
        self, owner: str, item: ModelInput, *, behind_finals: bool = False
    ) -> asyncio.Future[EngineResult] | None:
        return self._add(owner, item, droppable=True) if self.droppable or behind_finals else None

    def join(self, owner: str) -> None:
        self.joined.add(owner)

    def background(self, owner: str) -> None:
        self.joined.add(owner)

    def leave(self, owner: str) -> None:
        self.abort(owner)
        self.joined.discard(owner)

    def abort(self, owner: str) -> int:
        self.aborted.append(owner)
        mine = [j for j in self.jobs if j.owner == owner and not j.future.done()]
        for j in mine:
            j.future.cancel()
        return len(mine)

    async def wait_idle(self) -> None:
        await asyncio.gather(*(j.future for j in self.jobs), return_exceptions=True)

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def healthy(self) -> bool:
        return True

    def stats(self) -> EngineStats:
        share = max(1, self._max_queued // max(1, len(self.joined)))
        return EngineStats(len(self.pending()), self._max_queued, 0, share, len(self.joined))

    # -- for tests ------------------------------------------------------------------------------

    def pending(self, *, droppable: bool | None = None) -> list[FakeJob]:
        return [j for j in self.jobs if not j.future.done() and droppable in (None, j.droppable)]

    def resolve(self, job: FakeJob) -> None:
        """Answer ``job`` as a model would: texts name the segment's length."""
        i = job.item
        out = ModelOutput(
            transcript=f"n={len(i.audio)}" if i.transcript_language else None,
            texts={lang: f"{lang}:{len(i.audio)}" for lang in i.targets},
            waveforms={lang: np.zeros(len(i.audio) // 2, np.float32) for lang in i.targets} if i.speech else {},
        )
        job.future.set_result(EngineResult(out, None, 1.0, 2.0, 1))

    def _add(self, owner: str, item: ModelInput, *, droppable: bool) -> asyncio.Future[EngineResult]:
        future: asyncio.Future[EngineResult] = asyncio.get_running_loop().create_future()
        self.jobs.append(FakeJob(owner, item, future, droppable))
        return future


def _typed(e: FakeEngineClient) -> EngineClient:
    return e  # mypy checks that FakeEngineClient implements the EngineClient Protocol
