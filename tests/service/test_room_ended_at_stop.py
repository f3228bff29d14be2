"""A server that stops right after a room's last party left still tells ``room.ended``
(``RoomRegistry.close``, called by ``Application.stop`` before the store and the webhooks' outbox
close).

The room's end is told by the herald once its leave of the room's group answers (the store says
whether another process still holds the room). Here the store answers a leave in ``LEAVE_S`` (a
slow Redis), over this process's store and over a real ``redis-server`` (whose own close gives back
this holder's memberships, but not through the herald): the listener leaves, the server stops at
once, and a second server on the same webhooks folder delivers what the first queued. A real
receiver (the Standard Webhooks library) must get ``room.ended``. Before, nothing awaited the
herald's leave: the first server closed the store and the webhooks' outbox under it (its stop
takes well under ``LEAVE_S``) and the room never ended for the webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.live_server import serving
from tests.support.redis_server import redis_server
from tests.support.rooms import room_settings
from tests.support.waiting import until
from tests.support.webhook_receiver import new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.cluster.memory import MemoryStore
from translate_svc.cluster.redis_store import RedisStore

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

#: how long the store takes to answer a leave: longer than a stop without rooms to wait for, well
#: inside the stop's bound for them (``CLOSE_S``, 5 s)
LEAVE_S = 2.5


class SlowLeaves:
    """A store answering a leave only after ``LEAVE_S`` (mixed into a store class); its close, and
    the leaves its close makes, at the store's own speed."""

    leaving = 0
    closing = False

    async def leave(self, group: str, member: str) -> int | None:
        self.leaving += 1
        if not self.closing:
            await asyncio.sleep(LEAVE_S)
        return await super().leave(group, member)  # type: ignore[misc]

    async def close(self) -> None:
        self.closing = True
        await super().close()  # type: ignore[misc]


class SlowMemory(SlowLeaves, MemoryStore):
    pass


class SlowRedis(SlowLeaves, RedisStore):
    pass


@contextlib.contextmanager
def slow_store(kind: str) -> Iterator[SlowMemory | SlowRedis]:
    if kind == "memory":
        yield SlowMemory()
        return
    with redis_server() as redis:
        yield SlowRedis(redis.url)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_server_stopping_right_after_a_rooms_last_party_left_still_tells_room_ended(
    test_model_dir: Path, tmp_path: Path, kind: str
) -> None:
    async with receiving(new_secret()) as receiver:
        settings = room_settings(test_model_dir)
        settings.webhooks = receiver.webhooks(tmp_path / "webhooks")
        with slow_store(kind) as store:
            async with serving(settings, cluster=store) as live:
                listen = live.stub.Listen(pb.ListenRequest(room="hall", language="spa"))
                assert (await asyncio.wait_for(listen.read(), 30)).HasField("started")
                await receiver.wait_for(lambda r: len(r.events("room.started")) == 1)
                listen.cancel()
                await until(lambda: store.leaving >= 2, timeout_s=30)  # its ears and the room's group: under way
        # stopped; the next start on the same webhooks folder delivers what the first one queued
        async with serving(settings):
            await receiver.wait_for(lambda r: len(r.events("room.ended")) == 1, timeout_s=60)
    (started,) = receiver.events("room.started")
    (ended,) = receiver.events("room.ended")
    assert ended["data"]["room"] == "hall" and ended["data"]["room_id"] == started["data"]["room_id"]
