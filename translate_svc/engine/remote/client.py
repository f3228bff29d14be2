"""A front-end worker's ``EngineClient``: the engine process, reached over a Unix socket.

It keeps what the Protocol reads synchronously (the model card, health, the queue's state and share)
from the engine's last message, and one future per job, resolved when the job's terminal reply
comes. The engine is authoritative: a submit the local view allows may still come back refused
(``Overloaded`` or ``NotReady`` on the future; a dropped caption is a cancelled future, as when
superseded). A full queue in the view refuses at once only a job the engine would refuse: one of an
owner that did not join, or has its share of jobs out already; a session within its share is
always sent, since the engine makes room for it (``engine/shares.py``).

If the connection ends (the engine process died or closed it), every open job fails with
``NotReady``, ``healthy`` turns False and ``on_failure`` is called once, as the in-process engine
does when its loop dies.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from translate_svc import framing
from translate_svc.engine.remote import wire
from translate_svc.engine.results import EngineResult, EngineStats
from translate_svc.errors import NotReady, Overloaded
from translate_svc.model_api.requests import ModelInput
from translate_svc.types import ModelCard

if TYPE_CHECKING:
    from translate_svc.engine.client import EngineClient

logger = logging.getLogger(__name__)

ENGINE_GONE = "the engine process is gone; resume the stream on another server or retry shortly"


class RemoteEngine:
    """Implements ``EngineClient`` (engine/client.py). Event loop only."""

    def __init__(self, worker: str, *, on_failure: Callable[[BaseException], None] | None = None) -> None:
        self.worker = worker
        self._on_failure = on_failure
        self._channel: wire.Channel | None = None
        self._card: ModelCard | None = None
        self._state = wire.State(False, 0, 0, 1, 0)
        self._state_changed = asyncio.Event()
        self._jobs: dict[int, tuple[str, asyncio.Future[EngineResult]]] = {}  # until its terminal reply
        self._out: dict[str, int] = {}  # joined owners: their final jobs not answered yet
        self._ids = itertools.count()
        self._idle = asyncio.Event()
        self._idle.set()
        self._reader: asyncio.Task[None] | None = None
        self._closed = False

    async def connect(self, path: Path) -> None:
        """Connect, introduce this worker, and take the engine's welcome (card and state)."""
        reader, writer = await asyncio.open_unix_connection(str(path), limit=wire.READ_LIMIT)
        channel = wire.Channel(reader, writer, wire.ToWorker)
        channel.send(wire.Hello(self.worker, os.getpid()))
        welcome = await channel.recv()
        if not isinstance(welcome, wire.Welcome):
            channel.close()
            raise wire.FrameError(f"expected welcome, got {type(welcome).__name__}")
        self._channel, self._card, self._state = channel, welcome.card, welcome.state
        self._reader = asyncio.create_task(self._read(channel), name="engine-replies")

    async def wait_for_workers(self, n: int) -> None:
        """Until the engine has ``n`` workers connected (or is gone: raises ``NotReady``)."""
        while self._state.workers < n:
            if self._channel is None or self._channel.closing:
                raise NotReady(ENGINE_GONE)
            self._state_changed.clear()
            await self._state_changed.wait()

    async def close(self) -> None:
        self._closed = True
        if self._channel is not None:
            self._channel.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    # -- EngineClient -------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self._channel is not None and not self._channel.closing and self._state.healthy

    @property
    def card(self) -> ModelCard:
        if not self.healthy or self._card is None:
            raise NotReady("the model is still loading (or has failed); retry when health reports SERVING")
        return self._card

    def stats(self) -> EngineStats:
        s = self._state
        return EngineStats(s.queued, s.max_queued, s.running, s.share, s.sessions)

    def join(self, owner: str) -> None:
        if self._channel is not None and not self._channel.closing and owner not in self._out:
            self._out[owner] = 0
            self._channel.send(wire.Join(owner))

    def background(self, owner: str) -> None:
        if self._channel is not None and not self._channel.closing and owner in self._out:
            self._channel.send(wire.Join(owner, background=True))

    def leave(self, owner: str) -> None:
        """Drop ``owner``'s jobs (as ``abort``) and tell the engine it no longer counts."""
        joined = self._out.pop(owner, None) is not None
        if self._channel is not None and not self._channel.closing:  # the engine drops its jobs too
            self._channel.send(wire.Leave(owner) if joined else wire.Abort(owner))
        self._cancel_local(owner)

    def submit(self, owner: str, item: ModelInput) -> asyncio.Future[EngineResult]:
        if not self.healthy:
            raise NotReady(ENGINE_GONE if self._channel is not None else "the engine is not connected yet")
        within_share = self._out.get(owner, self._state.share) < self._state.share
        if self._state.queued >= self._state.max_queued and not within_share:
            raise Overloaded(
                f"server busy: {self._state.queued} segments are already waiting for the model; retry shortly",
                retry_after_ms=1000,
            )
        return self._send(owner, item, droppable=False)

    def submit_droppable(
        self, owner: str, item: ModelInput, *, behind_finals: bool = False
    ) -> asyncio.Future[EngineResult] | None:
        if not self.healthy or self._state.queued >= self._state.max_queued:
            return None
        return self._send(owner, item, droppable=True, behind_finals=behind_finals)

    def abort(self, owner: str) -> int:
        if self._channel is not None and not self._channel.closing:
            self._channel.send(wire.Abort(owner))
        return self._cancel_local(owner)

    def _cancel_local(self, owner: str) -> int:
        mine = [fut for o, fut in self._jobs.values() if o == owner and not fut.done()]
        for fut in mine:
            fut.cancel()
        return len(mine)

    async def wait_idle(self) -> None:
        """Until the engine has answered every job this worker sent."""
        await self._idle.wait()

    # -- the wire ---------------------------------------------------------------------------------------

    def _send(
        self, owner: str, item: ModelInput, *, droppable: bool, behind_finals: bool = False
    ) -> asyncio.Future[EngineResult]:
        assert self._channel is not None
        job = next(self._ids)
        fut: asyncio.Future[EngineResult] = asyncio.get_running_loop().create_future()
        self._jobs[job] = (owner, fut)
        if not droppable and owner in self._out:
            self._out[owner] += 1
            fut.add_done_callback(functools.partial(self._answered, owner))
        self._idle.clear()
        fut.add_done_callback(functools.partial(self._cancelled, job))
        self._channel.send(wire.submit_of(job, owner, item, droppable=droppable, behind_finals=behind_finals))
        return fut

    def _answered(self, owner: str, fut: asyncio.Future[EngineResult]) -> None:
        if owner in self._out:
            self._out[owner] -= 1

    def _cancelled(self, job: int, fut: asyncio.Future[EngineResult]) -> None:
        channel = self._channel
        if fut.cancelled() and job in self._jobs and channel is not None and not channel.closing:
            channel.send(wire.Cancel(job))  # the engine answers Gone (or the result, if it ran)

    def _finish(self, job: int) -> asyncio.Future[EngineResult] | None:
        entry = self._jobs.pop(job, None)
        if not self._jobs:
            self._idle.set()
        if entry is None or entry[1].done():
            return None
        return entry[1]

    async def _read(self, channel: wire.Channel) -> None:
        error: BaseException | None = None
        try:
            error = await framing.receive_all(channel, self._handle, "the engine")
        finally:
            channel.close()
            self._state = wire.State(False, 0, 0, self._state.max_queued, 0)
            self._state_changed.set()
            for _, fut in self._jobs.values():
                if not fut.done():
                    fut.set_exception(NotReady(ENGINE_GONE))
            self._jobs.clear()
            self._idle.set()
            if not self._closed:
                logger.error("lost the engine process: %r", error)
                if self._on_failure is not None:
                    self._on_failure(error or ConnectionError("the engine closed the connection"))

    def _handle(self, m: wire.ToEngine | wire.ToWorker) -> None:
        if isinstance(m, wire.State):
            self._state = m
            self._state_changed.set()
        elif isinstance(m, wire.Result):
            if (fut := self._finish(m.job)) is not None:
                fut.set_result(wire.job_result(m))
        elif isinstance(m, wire.Refused):
            if (fut := self._finish(m.job)) is not None:
                if m.reason == "dropped":
                    fut.cancel()
                elif m.reason == "overloaded":
                    fut.set_exception(Overloaded(m.message, retry_after_ms=m.retry_after_ms))
                else:
                    fut.set_exception(NotReady(m.message, retry_after_ms=m.retry_after_ms))
        elif isinstance(m, wire.Gone):
            if (fut := self._finish(m.job)) is not None:
                fut.cancel()
        else:
            raise wire.FrameError(f"unexpected {type(m).__name__}")


if TYPE_CHECKING:  # mypy proves that the class implements the Protocol

    def _implements(engine: RemoteEngine) -> EngineClient:
        return engine
