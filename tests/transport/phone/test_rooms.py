"""A phone call that speaks into a room (issues 44 and 47, docs/rooms.md "Speaking from a phone"):
a fake Twilio (``phone_carriers.py``, from Twilio's published Media Streams messages) streams real
speech (silero_test.wav as 8 kHz µ-law) into a real server on the stable translator, its TwiML's
Stream url naming room ``talk-1`` in its path (signed, issue 57); gRPC ``Listen`` listeners in
other languages get the call's segments (the ids the call's own marks carry, the same spans in
every language) while the caller still hears its own translation. A call whose credential may
not publish into the room is refused (close 1008), before any audio is translated. Structure
only: never words."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import (
    AccessLines,
    FakeAsterisk,
    FakeTwilio,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    ulaw_bytes,
)
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model.testing.stable import StableTranslator
from translate_svc.settings import RoomSettings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

AUTH_TOKEN = "twilio-account-auth-token"
TOKENS = (
    "lis listen=talk-*\n"  # a listener
    "pub stream publish=talk-*\n"  # a call (Asterisk) that may speak into talk-*
    "plain stream\n"  # a call with no room option: no room
)


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(TOKENS)
    settings = phone_settings(test_model_dir, twilio_auth_token=AUTH_TOKEN, twilio_rooms=["talk-*"])
    settings.auth.tokens_file = tokens
    settings.rooms = RoomSettings(backlog_s=600.0)
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


def signed(live: LiveServer, path: str = "") -> tuple[str, dict[str, str]]:
    """Twilio's Stream url (it takes no query string; whom the call meets is in its path, which the
    signature covers: ``path``, e.g. ``/room=talk-1``) and the signature Twilio sends with it
    (base64 HMAC-SHA1 of the URL, keyed by the account's auth token: "Webhooks security")."""
    url = phone_url(live.server, "twilio", "").removesuffix("?") + path
    digest = hmac.new(AUTH_TOKEN.encode(), url.encode(), hashlib.sha1).digest()
    return url, {"X-Twilio-Signature": base64.b64encode(digest).decode()}


class Heard:
    def __init__(self, language: str) -> None:
        self.language = language
        self.segments: list[pb.SegmentResult] = []
        self.started = asyncio.Event()


async def listen(live: LiveServer, room: str, heard: Heard) -> None:
    call = live.stub.Listen(
        pb.ListenRequest(room=room, language=heard.language), metadata=(("authorization", "Bearer lis"),)
    )
    try:
        async for ev in call:
            if ev.WhichOneof("event") == "started":
                heard.started.set()
            elif ev.WhichOneof("event") == "segment":
                heard.segments.append(ev.segment)
    except asyncio.CancelledError:
        call.cancel()
        raise


def segment_of(mark: str) -> int:
    found = re.fullmatch(r"seg(\d+)\.\d+", mark)
    assert found, mark
    return int(found.group(1))


async def test_a_twilio_call_speaks_into_a_room_its_listeners_hear_it_in_their_languages(
    phone: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    ulaw = ulaw_bytes(speech_pcm16(shared_audio / "silero_test.wav", 12.0, 8000))
    heard = [Heard("fra"), Heard("deu")]
    tasks = [asyncio.create_task(listen(phone, "talk-1", h)) for h in heard]
    async with asyncio.timeout(30):
        for h in heard:
            await h.started.wait()
    url, headers = signed(phone, "/room=talk-1/participant=caller-1")
    custom = {"source": "eng", "target": "spa"}
    log = await FakeTwilio(url, custom=custom, headers=headers).call(ulaw, speed=4)
    await calls_ended(phone.server)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    # the caller still hears its own translation (spa), each segment's speech then its mark
    assert log.close_code == 1000 and log.speech_bytes > 0 and log.marks
    (line,) = access.of("phone_twilio")
    assert line["code"] == "OK" and line["segments_total"] >= 2
    spoken = {segment_of(m) for m in log.marks}
    streamed_ms = len(ulaw) / 8  # 8000 µ-law bytes a second
    fra, deu = heard
    for h in heard:
        ids = [s.segment_id for s in h.segments]
        # every segment of the call, in order, with the call stream's ids (its marks name them)
        assert ids == sorted(ids) and len(ids) == line["segments_total"] and spoken <= set(ids), (ids, spoken)
        for s in h.segments:
            assert [t.target_language for t in s.translations] == [h.language], s
            assert 0 <= s.start_ms < s.end_ms <= streamed_ms + 12_000  # (silence follows the speech)
            assert s.transcript  # a room speaker's call decodes its transcript for the listeners
    # the same segments and spans in every language: the call's own
    assert [(s.segment_id, s.start_ms, s.end_ms) for s in fra.segments] == [
        (s.segment_id, s.start_ms, s.end_ms) for s in deu.segments
    ]


async def test_a_call_that_may_not_publish_into_the_room_is_refused(
    phone: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    ulaw = ulaw_bytes(speech_pcm16(shared_audio / "silero_test.wav", 1.0, 8000))
    url, headers = signed(phone, "/room=lobby")
    # Twilio's signed calls may speak into phone.twilio_rooms (talk-*) only
    log = await FakeTwilio(url, headers=headers).call(ulaw, linger_s=1.0, quiet_s=0.5)
    assert log.close_code == 1008 and log.speech_bytes == 0
    # a token's publish= patterns: "plain" has none; "pub" covers talk-* only
    for query in ("token=plain&room=talk-2", "token=pub&room=lobby"):
        carrier = FakeAsterisk(phone_url(phone.server, "asterisk", f"source=eng&target=spa&{query}"))
        alog = await carrier.call(ulaw, linger_s=1.0, quiet_s=0.5)
        assert carrier.hangups == 1 and alog.speech_bytes == 0, query
    await calls_ended(phone.server)
    codes = [line["code"] for line in access.of("phone_twilio") + access.of("phone_asterisk")]
    assert codes == ["PERMISSION_DENIED"] * 3, codes
    rooms = phone.server.app.sessions.rooms.rooms
    assert not {("default", "lobby"), ("default", "talk-2")} & set(rooms)  # nothing was opened for them


async def test_a_room_call_that_asks_for_simultaneous_mode_is_refused_saying_why(
    phone: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    ulaw = ulaw_bytes(speech_pcm16(shared_audio / "silero_test.wav", 1.0, 8000))
    url, headers = signed(phone, "/room=talk-3")
    custom = {"simultaneous": "1"}
    log = await FakeTwilio(url, custom=custom, headers=headers).call(ulaw, linger_s=1.0, quiet_s=0.5)
    assert log.close_code == 1008 and log.speech_bytes == 0
    await calls_ended(phone.server)
    (line,) = access.of("phone_twilio")
    assert line["code"] == "INVALID_ARGUMENT", line
