"""A room spread over two servers sharing a real ``redis-server`` starts and ends once (issue 73):
a listener on server B opens the room, a speaker on server A speaks into it and leaves, the listener
leaves; a real receiver (the Standard Webhooks library) gets one ``room.started`` and one
``room.ended``, both with the same ``room_id`` and each with the webhook-id made from it
(``room_event_id``: a receiver de-duplicates by webhook-id).

Before: every process holding a party of the room told both events (two of each here), each with
a webhook-id of its own and nothing tying them to one room.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tests.support.live_server import serving
from tests.support.redis_server import redis_server
from tests.support.rooms import room_settings, speak, speaker_config
from tests.support.speech import speech_pcm16
from tests.support.webhook_receiver import new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.session.rooms.herald import room_event_id

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]


async def test_a_room_over_two_servers_starts_once_and_ends_once(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 4.0, 16000).tobytes()
    with redis_server() as redis:
        async with receiving(new_secret()) as receiver:

            def settings(name: str):  # type: ignore[no-untyped-def]
                s = room_settings(test_model_dir)
                s.cluster.redis_url = redis.url
                s.webhooks = receiver.webhooks(tmp_path / name)
                return s

            async with serving(settings("a")) as a, serving(settings("b")) as b:
                listen = b.stub.Listen(pb.ListenRequest(room="hall", language="spa"))
                assert (await asyncio.wait_for(listen.read(), 30)).HasField("started")
                await receiver.wait_for(lambda r: len(r.events("room.started")) >= 1)
                await speak(a.stub, speaker_config("hall"), pcm, [])
                listen.cancel()
                await receiver.wait_for(lambda r: len(r.events("room.ended")) >= 1)
                await receiver.wait_for(lambda r: len(r.events("session.ended")) >= 1)
                await asyncio.sleep(1.5)  # a second room event from either server would arrive meanwhile
    # what a receiver keeps: one payload per webhook-id
    ids = {id(d.payload): d.headers["webhook-id"] for d in receiver.accepted}
    told = [(ids[id(e)], e["type"], e["data"]) for e in receiver.events() if e["type"].startswith("room.")]
    assert Counter(t for _, t, _ in told) == {"room.started": 1, "room.ended": 1}, told
    lives = {d["room_id"] for _, _, d in told}
    assert len(lives) == 1 and all(d["room"] == "hall" for _, _, d in told), told
    (life,) = lives
    for webhook_id, kind, data in told:
        assert webhook_id == room_event_id(kind, data["tenant"], "hall", life)
