"""``EngineClient``: what a session needs from the engine, and nothing more.

Sessions depend on this Protocol only. ``TranslationEngine`` implements it in-process; a front-end
worker process implements it over IPC to the one engine process (vLLM's ``EngineClient`` between its
API servers and its engine core is the model). Session tests use a fake that implements it too
(``tests/support/fake_engine.py``, checked by mypy).

Every method is called on the event loop; futures resolve on it.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from translate_svc.engine.results import EngineResult, EngineStats
from translate_svc.model_api.requests import ModelInput
from translate_svc.types import ModelCard


class EngineClient(Protocol):
    def join(self, owner: str) -> None:
        """``owner`` (a session id) counts in the queue's fair share, node-wide, until ``leave``:
        each session's share is ``stats().share``, and a final job of a session within it always
        gets a place in the queue (``engine/shares.py``)."""
        ...

    def background(self, owner: str) -> None:
        """``owner``'s (a job's session) segments are background work from now on: the
        engine takes them only when no live job waits (engine/scheduler.py's background class)."""
        ...

    def leave(self, owner: str) -> None:
        """``owner`` is gone: its queued jobs are dropped (as ``abort``) and it no longer counts."""
        ...

    def submit(self, owner: str, item: ModelInput) -> asyncio.Future[EngineResult]:
        """Queue one segment for ``owner`` (a session id). Raises Overloaded (or fails the future
        with it) when the queue is full and the owner is beyond its share, NotReady when the model
        is not serving. Cancelling the future drops the job if it has not reached the model yet."""
        ...

    def submit_droppable(
        self, owner: str, item: ModelInput, *, behind_finals: bool = False
    ) -> asyncio.Future[EngineResult] | None:
        """Queue best-effort work (a live caption), or None when the engine is behind.
        ``behind_finals``: queued even while finals wait, to run once none does (a rendition, which
        a listener waits for; a caption would be stale by then), None only when the queue has no
        free place or the job breaks the optional batch's budget alone; it may still be dropped
        (the future cancelled) when a share needs its place."""
        ...

    def abort(self, owner: str) -> int:
        """Drop every queued job of ``owner`` (the client is gone); returns how many."""
        ...

    async def wait_idle(self) -> None:
        """Until nothing is queued, preparing or running."""
        ...

    @property
    def card(self) -> ModelCard:
        """The loaded model's card; raises NotReady while it loads or after a failure."""
        ...

    @property
    def healthy(self) -> bool:
        """True while the engine serves (loaded, warmed, its loop alive)."""
        ...

    def stats(self) -> EngineStats:
        """The queue right now (flow control reads ``share``)."""
        ...
