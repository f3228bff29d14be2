"""The node's cluster hub: one ``ClusterState`` (``state.py``) served to every worker of
``serve --workers N`` over a Unix socket (``hub_wire.py``), so that the workers of a node share
rooms, call legs, leases and budgets as one process would.

It runs in the supervisor (``serving/supervisor.py``; docs/decisions.md says why there): the node
lives as long as the supervisor does, and every worker dies with it, so the hub never outlives or
restarts under its workers. Each connection is one holder: its leases and memberships go at once
when it closes (a worker that exits or is killed), and ``lease_s`` after its last renewal if it
stops without closing (a worker stopped or stuck); a timer sweeps expired holders, telling the
watchers of their groups.

Bounded: a worker that stops reading first loses its pub/sub messages (counted in ``dropped``)
once ``drop_above`` bytes wait for it, and is disconnected at ``max_buffered_bytes``; a blocking
read is a task of its connection, cancelled with it. Event loop only (the supervisor's loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
from collections.abc import Callable
from pathlib import Path

from translate_svc.cluster import hub_wire as wire
from translate_svc.cluster.state import ClusterState
from translate_svc.cluster.store import Full
from translate_svc.framing import Channel, FrameError, stop_serving

logger = logging.getLogger(__name__)

#: replies and messages a worker may leave unread: beyond the first its pub/sub messages are
#: dropped, beyond the second it is disconnected
DROP_ABOVE_BYTES = 4 * 1024 * 1024
MAX_BUFFERED_BYTES = 32 * 1024 * 1024


class HubServer:
    """Serves one ``ClusterState`` at a Unix socket. Event loop only."""

    def __init__(
        self,
        *,
        lease_s: float = 15.0,
        state: ClusterState | None = None,
        drop_above: int = DROP_ABOVE_BYTES,
        max_buffered_bytes: int = MAX_BUFFERED_BYTES,
    ) -> None:
        self.lease_s = lease_s
        self.state = state if state is not None else ClusterState()
        self.drop_above = drop_above
        self.max_buffered_bytes = max_buffered_bytes
        #: pub/sub messages dropped for workers that did not read them
        self.dropped = 0
        self._server: asyncio.Server | None = None
        self._peers: set[_Peer] = set()
        self._ids = itertools.count()
        self._sweeper: asyncio.Task[None] | None = None
        self.path: Path | None = None

    @property
    def workers(self) -> int:
        return len(self._peers)

    async def start(self, path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket left by a supervisor that was killed
        self._server = await asyncio.start_unix_server(self._serve, path=str(path), limit=wire.READ_LIMIT)
        self.path = path
        self._sweeper = asyncio.create_task(self._sweep(), name="cluster-hub-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        await stop_serving(self._server, (peer.channel for peer in self._peers))

    async def _sweep(self) -> None:
        """Expired holders go even while nobody asks (their groups' watchers are told)."""
        every = min(1.0, self.lease_s / 4)
        while True:
            await asyncio.sleep(every)
            self.state.sweep()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        channel: Channel[wire.ToHub] = Channel(
            reader, writer, wire.ToHub, max_frame_bytes=wire.MAX_FRAME_BYTES, write_high=wire.WRITE_HIGH
        )
        peer: _Peer | None = None
        try:
            hello = await channel.recv()
            if not isinstance(hello, wire.Hello):
                raise FrameError(f"expected hello, got {type(hello).__name__}")
            peer = _Peer(self, channel, f"{hello.worker}#{next(self._ids)}")
            self.state.holder(peer.name, self.lease_s)
            self._peers.add(peer)
            logger.info("worker %s (pid %d) joined the node's cluster hub", hello.worker, hello.pid)
            channel.send(wire.Welcome(peer.name, self.lease_s))
            while True:
                peer.handle(await channel.recv())
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker went away
        except FrameError as e:
            logger.error("a worker sent a bad frame to the cluster hub (%s); disconnecting it", e)
        finally:
            if peer is not None:
                self._peers.discard(peer)
                peer.gone()
            channel.close()


class _Peer:
    """One worker's connection: one holder, its subscriptions, watches and blocking reads."""

    def __init__(self, server: HubServer, channel: Channel[wire.ToHub], name: str) -> None:
        self.server = server
        self.state = server.state
        self.channel = channel
        self.name = name
        self.channels: dict[str, Callable[[bytes], None]] = {}  # subscribed: the sink of each
        self.groups: set[str] = set()
        self.reads: set[asyncio.Task[None]] = set()

    def send(self, message: wire.ToWorker) -> None:
        self.channel.send_bounded(message, self.server.max_buffered_bytes, f"worker {self.name} (on the cluster hub)")

    def deliver(self, channel: str, data: bytes) -> None:
        """A message published on a channel it subscribed to (dropped if it reads too slowly)."""
        if self.channel.buffered > self.server.drop_above:
            self.server.dropped += 1
            return
        self.send(wire.Message(channel, data))

    def changed(self, group: bytes) -> None:
        self.send(wire.Changed(group.decode()))

    def handle(self, m: wire.ToHub) -> None:
        state = self.state
        if isinstance(m, wire.Publish):
            state.publish(m.channel, m.data)
            return
        if isinstance(m, wire.Unsubscribe):
            sink = self.channels.pop(m.channel, None)
            if sink is not None:
                state.unsubscribe(m.channel, sink)
            return
        if isinstance(m, wire.Unwatch):
            if m.group in self.groups:
                self.groups.discard(m.group)
                state.unwatch(m.group, self.changed)
            return
        if isinstance(m, wire.Hello):
            raise FrameError("hello twice")
        if isinstance(m, wire.Read) and m.block_s > 0:
            task = asyncio.create_task(self._read(m), name="cluster-hub-read")
            self.reads.add(task)
            task.add_done_callback(self.reads.discard)
            return
        try:
            reply = self._answer(m)
        except (ValueError, KeyError) as e:
            reply = wire.Failed(m.rid, str(e))
        self.send(reply)

    def _answer(self, m: wire.ToHub) -> wire.Reply:
        state = self.state
        if isinstance(m, wire.Subscribe):
            if m.channel not in self.channels:
                sink = self.channels[m.channel] = functools.partial(self.deliver, m.channel)
                state.subscribe(m.channel, sink)
            return wire.Done(m.rid)
        if isinstance(m, wire.Append):
            return wire.Added(m.rid, state.append(m.key, m.data, keep_s=m.keep_s, max_len=m.max_len))
        if isinstance(m, wire.Read):
            got = state.range(m.key, m.after, within_s=m.within_s, count=m.count)
            return wire.Entries(m.rid, [(e.id, e.data) for e in got])
        if isinstance(m, wire.Join):
            return wire.Listed(m.rid, state.join(self.name, m.group, m.member, m.value))
        if isinstance(m, wire.Leave):
            return wire.Counted(m.rid, state.leave(self.name, m.group, m.member))
        if isinstance(m, wire.Members):
            return wire.Listed(m.rid, state.members(m.group))
        if isinstance(m, wire.Watch):
            if m.group not in self.groups:
                self.groups.add(m.group)
                state.watch(m.group, self.changed)
            return wire.Done(m.rid)
        if isinstance(m, wire.Acquire):
            lease = state.acquire(self.name, m.wants)
            if isinstance(lease, Full):
                return wire.Refused(m.rid, lease.name, lease.limit)
            return wire.Granted(m.rid, lease.id)
        if isinstance(m, wire.Release):
            state.release(self.name, m.lease)
            return wire.Done(m.rid)
        if isinstance(m, wire.Renew):
            state.renew(self.name)
            return wire.Done(m.rid)
        if isinstance(m, wire.Count):
            return wire.Counted(m.rid, state.count(m.name))
        if isinstance(m, wire.Spend):
            return wire.Level(m.rid, state.spend(m.name, m.amount, m.per_minute))
        raise FrameError(f"unexpected {type(m).__name__}")

    async def _read(self, m: wire.Read) -> None:
        try:
            got = await self.state.read(m.key, m.after, within_s=m.within_s, count=m.count, block_s=m.block_s)
            reply: wire.Reply = wire.Entries(m.rid, [(e.id, e.data) for e in got])
        except ValueError as e:
            reply = wire.Failed(m.rid, str(e))
        self.send(reply)

    def gone(self) -> None:
        """The worker is gone: its holder's leases and memberships with it."""
        for task in self.reads:
            task.cancel()
        for channel, sink in self.channels.items():
            self.state.unsubscribe(channel, sink)
        for group in self.groups:
            self.state.unwatch(group, self.changed)
        self.state.drop(self.name)
