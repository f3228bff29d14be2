"""However a session ends, it yields exactly one ``session.ended`` saying how (issue 61): a client's
cancel, an error in its input, a speaker's half-close (its room's ``room.started`` and
``room.ended`` around it), its tenant's spent audio budget (with ``quota.exceeded``; a call
refused for it up front is no session, only ``quota.exceeded``), and a drain as the server stops
(delivered by the next start on the same data dir: the queue is on disk). One real server on
loopback with a tokens file, raw gRPC clients, a receiver verifying every delivery with the Standard
Webhooks library."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.speech import speech_pcm16
from tests.support.tokens import bearer
from tests.support.webhook_receiver import Receiver, new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]

ACME, BUDGET = "acme-token-3f9d1c", "budget-token-77a0e2"
FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)


def config() -> pb.StreamingTranslateRequest:
    return pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, target_languages=["spa"]))


def ended_of(receiver: Receiver, tenant: str) -> list[dict[str, Any]]:
    return [e["data"] for e in receiver.events("session.ended") if e["data"]["tenant"] == tenant]


async def test_cancel_error_quota_and_drain_each_end_a_session_once_saying_how(
    test_model_dir: Path, shared_audio: Path, tmp_path: Path
) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 6.0, 16000).tobytes()
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ACME} * tenant=acme\n{BUDGET} stream tenant=budget audio_seconds_per_minute=2\n")
    async with receiving(new_secret()) as receiver:
        settings = make_settings(test_model_dir)
        settings.model.test_translator = "stable"
        settings.auth.tokens_file = tokens
        settings.server.drain_s = 1.0
        settings.webhooks = receiver.webhooks(tmp_path / "data")
        release = asyncio.Event()

        async def held(then: list[pb.StreamingTranslateRequest]) -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield config()
            yield pb.StreamingTranslateRequest(audio=pcm[:32000])
            await release.wait()
            for r in then:
                yield r

        async with serving(settings) as live:
            # a client's cancel
            call = live.stub.StreamingTranslate(held([]), metadata=bearer(ACME))
            assert (await call.read()).HasField("started")
            await receiver.wait_for(lambda r: len(r.events("session.started")) == 1)
            call.cancel()
            await receiver.wait_for(lambda r: len(ended_of(r, "acme")) == 1)
            # an error in the input: a second config
            release.set()
            bad = live.stub.StreamingTranslate(held([config()]), metadata=bearer(ACME))
            with pytest.raises(grpc.aio.AioRpcError) as e:
                async for _ in bad:
                    pass
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            await receiver.wait_for(lambda r: len(ended_of(r, "acme")) == 2)
            # a speaker in a room: the room starts and ends with it
            room = pb.StreamingConfig(
                format=FMT, source_language="eng", target_languages=["spa"], room=pb.RoomSpeaking(name="lobby")
            )
            speech = [pb.StreamingTranslateRequest(config=room), pb.StreamingTranslateRequest(audio=pcm[:32000])]
            async for _ in live.stub.StreamingTranslate(iter(speech), metadata=bearer(ACME), timeout=30):
                pass
            await receiver.wait_for(lambda r: len(ended_of(r, "acme")) == 3 and len(r.events("room.ended")) == 1)
            await spent_budget(live, pcm)
            await receiver.wait_for(lambda r: len(ended_of(r, "budget")) == 1)
            await receiver.wait_for(lambda r: len(r.events("quota.exceeded")) == 2)
            # a drain: the server stops with a stream open
            release.clear()
            draining = live.stub.StreamingTranslate(held([]), metadata=bearer(ACME))
            assert (await draining.read()).HasField("started")
            reading = asyncio.ensure_future(drained(draining, release))
            await live.server.stop(grace=8)
            assert await reading == grpc.StatusCode.UNAVAILABLE
        async with serving(settings):  # the drained session's end, queued as the first stopped
            await receiver.wait_for(lambda r: len(ended_of(r, "acme")) == 4 and len(r.events("session.started")) == 5)
            await asyncio.sleep(1.0)
    acme = ended_of(receiver, "acme")
    assert [(d["ending"], d["code"]) for d in acme] == [
        ("cancelled", "CANCELLED"),
        ("error", "INVALID_ARGUMENT"),
        ("completed", "OK"),
        ("drain", "UNAVAILABLE"),
    ]
    assert acme[1]["reason"] == "invalid_argument" and acme[3]["reason"] == "draining"
    rooms = [(e["type"], e["data"]) for e in receiver.events() if e["type"].startswith("room.")]
    room_ids = {d.pop("room_id") for _, d in rooms}
    assert len(room_ids) == 1  # one life: the same id in both
    assert sorted(rooms, key=lambda r: r[0], reverse=True) == [
        (t, {"tenant": "acme", "room": "lobby"}) for t in ("room.started", "room.ended")
    ]
    (budget,) = ended_of(receiver, "budget")
    assert (budget["ending"], budget["reason"], budget["code"]) == ("quota", "quota", "RESOURCE_EXHAUSTED")
    assert budget["usage"]["audio_in_s"] >= 2.0
    quota = [e["data"] for e in receiver.events("quota.exceeded")]
    assert [q["tenant"] for q in quota] == ["budget", "budget"] and all(q["retry_after_ms"] for q in quota)
    # one session.ended per session.started, and the refused call was no session
    started = {e["data"]["session_id"] for e in receiver.events("session.started")}
    assert len(started) == 5
    assert started == {e["data"]["session_id"] for e in receiver.events("session.ended")}
    assert len(receiver.events("session.ended")) == 5 and receiver.refused == []


async def drained(call: Any, release: asyncio.Event) -> grpc.StatusCode:
    """What a stream open while its server drains ends with; it keeps sending until the drain's
    deadline ends it, then stops."""
    try:
        while (r := await call.read()) is not grpc.aio.EOF:
            if r.HasField("ended"):  # the drain's deadline: it stops sending, as the SDK does
                release.set()
    except grpc.aio.AioRpcError as e:
        return e.code()
    return await call.code()


async def spent_budget(live: LiveServer, pcm: bytes) -> None:
    """The budget tenant's stream sends 6 s at once against 2 s a minute: ended for its quota; its
    next call is refused up front."""

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield config()
        for at in range(0, len(pcm), 3200):
            yield pb.StreamingTranslateRequest(audio=pcm[at : at + 3200])

    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as e:
            async for _ in live.stub.StreamingTranslate(requests(), metadata=bearer(BUDGET), timeout=60):
                pass
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
