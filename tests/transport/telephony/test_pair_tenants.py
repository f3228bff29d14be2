"""Two-party calls pair within a tenant only (issue 57, the review's high finding): a leg whose
token is another tenant's, naming the same ``call`` id as a live call (call ids are constants in
TwiML and dialplans), meets nothing of that call. The attack, scaled down, on a real server with
two tenants: tenant A's caller speaks (jfk.flac, 8 kHz µ-law, at real time); tenant B's leg names
the same call id and speaks too. B hears nothing of A's call (no media, no mark), A's caller hears
nothing B says, and A's real second leg still joins and hears the caller's translation. The legs
are the fake Twilio of ``phone_carriers.py`` (Twilio's published Media Streams messages), each its
own WebSocket, as a carrier opens them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

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

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

TOKEN_A, TOKEN_B = "tenant-a-phone-token", "tenant-b-phone-token"
CALL = "support-42"
#: µ-law silence, one second
SILENCE_S = b"\xff" * 8000


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN_A} stream tenant=acme\n{TOKEN_B} stream tenant=rival\n")
    settings = phone_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


def leg(live: LiveServer, token: str, query: str) -> FakeTwilio:
    return FakeTwilio(
        phone_url(live.server, "twilio", query), custom={"call": CALL}, headers={"Authorization": f"Bearer {token}"}
    )


async def test_another_tenants_leg_naming_the_same_call_meets_nothing_of_it(
    phone: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    caller_audio = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))
    other_voice = ulaw_bytes(speech_pcm16(shared_audio / "silero_test.wav", 4.0, 8000))
    caller = leg(phone, TOKEN_A, "source=eng&target=spa")
    foreign = leg(phone, TOKEN_B, "source=spa&target=eng")
    calling = asyncio.create_task(caller.call(caller_audio))
    # the foreign leg speaks 4 s, then stays on the line (silence) while the real second leg joins
    squatting = asyncio.create_task(foreign.call(other_voice + SILENCE_S * 14, linger_s=0))
    await asyncio.sleep(5.0)  # the foreign leg has said all it says; the caller is 5 s into its speech
    heard_before_the_second_leg = list(caller.log.items)
    second = leg(phone, TOKEN_A, "source=spa&target=eng")
    second_log = await second.call(other_voice)
    caller_log, foreign_log = await asyncio.gather(calling, squatting)
    await calls_ended(phone.server)

    # the foreign leg got nothing of the call: neither the caller's voice nor its translation
    assert foreign_log.items == [] and foreign_log.other == [], "another tenant's leg heard the call"
    assert foreign_log.close_code == 1000  # what a leg alone on an unused call id sees
    # the caller heard nothing of what the foreign leg said
    assert heard_before_the_second_leg == [], "the caller heard another tenant's leg"
    # the real second leg joined and heard the caller's translation (each segment's speech, then a mark)
    assert second_log.close_code == 1000, "the real second leg was refused"
    assert second_log.marks and second_log.speech_bytes > 0
    assert caller_log.marks, "the caller did not hear the second leg's translation"
    lines = access.of("phone_twilio")
    assert sorted(line["code"] for line in lines) == ["OK"] * 3
    (foreign_line,) = [line for line in lines if line["tenant"] == "rival"]
    assert foreign_line["marks_played"] == 0, "the foreign leg's speech was played into the call"
