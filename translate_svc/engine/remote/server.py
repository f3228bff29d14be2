"""The engine process's side: serve one ``TranslationEngine`` to front-end workers over a Unix socket.

Each worker connection is one ``_Peer``. Its sessions join and its jobs enter the one engine queue
under owners prefixed with the worker's name, so the queue's fair share (``engine/shares.py``: one
share per session open on the node), the scheduler's rounds and the droppable-caption rule are
decided here, across every worker; every worker hears the new share when a session joins or leaves
anywhere. A peer that goes away (closed, killed) has its queued jobs aborted. A
peer that stops reading is disconnected once ``max_buffered_bytes`` of replies wait for it: the
engine holds a bounded amount for any worker, never a growing one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
from pathlib import Path

from translate_svc import framing
from translate_svc.engine.engine import TranslationEngine
from translate_svc.engine.remote import wire
from translate_svc.engine.results import EngineResult
from translate_svc.errors import NotReady, Overloaded

logger = logging.getLogger(__name__)

#: replies a worker may leave unread before the engine disconnects it
DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024
#: how often an idle connection hears the queue's state
STATE_EVERY_S = 1.0


class EngineServer:
    """Serves ``engine`` at ``path``. Event loop only (the engine's loop)."""

    def __init__(self, engine: TranslationEngine, *, max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES) -> None:
        self.engine = engine
        self.max_buffered_bytes = max_buffered_bytes
        self._server: asyncio.Server | None = None
        self._peers: set[_Peer] = set()
        self._ids = itertools.count()
        self._ticker: asyncio.Task[None] | None = None
        self._telling = False  # a broadcast of the new share is scheduled

    @property
    def workers(self) -> int:
        return len(self._peers)

    async def start(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket left by an engine process that was killed
        self._server = await asyncio.start_unix_server(self._serve, path=str(path), limit=wire.READ_LIMIT)
        self._ticker = asyncio.create_task(self._tick(), name="engine-state")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await framing.stop_serving(self._server, (peer.channel for peer in self._peers))

    def state(self) -> wire.State:
        s = self.engine.stats()
        return wire.State(self.engine.healthy, s.queued, s.running, s.max_queued, len(self._peers), s.share, s.sessions)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(STATE_EVERY_S)
            self._broadcast()

    def share_changed(self) -> None:
        """A session joined or left: every worker hears the new share, once per loop turn (a burst
        of sessions opening is one message per worker)."""
        if not self._telling:
            self._telling = True
            asyncio.get_running_loop().call_soon(self._broadcast)

    def _broadcast(self) -> None:
        self._telling = False
        state = self.state()
        for peer in list(self._peers):
            peer.send(state)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel = wire.Channel(reader, writer, wire.ToEngine)
        peer: _Peer | None = None
        try:
            hello = await channel.recv()
            if not isinstance(hello, wire.Hello):
                raise wire.FrameError(f"expected hello, got {type(hello).__name__}")
            peer = _Peer(self, channel, f"{hello.worker}#{next(self._ids)}")
            self._peers.add(peer)
            logger.info("worker %s (pid %d) connected", hello.worker, hello.pid)
            channel.send(wire.Welcome(self.engine.card, self.state()))
            self._broadcast()  # the others hear the new count of workers
            while True:
                peer.handle(await channel.recv())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker went away
        except wire.FrameError as e:
            logger.error("a worker sent a bad frame (%s); disconnecting it", e)
        except NotReady:
            pass  # the engine failed before the welcome: the worker sees the close
        finally:
            if peer is not None:
                self._peers.discard(peer)
                peer.gone()
                self._broadcast()
            channel.close()


class _Peer:
    """One worker connection: its jobs in the engine and the replies owed to it."""

    def __init__(self, server: EngineServer, channel: wire.Channel, name: str) -> None:
        self.server = server
        self.channel = channel
        self.name = name
        self.jobs: dict[int, asyncio.Future[EngineResult]] = {}
        self.owners: set[str] = set()  # its sessions that joined

    def send(self, message: wire.ToWorker) -> None:
        self.channel.send_bounded(message, self.server.max_buffered_bytes, f"worker {self.name} (its replies)")

    def handle(self, m: wire.ToEngine | wire.ToWorker) -> None:
        if isinstance(m, wire.Submit):
            self.submit(m)
        elif isinstance(m, wire.Cancel):
            fut = self.jobs.get(m.job)
            if fut is not None:
                fut.cancel()
        elif isinstance(m, wire.Abort):
            self.server.engine.abort(self._owner(m.owner))
        elif isinstance(m, wire.Join):
            owner = self._owner(m.owner)
            self.owners.add(owner)
            self.server.engine.join(owner)
            if m.background:
                self.server.engine.background(owner)
            self.server.share_changed()
        elif isinstance(m, wire.Leave):
            owner = self._owner(m.owner)
            self.owners.discard(owner)
            self.server.engine.leave(owner)
            self.server.share_changed()
        else:
            raise wire.FrameError(f"unexpected {type(m).__name__}")

    def _owner(self, owner: str) -> str:
        return f"{self.name}/{owner}"

    def submit(self, m: wire.Submit) -> None:
        engine = self.server.engine
        item = wire.model_input(m)
        owner = self._owner(m.owner)
        try:
            fut = (
                engine.submit_droppable(owner, item, behind_finals=m.behind_finals)
                if m.droppable
                else engine.submit(owner, item)
            )
        except Overloaded as e:
            self._refuse(m.job, "overloaded", e.message, e.retry_after_ms)
            return
        except NotReady as e:
            self._refuse(m.job, "not_ready", e.message, e.retry_after_ms)
            return
        if fut is None:
            self._refuse(m.job, "dropped", "the engine is behind: no live caption now", None)
            return
        self.jobs[m.job] = fut
        fut.add_done_callback(functools.partial(self._done, m.job))

    def _refuse(self, job: int, reason: wire.Reason, message: str, retry_after_ms: int | None) -> None:
        self.send(wire.Refused(job, reason, message, retry_after_ms))
        self.send(self.server.state())

    def _done(self, job: int, fut: asyncio.Future[EngineResult]) -> None:
        self.jobs.pop(job, None)
        if fut.cancelled():
            self.send(wire.Gone(job))
        elif isinstance(exc := fut.exception(), Overloaded):  # beyond its share: made room for one
            self.send(wire.Refused(job, "overloaded", exc.message, exc.retry_after_ms))
        elif exc is not None:
            retry = exc.retry_after_ms if isinstance(exc, NotReady) else None
            self.send(wire.Refused(job, "not_ready", str(exc), retry))
        else:
            self.send(wire.result_of(job, fut.result()))
        self.send(self.server.state())

    def gone(self) -> None:
        """The worker is gone: nothing more is computed for it, and its sessions no longer count."""
        for fut in list(self.jobs.values()):
            fut.cancel()
        self.jobs.clear()
        for owner in self.owners:
            self.server.engine.leave(owner)
        self.owners.clear()
