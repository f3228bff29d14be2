"""``HubStore``: a worker's cluster store on ``serve --workers N``, the node's hub (``hub_server.py``)
reached over a Unix socket (``hub_wire.py``).

Every operation is one request and its reply, bounded by ``op_timeout_s`` (a blocking read by its
own time too). Subscriptions and watches are one per channel or group on the wire, fanned out here
to every ``Inbox`` of this worker. The hub knows this worker as one holder: its store renews it
every ``lease_s / 3``.

If the connection ends (the supervisor, and the hub with it, is gone), the store turns ``DOWN`` for
good and says so loudly (an error in the log, ``on_state`` listeners, every waiting call and inbox
failing with ``StoreUnavailable``); it never goes on with state of its own, which would split the
node silently. It does not reconnect: the worker dies with its supervisor
(``serving/process.py``). Event loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from translate_svc.cluster import hub_wire as wire
from translate_svc.cluster.store import (
    FIRST,
    Entry,
    Full,
    Inbox,
    Lease,
    StateReport,
    StoreState,
    StoreUnavailable,
    check_wants,
)
from translate_svc.framing import Channel, FrameError, receive_all

if TYPE_CHECKING:
    from translate_svc.cluster.store import ClusterStore

logger = logging.getLogger(__name__)

HUB_LOST = (
    "this worker lost the node's cluster hub (its supervisor is gone): it cannot see rooms, calls or caps "
    "of the other workers; connect to another server"
)


class HubStore:
    """Implements ``ClusterStore`` (store.py) for worker ``worker`` over the hub at ``path``. Event
    loop only."""

    def __init__(self, path: Path, worker: str, *, op_timeout_s: float = 5.0) -> None:
        self.path = path
        self.worker = worker
        self.op_timeout_s = op_timeout_s
        self.holder = ""
        self.lease_s = 0.0
        self._report = StateReport()
        self._channel: Channel[wire.ToWorker] | None = None
        self._pending: dict[int, asyncio.Future[wire.Reply]] = {}
        self._rids = itertools.count()
        self._subs: dict[str, set[Inbox]] = {}
        self._watches: dict[str, set[Inbox]] = {}
        self._joining: dict[tuple[str, str], asyncio.Future[None]] = {}  # channel or group being told
        self._reader: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False
        self._error = f"the node's cluster hub at {path} is not connected yet"

    # -- state

    @property
    def state(self) -> StoreState:
        return self._report.state

    def on_state(self, listener: Callable[[StoreState], None]) -> None:
        self._report.on_state(listener)

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self.op_timeout_s):
                reader, writer = await asyncio.open_unix_connection(str(self.path), limit=wire.READ_LIMIT)
                channel: Channel[wire.ToWorker] = Channel(
                    reader, writer, wire.ToWorker, max_frame_bytes=wire.MAX_FRAME_BYTES, write_high=wire.WRITE_HIGH
                )
                channel.send(wire.Hello(self.worker, os.getpid()))
                welcome = await channel.recv()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, FrameError) as e:
            raise StoreUnavailable(f"cannot reach the node's cluster hub at {self.path}: {e!r}") from None
        if not isinstance(welcome, wire.Welcome):
            channel.close()
            raise StoreUnavailable(f"the node's cluster hub sent {type(welcome).__name__} before its welcome")
        self._channel, self.holder, self.lease_s = channel, welcome.holder, welcome.lease_s
        self._reader = asyncio.create_task(self._read(channel), name="cluster-hub-replies")
        self._renewer = asyncio.create_task(self._renew_every(), name="cluster-hub-renew")
        self._report.set(StoreState.UP)

    async def close(self) -> None:
        """Disconnect: the hub drops this holder's leases and memberships at once."""
        self._closed = True
        if self._renewer is not None:
            self._renewer.cancel()
        if self._channel is not None:
            self._channel.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    # -- pub/sub

    async def publish(self, channel: str, data: bytes) -> None:
        self._send(wire.Publish(channel, data))

    async def subscribe(self, channel: str, *, limit: int) -> Inbox:
        inbox = Inbox(limit, lambda box: self._unsubscribe(channel, box))
        await self._attach(self._subs, ("sub", channel), channel, inbox, lambda rid: wire.Subscribe(rid, channel))
        return inbox

    def _unsubscribe(self, channel: str, inbox: Inbox) -> None:
        if self._detach(self._subs, channel, inbox):
            self._send_quietly(wire.Unsubscribe(channel))

    # -- streams

    async def append(self, key: str, data: bytes, *, keep_s: float, max_len: int) -> str:
        reply = await self._call(lambda rid: wire.Append(rid, key, data, keep_s, max_len))
        assert isinstance(reply, wire.Added)
        return reply.id

    async def read(
        self, key: str, after: str = FIRST, *, within_s: float | None = None, count: int = 256, block_s: float = 0.0
    ) -> list[Entry]:
        reply = await self._call(lambda rid: wire.Read(rid, key, after, within_s, count, block_s), wait_s=block_s)
        assert isinstance(reply, wire.Entries)
        return [Entry(entry_id, data) for entry_id, data in reply.entries]

    # -- presence

    async def join(self, group: str, member: str, value: bytes = b"") -> dict[str, bytes]:
        reply = await self._call(lambda rid: wire.Join(rid, group, member, value))
        assert isinstance(reply, wire.Listed)
        return reply.members

    async def leave(self, group: str, member: str) -> int | None:
        try:
            reply = await self._call(lambda rid: wire.Leave(rid, group, member))
        except StoreUnavailable:  # a lost hub dropped it with the connection
            return None
        assert isinstance(reply, wire.Counted)
        return reply.n

    async def members(self, group: str) -> dict[str, bytes]:
        reply = await self._call(lambda rid: wire.Members(rid, group))
        assert isinstance(reply, wire.Listed)
        return reply.members

    async def watch(self, group: str) -> Inbox:
        inbox = Inbox(1, lambda box: self._unwatch(group, box))
        await self._attach(self._watches, ("watch", group), group, inbox, lambda rid: wire.Watch(rid, group))
        return inbox

    def _unwatch(self, group: str, inbox: Inbox) -> None:
        if self._detach(self._watches, group, inbox):
            self._send_quietly(wire.Unwatch(group))

    # -- leases

    async def acquire(self, wants: Sequence[tuple[str, int]]) -> Lease | Full:
        check_wants(wants)
        reply = await self._call(lambda rid: wire.Acquire(rid, list(wants)))
        if isinstance(reply, wire.Refused):
            return Full(reply.name, reply.limit)
        assert isinstance(reply, wire.Granted)
        return Lease(reply.lease, tuple(name for name, _ in wants))

    async def release(self, lease: Lease) -> None:
        with contextlib.suppress(StoreUnavailable):  # a lost hub dropped it with the connection
            await self._call(lambda rid: wire.Release(rid, lease.id))

    async def renew(self) -> None:
        await self._call(wire.Renew)

    async def count(self, name: str) -> int:
        reply = await self._call(lambda rid: wire.Count(rid, name))
        assert isinstance(reply, wire.Counted)
        return reply.n

    # -- budgets

    async def spend(self, name: str, amount: float, per_minute: float) -> float:
        reply = await self._call(lambda rid: wire.Spend(rid, name, amount, per_minute))
        assert isinstance(reply, wire.Level)
        return reply.level

    # -- the wire

    def _live(self) -> Channel[wire.ToWorker]:
        if self._report.state is not StoreState.UP or self._channel is None:
            raise StoreUnavailable(self._error)
        return self._channel

    def _send(self, message: wire.ToHub) -> None:
        self._live().send(message)

    def _send_quietly(self, message: wire.ToHub) -> None:
        """A message nothing waits for (an unsubscribe): none is owed if the hub is gone."""
        with contextlib.suppress(StoreUnavailable):
            self._send(message)

    async def _call(self, make: Callable[[int], wire.ToHub], *, wait_s: float = 0.0) -> wire.Reply:
        channel = self._live()
        rid = next(self._rids)
        fut: asyncio.Future[wire.Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        channel.send(make(rid))
        try:
            async with asyncio.timeout(self.op_timeout_s + wait_s):
                reply = await fut
        except TimeoutError:
            raise StoreUnavailable(
                f"the node's cluster hub did not answer in {self.op_timeout_s + wait_s:g} s; retry shortly"
            ) from None
        finally:
            self._pending.pop(rid, None)
        if isinstance(reply, wire.Failed):
            raise ValueError(reply.message)
        return reply

    async def _attach(
        self,
        table: dict[str, set[Inbox]],
        what: tuple[str, str],
        name: str,
        inbox: Inbox,
        make: Callable[[int], wire.ToHub],
    ) -> None:
        """Add ``inbox`` to ``name``'s; the first one tells the hub (the others wait for its answer)."""
        self._live()
        inboxes = table.get(name)
        if inboxes is None:
            inboxes = table[name] = set()
            told: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._joining[what] = told
            try:
                await self._call(make)
                told.set_result(None)
            except BaseException as e:
                told.set_exception(e)
                told.exception()  # retrieved: the others that wait raise it themselves
                if not table[name]:
                    del table[name]
                raise
            finally:
                self._joining.pop(what, None)
        elif (telling := self._joining.get(what)) is not None:
            await asyncio.shield(telling)
        inboxes.add(inbox)

    def _detach(self, table: dict[str, set[Inbox]], name: str, inbox: Inbox) -> bool:
        """Remove ``inbox``; whether it was ``name``'s last (the hub is then told)."""
        inboxes = table.get(name)
        if inboxes is None or inbox not in inboxes:
            return False
        inboxes.discard(inbox)
        if inboxes:
            return False
        del table[name]
        return True

    async def _renew_every(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.renew()
            except StoreUnavailable as e:
                if self._report.state is not StoreState.UP:
                    return
                logger.warning("could not renew this worker's leases on the node's cluster hub: %s", e.message)

    async def _read(self, channel: Channel[wire.ToWorker]) -> None:
        error: BaseException | None = None
        try:
            error = await receive_all(channel, self._handle, "the node's cluster hub")
        finally:
            channel.close()
            self._lost(error)

    def _lost(self, error: BaseException | None) -> None:
        self._error = HUB_LOST if not self._closed else "this worker's cluster store is closed"
        if self._renewer is not None:
            self._renewer.cancel()
        failure = StoreUnavailable(self._error)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(failure)
        self._pending.clear()
        for table in (self._subs, self._watches):
            for inboxes in table.values():
                for inbox in inboxes:
                    inbox.fail(failure)
            table.clear()
        if not self._closed:
            logger.error("%s (%r)", HUB_LOST, error)
        self._report.set(StoreState.DOWN)

    def _handle(self, m: wire.ToWorker) -> None:
        if isinstance(m, wire.Message):
            for inbox in list(self._subs.get(m.channel, ())):
                inbox.put(m.data)
        elif isinstance(m, wire.Changed):
            notice = m.group.encode()
            for inbox in list(self._watches.get(m.group, ())):
                inbox.put(notice)
        elif isinstance(m, wire.Welcome):
            raise FrameError("welcome twice")
        else:
            fut = self._pending.get(m.rid)
            if fut is not None and not fut.done():
                fut.set_result(m)


if TYPE_CHECKING:  # mypy proves that the class implements the Protocol

    def _implements(store: HubStore) -> ClusterStore:
        return store
