"""Twilio's request signature at the phone door (issue 44): with ``phone.twilio_auth_token`` set, a
connection whose ``X-Twilio-Signature`` is not Twilio's (base64 HMAC-SHA1 of the URL it dialled,
keyed by the account's auth token, as Twilio's "Webhooks security" page describes) is refused
before the upgrade; a signed one is let in without a token (Twilio sends none), and a tokens
file still guards every other carrier. The signature covers the URL alone and has no timestamp, so
a signed connection replays (issue 57): whom a signed call meets (its room, participant, two-party
call) comes from the signed URL only, never from the unsigned ``start`` message's
``customParameters``. Twilio drops a Stream url's query string, so the URL's path carries them
(``/v1/phone/twilio/call=c1``)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import (
    AccessLines,
    FakeTwilio,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    ulaw_bytes,
)
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]

AUTH_TOKEN = "twilio-account-auth-token"


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def signed(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text("good-token stream\n")
    settings = phone_settings(test_model_dir, twilio_auth_token=AUTH_TOKEN)
    settings.auth.tokens_file = tokens
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


def signature(url: str) -> str:
    return base64.b64encode(hmac.new(AUTH_TOKEN.encode(), url.encode(), hashlib.sha1).digest()).decode()


async def handshake(url: str, headers: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as e:
            return e.status


async def test_only_a_twilio_signed_connection_is_let_in(signed: LiveServer) -> None:
    url = phone_url(signed.server, "twilio", "")
    dialled = url.removesuffix("?")
    assert await handshake(url, {}) == 403
    assert await handshake(url, {"X-Twilio-Signature": signature(dialled + "x")}) == 403
    assert await handshake(url, {"X-Twilio-Signature": signature(dialled)}) == 101


async def test_a_path_segment_that_is_not_a_call_parameter_is_refused_before_the_upgrade(signed: LiveServer) -> None:
    base = phone_url(signed.server, "twilio", "").removesuffix("?")
    too_many = "/" + "/".join(f"p{k}=v" for k in range(12))
    for path in (
        "/evil",
        "/token=x",
        "/call=a/call=b",
        "/call=a/call=b/room=c/room=d/source=e/target=f/participant=g/x_room=h",
        too_many,
    ):
        url = base + path
        assert await handshake(url, {"X-Twilio-Signature": signature(url)}) == 400, path


async def test_other_carriers_still_need_a_token(signed: LiveServer) -> None:
    assert await handshake(phone_url(signed.server, "asterisk"), {}) == 401
    assert await handshake(phone_url(signed.server, "asterisk", "token=nope"), {}) == 401
    assert await handshake(phone_url(signed.server, "asterisk", "token=good-token"), {}) == 101
    assert await handshake(phone_url(signed.server, "asterisk"), {"Authorization": "Bearer good-token"}) == 101


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def capped(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """A signed call is tenant ``default``'s, which the tokens file caps at one stream."""
    tokens = tmp_path_factory.mktemp("capped") / "tokens"
    tokens.write_text("good-token stream tenant=default streams=1\n")
    settings = phone_settings(test_model_dir, twilio_auth_token=AUTH_TOKEN)
    settings.auth.tokens_file = tokens
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


async def test_a_signed_call_is_held_to_the_default_tenants_caps(capped: LiveServer) -> None:
    """(Issue 57: a ``tenant=default`` line's caps were never applied to signed calls.)"""
    url = phone_url(capped.server, "twilio", "")
    headers = {"X-Twilio-Signature": signature(url.removesuffix("?"))}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as first:
        assert await handshake(url, headers) == 429, "a second signed call beside the first was let in"
        await first.close()


@pytest.mark.parametrize("custom", [{"call": "support-42"}, {"room": "boardroom", "participant": "ceo"}])
async def test_a_replayed_signed_url_cannot_choose_whom_the_call_meets(
    signed: LiveServer, shared_audio: Path, access: AccessLines, custom: dict[str, str]
) -> None:
    """A connection replaying a captured signed URL and signature (the URL names no call and no
    room) that asks for one in its unsigned start message is refused: close 1008, the reason said."""
    url = phone_url(signed.server, "twilio", "")
    leg = FakeTwilio(url, custom=custom, headers={"X-Twilio-Signature": signature(url.removesuffix("?"))})
    log = await leg.call(ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 1.0, 8000)), linger_s=1)
    assert log.close_code == 1008, "a start message chose whom a signed call meets"
    await calls_ended(signed.server)
    (line,) = access.of("phone_twilio")
    assert line["code"] == "INVALID_ARGUMENT"


async def test_a_signed_url_names_the_two_party_call_in_its_path(
    signed: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    """What ``phone-config twilio --call`` prints: the call id in the Stream url's path (signed), the
    languages as <Parameter>s; both legs join and hear each other's translation."""
    base = phone_url(signed.server, "twilio", "").removesuffix("?")
    url = base + "/call=pair-1"
    headers = {"X-Twilio-Signature": signature(url)}
    leg_a = FakeTwilio(url, custom={"source": "eng", "target": "spa", "call": "pair-1"}, headers=headers)
    leg_b = FakeTwilio(url, custom={"source": "spa", "target": "eng"}, headers=headers)
    log_a, log_b = await asyncio.gather(
        leg_a.call(ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 5.0, 8000))),
        leg_b.call(ulaw_bytes(speech_pcm16(shared_audio / "silero_test.wav", 5.0, 8000))),
    )
    assert log_a.close_code == log_b.close_code == 1000
    assert log_a.marks and log_b.marks, "the two legs did not hear each other"
    await calls_ended(signed.server)
