"""Issue 57: rooms and listeners bounded per tenant by default, listens with a deadline, rooms not held
after their last party leaves, and listeners that end with their token, on a real server on
loopback with real clients (grpc's and aiohttp's WebSocket).

Before: one uncapped full-rights token held every gRPC call slot with 1,024 listeners, every HTTP
connection with 512 WebSocket listeners, or all 256 rooms (which lingered 60 s after release); a
listen lasted as long as its client liked; a listener went on hearing the room after its token was
removed from the tokens file (every other call kind is ended within a second).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

from tests.support.attacks.client import OWN
from tests.support.live_server import serving
from tests.support.rooms import listen_url, registry, room_settings, speak, speaker_config, wait_for
from tests.support.speech import speech_pcm16
from tests.support.tokens import bearer, reloaded, replace
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.transport.rooms.protocol import LISTEN_SUBPROTOCOL

pytestmark = [pytest.mark.integration, pytest.mark.slow(60)]

ACME = "rooms-limits-acme-0b7c"  # every right, no cap stated
OTHER = "rooms-limits-other-5e21"
EARS = "rooms-limits-ears-93ad"  # listens to talk-* only
TOKENS = f"{ACME} * tenant=acme\n{OTHER} * tenant=other\n{EARS} listen=talk-* tenant=ears\n"


def settings_for(test_model_dir: Path, tokens: Path | None = None, **rooms: float):  # type: ignore[no-untyped-def]
    s = room_settings(test_model_dir, **rooms)
    s.server.http_port = 0
    if tokens is not None:
        s.auth.tokens_file = tokens
    return s


async def first_event(call: Any) -> str:
    """``started`` (the listen was let in) or the refusal's status and message."""
    try:
        ev = await asyncio.wait_for(call.read(), 30)
        return str(ev.WhichOneof("event"))
    except grpc.aio.AioRpcError as e:
        return f"{e.code().name}: {e.details()}"


async def test_a_tenant_without_stated_caps_holds_at_most_16_rooms_and_256_listeners(
    test_model_dir: Path, tmp_path: Path
) -> None:
    """The defaults (rooms.max_rooms_per_tenant, rooms.max_listeners_per_tenant) hold a tenant whose
    line states no rooms= / listeners=: the 17th room and the 257th listener are refused
    (RESOURCE_EXHAUSTED naming the setting), on gRPC and on the WebSocket, while another tenant is
    served (before: 256 rooms and 4,096 listeners for one tenant, the ports' every slot)."""
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS)
    async with serving(settings_for(test_model_dir, tokens)) as live, aiohttp.ClientSession() as http:
        chs = [grpc.aio.insecure_channel(f"127.0.0.1:{live.port}", options=OWN) for _ in range(2)]
        calls: list[Any] = []
        try:
            stubs = [pb_grpc.TranslatorStub(ch) for ch in chs]

            def listen(token: str, room: str, k: int = 0) -> Any:
                call = stubs[k % 2].Listen(pb.ListenRequest(room=room, language="spa"), metadata=bearer(token))
                calls.append(call)
                return call

            seen = [await first_event(listen(ACME, f"r{k}")) for k in range(17)]
            assert seen[:16] == ["started"] * 16, seen
            assert seen[16].startswith("RESOURCE_EXHAUSTED") and "rooms.max_rooms_per_tenant" in seen[16], seen[16]
            assert await first_event(listen(OTHER, "r0")) == "started"  # another tenant's room
            # listeners: 16 already (one a room); 240 more in room r0, then one over
            more = await asyncio.gather(*(first_event(listen(ACME, "r0", k)) for k in range(240)))
            assert more == ["started"] * 240, sorted(set(more))
            over = await first_event(listen(ACME, "r0"))
            assert over.startswith("RESOURCE_EXHAUSTED") and "rooms.max_listeners_per_tenant" in over, over
            # the same cap on the WebSocket door (429 before the upgrade); another tenant is let in
            headers = {"Authorization": f"Bearer {ACME}"}
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await http.ws_connect(listen_url(live, "r0", "spa"), headers=headers)
            assert e.value.status == 429
            async with http.ws_connect(
                listen_url(live, "r0", "spa"), headers={"Authorization": f"Bearer {OTHER}"}
            ) as ws:
                assert json.loads((await ws.receive()).data)["type"] == "room.started"
        finally:
            for call in calls:
                call.cancel()
            for ch in chs:
                await ch.close()


async def test_a_room_whose_last_party_leaves_holds_no_room_slot_and_keeps_its_backlog_a_while(
    test_model_dir: Path, shared_audio: Path
) -> None:
    """rooms.max_rooms 2 (node): a speaker talks into room `talk` and leaves; a listener of room
    `a` leaves. Both rooms give their slots back at once (before: held idle_room_s, 60 s), so two
    new rooms open at once; `talk`'s backlog still waits for a late listener (idle_room_s)."""
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 12.0, 16000).tobytes()
    async with serving(settings_for(test_model_dir, max_rooms=2)) as live:
        rooms = registry(live)
        own: list[pb.SegmentResult] = []
        await speak(live.stub, speaker_config("talk", targets=("spa",)), pcm, own)
        assert own
        a = live.stub.Listen(pb.ListenRequest(room="a", language="spa"))
        assert await first_event(a) == "started"
        a.cancel()
        await wait_for(lambda: not any(True for _ in rooms.all_listeners()))
        held = [live.stub.Listen(pb.ListenRequest(room=name, language="spa")) for name in ("b", "c")]
        assert [await first_event(c) for c in held] == ["started", "started"]
        for c in held:
            c.cancel()
        await wait_for(lambda: not any(True for _ in rooms.all_listeners()))
        late = live.stub.Listen(pb.ListenRequest(room="talk", language="spa"))
        first = await asyncio.wait_for(late.read(), 30)
        assert first.started.backlog == len(own), first  # the waiting backlog, in the listener's language
        late.cancel()


async def test_a_listen_ends_at_rooms_max_listen_s_on_both_doors_even_when_its_client_does_not_read(
    test_model_dir: Path, shared_audio: Path
) -> None:
    """rooms.max_listen_s 2: a gRPC listener ends OUT_OF_RANGE naming the setting, a WebSocket one
    gets `room.closed` (max_listen_duration) and close 1000, and a gRPC listener that reads nothing
    while a speaker talks is ended too: no listener is left (before: each listened on)."""
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 30.0, 16000).tobytes()
    async with serving(settings_for(test_model_dir, max_listen_s=2.0)) as live, aiohttp.ClientSession() as http:
        rooms = registry(live)
        reader = live.stub.Listen(pb.ListenRequest(room="talk", language="spa"))
        slow_ch = grpc.aio.insecure_channel(
            f"127.0.0.1:{live.port}",
            options=[*OWN, ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16384)],
        )
        slow = pb_grpc.TranslatorStub(slow_ch).Listen(pb.ListenRequest(room="talk", language="fra"))
        try:
            async with http.ws_connect(listen_url(live, "talk", "deu"), protocols=(LISTEN_SUBPROTOCOL,)) as ws:
                assert json.loads((await ws.receive()).data)["type"] == "room.started"
                await wait_for(lambda: sum(1 for _ in rooms.all_listeners()) == 3)
                (not_reading,) = (listener for listener in rooms.all_listeners() if listener.language == "fra")
                speaker = asyncio.create_task(speak(live.stub, speaker_config("talk"), pcm, []))
                events: list[dict[str, Any]] = []

                async def read_grpc() -> grpc.aio.AioRpcError:
                    with pytest.raises(grpc.aio.AioRpcError) as e:
                        async for _ in reader:
                            pass
                    return e.value

                async def read_ws() -> None:
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            events.append(json.loads(msg.data))

                ended, _ = await asyncio.wait_for(asyncio.gather(read_grpc(), read_ws()), 30)
                assert ws.close_code == 1000, ws.close_code
            # the one that read nothing (its queue overflowed: its sending was stuck) was ended too
            await wait_for(lambda: not any(True for _ in rooms.all_listeners()), 15)
            assert not_reading.dropped > 0
            await speaker
        finally:
            slow.cancel()
            await slow_ch.close()
    assert ended.code() == grpc.StatusCode.OUT_OF_RANGE, ended
    assert "rooms.max_listen_s" in (ended.details() or "")
    assert events[-1]["type"] == "room.closed" and events[-1]["reason"] == "max_listen_duration", events[-1]


async def test_listeners_end_when_their_token_is_removed_or_no_longer_covers_the_room(
    test_model_dir: Path, tmp_path: Path
) -> None:
    """A gRPC listener and a WebSocket listener opened with a token end within a few seconds of the
    token's removal from the tokens file (UNAUTHENTICATED / `room.closed` revoked, close 1008); one
    whose token stays but whose listen= pattern no longer covers the room ends the same way; a
    listener of another token listens on (before: every one listened on)."""
    tokens = tmp_path / "tokens"
    tokens.write_text(TOKENS)
    async with serving(settings_for(test_model_dir, tokens)) as live, aiohttp.ClientSession() as http:
        rooms = registry(live)
        store = live.server.tokens
        assert store is not None

        def listen(token: str, room: str) -> Any:
            return live.stub.Listen(pb.ListenRequest(room=room, language="spa"), metadata=bearer(token))

        grpc_acme, grpc_ears, grpc_other = listen(ACME, "talk-1"), listen(EARS, "talk-1"), listen(OTHER, "talk-1")
        for call in (grpc_acme, grpc_ears, grpc_other):
            assert await first_event(call) == "started"
        headers = {"Authorization": f"Bearer {ACME}"}
        async with http.ws_connect(listen_url(live, "talk-1", "fra"), headers=headers) as ws:
            assert json.loads((await ws.receive()).data)["type"] == "room.started"
            before = store.reloads
            # ACME removed; EARS kept but listening to other rooms only
            replace(tokens, f"{OTHER} * tenant=other\n{EARS} listen=other-* tenant=ears\n")
            await reloaded(live, before)

            async def status(call: Any) -> grpc.aio.AioRpcError:
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    while await call.read() is not grpc.aio.EOF:
                        pass
                return e.value

            ended = await asyncio.wait_for(asyncio.gather(status(grpc_acme), status(grpc_ears)), 10)
            closed = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
            last = await asyncio.wait_for(ws.receive(), 10)
        assert all(e.code() == grpc.StatusCode.UNAUTHENTICATED and "revoked" in (e.details() or "") for e in ended)
        assert closed["type"] == "room.closed" and closed["reason"] == "revoked", closed
        assert last.type == aiohttp.WSMsgType.CLOSE and last.data == 1008, last
        # the other token's listener is still there, and only it
        await wait_for(lambda: sum(1 for _ in rooms.all_listeners()) == 1)
        assert not grpc_other.done()
        grpc_other.cancel()
