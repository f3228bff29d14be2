"""The node's hub and its workers' faults, on a real Unix socket: a worker that loses the hub fails
loudly (its state, its listeners, every call and inbox) and never serves state of its own; a worker
that stops reading is bounded (its pub/sub messages dropped and counted, then it is disconnected
and what it held is freed); a worker that sends garbage is disconnected."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import tempfile
from pathlib import Path

import msgspec
import pytest

from tests.support.cluster_stores import hub_server
from tests.support.waiting import eventually
from translate_svc.cluster import hub_wire as wire
from translate_svc.cluster.hub_client import HUB_LOST, HubStore
from translate_svc.cluster.hub_server import HubServer
from translate_svc.cluster.store import Lease, StoreState, StoreUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


async def test_a_worker_that_loses_the_hub_fails_loudly_and_keeps_no_state_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    folder = Path(tempfile.mkdtemp(prefix="hub-"))
    server = HubServer(lease_s=5)
    await server.start(folder / "cluster.sock")
    store = HubStore(folder / "cluster.sock", "w0")
    try:
        await store.start()
        states: list[StoreState] = []
        store.on_state(states.append)
        assert isinstance(await store.acquire([("streams", 4)]), Lease)
        inbox = await store.subscribe("captions", limit=4)
        watch = await store.watch("room/t/r/listeners")
        waiting = asyncio.ensure_future(store.read("leg/t/c/1", block_s=30))
        await asyncio.sleep(0.1)

        await server.stop()  # the supervisor, and its hub, are gone

        with pytest.raises(StoreUnavailable) as failed:
            await asyncio.wait_for(waiting, 5)
        assert failed.value.message == HUB_LOST
        assert states == [StoreState.DOWN]
        for call in (
            store.count("streams"),
            store.acquire([("streams", 4)]),
            store.members("room/t/r/listeners"),
            store.publish("captions", b"x"),
            store.append("k", b"x", keep_s=1, max_len=1),
        ):
            with pytest.raises(StoreUnavailable):
                await call
        await store.release(Lease("w0#0:0", ("streams",)))  # never raises: the hub dropped it anyway
        await store.leave("room/t/r/listeners", "l1")
        with pytest.raises(StoreUnavailable):
            await inbox.get()
        with pytest.raises(StoreUnavailable):
            await watch.get()
        assert any(HUB_LOST in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    finally:
        await store.close()
        shutil.rmtree(folder, ignore_errors=True)


async def test_a_hub_that_is_not_there_at_start_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "cluster.sock"
    store = HubStore(missing, "w0", op_timeout_s=1.0)
    with pytest.raises(StoreUnavailable) as failed:
        await store.start()
    assert str(missing) in failed.value.message
    assert store.state is StoreState.DOWN


async def counts(store: HubStore, n: int) -> bool:
    return await store.count("streams") == n


def frame(message: msgspec.Struct) -> bytes:
    body = msgspec.msgpack.encode(message)
    return struct.pack(">I", len(body)) + body


def stuck_worker(path: Path, *requests: msgspec.Struct) -> socket.socket:
    """A worker that says hello, sends ``requests``, and never reads a byte."""
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(str(path))
    raw.sendall(b"".join(frame(m) for m in (wire.Hello("w-stuck", 1), *requests)))
    return raw


async def test_a_worker_that_stops_reading_loses_its_pubsub_messages_counted_and_holds_nothing_up() -> None:
    async with hub_server(30.0, drop_above=64 * 1024, max_buffered_bytes=1024 * 1024) as hub:
        assert hub.path is not None
        publisher = HubStore(hub.path, "w-pub")
        await publisher.start()
        heard = await publisher.subscribe("captions", limit=1000)
        raw = stuck_worker(hub.path, wire.Subscribe(1, "captions"), wire.Acquire(2, [("streams", 10)]))
        try:
            await eventually(lambda: counts(publisher, 1), "the stuck worker's lease", 5, 0.01)
            got = []
            for i in range(200):  # 2 MB to a worker that reads nothing (and to one that reads each)
                await publisher.publish("captions", b"%03d" % i + b"x" * 10_000)
                async with asyncio.timeout(5):
                    got.append(await heard.get())
            assert [m[:3] for m in got] == [b"%03d" % i for i in range(200)]  # the reader missed nothing
            assert heard.dropped == 0
            assert hub.dropped > 0  # the stuck one's, counted
            assert hub.workers == 2  # still connected: what waits for it is bounded
            assert await publisher.count("streams") == 1
        finally:
            raw.close()
            await publisher.close()


async def test_a_worker_that_leaves_its_replies_unread_is_disconnected_and_its_leases_freed_at_once() -> None:
    async with hub_server(30.0, drop_above=64 * 1024, max_buffered_bytes=256 * 1024) as hub:
        assert hub.path is not None
        other = HubStore(hub.path, "w-other")
        await other.start()
        for _ in range(8):
            await other.append("big", b"y" * 100_000, keep_s=60, max_len=100)
        reads = [wire.Read(10 + i, "big", "0-0", None, 100, 0.0) for i in range(20)]  # 16 MB of replies
        raw = stuck_worker(hub.path, wire.Acquire(2, [("streams", 10)]), *reads)
        try:
            # far sooner than its lease (30 s) would expire
            await eventually(lambda: counts(other, 0), "the stuck worker disconnected, its lease freed", 10, 0.02)
            assert hub.workers == 1
        finally:
            raw.close()
            await other.close()


async def test_a_worker_that_sends_a_bad_frame_is_disconnected(caplog: pytest.LogCaptureFixture) -> None:
    async with hub_server(30.0) as hub:
        assert hub.path is not None
        raw = stuck_worker(hub.path, wire.Acquire(2, [("streams", 10)]))
        try:
            other = HubStore(hub.path, "w-other")
            await other.start()
            await eventually(lambda: counts(other, 1), "the worker's lease", 5, 0.01)
            raw.sendall(struct.pack(">I", 3) + b"\xc1\xc1\xc1")  # 0xc1: never valid MessagePack
            await eventually(lambda: counts(other, 0), "the worker disconnected, its lease freed", 5, 0.01)
            assert any("bad frame" in r.getMessage() for r in caplog.records)
            await other.close()
        finally:
            raw.close()
