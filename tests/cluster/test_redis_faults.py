"""Redis's faults as an operator meets them, against a real redis-server: unreachable at start (a
clear error naming the URL, never the password), a password, and Redis killed (``kill -9``) and
started again on the same port mid-run: calls fail at once with a clear error while it is down, the
state hook says so, and the same store works again after it is back, without being rebuilt, with
its leases, memberships and subscriptions in place (a restarted Redis keeps nothing)."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.proc import free_port
from tests.support.redis_server import RedisServer, redis_server
from translate_svc.cluster.redis_store import RedisStore
from translate_svc.cluster.store import Full, Lease, StoreState, StoreUnavailable

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

LEASE_S = 2.0


async def test_an_unreachable_redis_at_start_is_a_clear_error_naming_the_url_without_its_password() -> None:
    port = free_port()  # nothing listens there
    store = RedisStore(f"redis://app:hunter2-secret@127.0.0.1:{port}/3", op_timeout_s=1.0)
    with pytest.raises(StoreUnavailable) as refused:
        await store.start()
    message = refused.value.message
    assert f"redis://app:***@127.0.0.1:{port}/3" in message
    assert "hunter2" not in message
    assert "cluster.redis_url" in message
    assert store.state is StoreState.DOWN
    with pytest.raises(StoreUnavailable):
        await store.count("streams")
    await store.close()


async def test_a_password_is_needed_and_a_wrong_one_is_named_as_such() -> None:
    with redis_server(password="s3cret-pass") as server:
        bare = f"redis://127.0.0.1:{server.port}/0"
        store = RedisStore(bare, password="s3cret-pass", lease_s=LEASE_S)
        await store.start()
        assert isinstance(await store.acquire([("streams", 1)]), Lease)
        await store.close()
        wrong = RedisStore(bare, password="not-it")
        with pytest.raises(StoreUnavailable) as refused:
            await wrong.start()
        assert "not-it" not in refused.value.message
        assert f"127.0.0.1:{server.port}" in refused.value.message
        await wrong.close()


async def test_redis_killed_and_restarted_fails_calls_clearly_then_rejoins_without_a_rebuild() -> None:
    server = RedisServer()
    server.start()
    store = RedisStore(server.url, lease_s=LEASE_S, op_timeout_s=1.0)
    other = RedisStore(server.url, lease_s=LEASE_S, op_timeout_s=1.0)
    states: list[StoreState] = []
    back = asyncio.Event()
    try:
        await store.start()
        await other.start()
        store.on_state(states.append)
        store.on_state(lambda state: back.set() if state is StoreState.UP else None)
        lease = await store.acquire([("streams", 2), ("acme/streams", 1)])
        assert isinstance(lease, Lease)
        await store.join("room/t/r/listeners", "l1", b"spa")
        captions = await store.subscribe("room/t/r/captions/spa", limit=8)
        watch = await store.watch("pair/t/call-1")

        server.kill()  # kill -9: everything in it is gone
        with pytest.raises(StoreUnavailable) as failed:
            async with asyncio.timeout(5):
                await store.count("streams")
        assert server.url.removeprefix("redis://") in failed.value.message
        assert states == [StoreState.DOWN]
        assert store.state is StoreState.DOWN
        started = time.monotonic()
        for call in (
            store.acquire([("streams", 2)]),
            store.append("room/t/r/finals/spa", b"x", keep_s=30, max_len=10),
            store.spend("acme/audio", 1, 60),
            store.members("room/t/r/listeners"),
            store.publish("room/t/r/captions/spa", b"lost"),
        ):
            with pytest.raises(StoreUnavailable):
                await call
        assert time.monotonic() - started < 0.5  # refused at once while down, not after a timeout each
        await store.release(Lease("nobody:1", ("streams",)))  # a release never raises for the loss

        server.start()  # the same port, empty
        await asyncio.wait_for(back.wait(), 15)
        assert states == [StoreState.DOWN, StoreState.UP]
        # rejoined: its lease and membership are written back into the empty Redis
        assert await other.count("streams") == 1
        assert await other.count("acme/streams") == 1
        assert await other.members("room/t/r/listeners") == {"l1": b"spa"}
        assert await other.acquire([("acme/streams", 1)]) == Full("acme/streams", 1)  # still held
        # its subscription and watch were made again
        async with asyncio.timeout(15):
            while True:
                await other.publish("room/t/r/captions/spa", b"after the restart")
                try:
                    async with asyncio.timeout(0.2):
                        assert await captions.get() == b"after the restart"
                        break
                except TimeoutError:
                    continue
        await other.join("pair/t/call-1", "leg-b")
        async with asyncio.timeout(5):
            assert await watch.get() == b"pair/t/call-1"
        # and every primitive works on the same store object
        assert await store.spend("acme/audio", 10, 60) == pytest.approx(50, abs=0.5)
        entry = await store.append("room/t/r/finals/spa", b"final", keep_s=30, max_len=10)
        assert [e.id for e in await other.read("room/t/r/finals/spa")] == [entry]
        await store.release(lease)
        assert await other.count("streams") == 0
    finally:
        await store.close()
        await other.close()
        server.remove()
