"""A server that stops right after a room's last party left still tells ``room.ended``
(``RoomRegistry.close``, called by ``Application.stop`` before the store and the webhooks' outbox
close).

The room's end is told by the herald once its leave of the room's group answers (the store says
whether another process still holds the room). Here the store answers a leave in ``LEAVE_S``
(a slow Redis): the listener leaves, the server stops at once, and a second server on the same
webhooks folder delivers what the first queued. A real receiver (the Standard Webhooks library)
must get ``room.ended``. Before, nothing awaited the herald's leave: the first server closed the
store and the webhooks' outbox under it (its stop takes well under ``LEAVE_S``) and the room never
ended for the webhooks.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.live_server import serving
from tests.support.rooms import room_settings
from tests.support.waiting import until
from tests.support.webhook_receiver import new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.cluster.memory import MemoryStore
from translate_svc.settings import WebhookEndpoint, WebhookSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

#: how long the store takes to answer a leave: longer than a stop without rooms to wait for, well
#: inside the stop's bound for them (``CLOSE_S``, 5 s)
LEAVE_S = 2.5


class SlowLeaves(MemoryStore):
    """This process's store, answering a leave only after ``LEAVE_S``."""

    leaving = 0

    async def leave(self, group: str, member: str) -> int | None:
        self.leaving += 1
        await asyncio.sleep(LEAVE_S)
        return await super().leave(group, member)


async def test_a_server_stopping_right_after_a_rooms_last_party_left_still_tells_room_ended(
    test_model_dir: Path, tmp_path: Path
) -> None:
    async with receiving(new_secret()) as receiver:
        settings = room_settings(test_model_dir)
        settings.webhooks = WebhookSettings(
            endpoints=[WebhookEndpoint(url=receiver.url, secret=receiver.secrets[0])],
            data_dir=tmp_path / "webhooks",
            first_backoff_s=0.2,
            max_backoff_s=1.0,
            allow_http=True,  # the receiver on loopback
        )
        store = SlowLeaves()
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
