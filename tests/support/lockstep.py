"""Session tests in step with a server that keeps up, whatever the machine's load.

A stream fed faster than real time races the VAD thread and the engine's threads. Live captions and
simultaneous steps are best-effort (one in flight at a time, the rest skipped; dropped once their
segment's final is submitted: ``session/stream/captions.py``, ``session/stream/simultaneous.py``), so how many of
them come back depends on how far the feeder got while they were computed, i.e. on the machine's
load: an ``asyncio.sleep(0)`` between messages lets them come back only on an idle machine. A test
that counts them, or needs some, awaits :func:`settle` after each message instead: the VAD has
handed back every request (:class:`WatchedVad`), so every caption, step and final that audio
started is submitted; then the engine has run them all and their results' callbacks ran. Each
message's captions and steps then come back before the next message's audio, as with a model that
keeps up. :class:`Lockstep` does the same for a live server's stream driven by an in-memory door
(``memory_door.py``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.support.live_server import LiveServer
from translate_svc.engine.client import EngineClient
from translate_svc.session import StreamRequest
from translate_svc.vad.silero import SileroState, SileroVad
from translate_svc.vad.worker import OnScored, VadWorker


class WatchedVad(VadWorker):
    """A ``VadWorker`` that says when every request submitted from this event loop has been handed
    back: its ``on_done`` ran on the loop (where sessions submit their captions, steps and finals).
    Counted per loop: the fixture outlives a test's loop, and a request whose loop closed before it
    came back is never handed back (``worker._hand_back``), so it must not count on the next one."""

    def __init__(self, vad: SileroVad) -> None:
        super().__init__(vad)
        self._out: dict[asyncio.AbstractEventLoop, int] = {}  # requests submitted and not yet handed back
        self._waiters: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}

    def submit(
        self,
        state: SileroState,
        samples16k: np.ndarray,
        on_done: OnScored,
        *,
        last: bool = False,
        keep: list[SileroState] | None = None,
    ) -> None:
        loop = asyncio.get_running_loop()
        super().submit(state, samples16k, functools.partial(self._back, loop, on_done), last=last, keep=keep)
        self._out[loop] = self._out.get(loop, 0) + 1  # after: a request the worker refused is not out

    def _back(
        self, loop: asyncio.AbstractEventLoop, on_done: OnScored, probs: np.ndarray | None, error: BaseException | None
    ) -> None:
        try:
            on_done(probs, error)
        finally:
            self._out[loop] -= 1
            if not self._out[loop]:
                del self._out[loop]
                for waiter in self._waiters.pop(loop, []):
                    if not waiter.done():
                        waiter.set_result(None)

    async def scored(self) -> None:
        """Until every request submitted from this loop so far has been handed back."""
        loop = asyncio.get_running_loop()
        if self._out.get(loop):
            waiter = loop.create_future()
            self._waiters.setdefault(loop, []).append(waiter)
            await waiter


async def settle(vad: WatchedVad, engine: EngineClient) -> None:
    """Until the server has done all that the audio fed so far caused: the VAD scored it, then the
    engine ran every job submitted on its results, and their results' callbacks ran
    (``TranslationEngine`` sets its idle event and then the last batch's futures in one go, so their
    callbacks are queued right behind this task's wake-up: one ``sleep(0)`` lets them run)."""
    await vad.scored()
    await engine.wait_idle()
    await asyncio.sleep(0)


class Lockstep:
    """A door's ``settle`` that keeps the server's pace: after each message, until the server has
    done all that it caused: the VAD scored its audio (the VAD worker is watched), then the engine
    ran every job that started (a step, a final) and their results were handled. A step's commits
    then come before any later audio's events, as with a model that keeps up, whatever the
    machine's load (a paced door only made that likely)."""

    def __init__(self, live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self._engine = live.server.app.engine
        self._scoring = 0  # VAD requests submitted and not yet handed back
        self._scored = asyncio.Event()  # set while none is
        self._scored.set()
        vad = live.server.app.vad
        submit = vad.submit

        def watched(
            state: Any, samples16k: np.ndarray, on_done: Callable[..., None], *, last: bool = False, keep: Any = None
        ) -> None:
            self._scoring += 1
            self._scored.clear()
            submit(state, samples16k, functools.partial(self._back, on_done), last=last, keep=keep)

        monkeypatch.setattr(vad, "submit", watched)

    def _back(self, on_done: Callable[..., None], *result: Any) -> None:
        try:
            on_done(*result)  # the session's VAD result: steps and finals are submitted in it
        finally:
            self._scoring -= 1
            if not self._scoring:
                self._scored.set()

    async def scored(self) -> None:
        """Until the VAD has handed back every request (its callbacks ran)."""
        await self._scored.wait()

    async def computed(self) -> None:
        """Until the engine is idle and its last results' callbacks ran (they were scheduled as it
        went idle, before this task's wake-up)."""
        await self._engine.wait_idle()
        await asyncio.sleep(0)

    async def __call__(self, request: StreamRequest) -> None:
        await self.scored()
        await self.computed()
