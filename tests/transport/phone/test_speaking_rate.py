"""A phone call's speaking rate (issue 90 item 1: "phone and SIP calls (per call)"): the call
parameter ``speed`` (the URL's query and Twilio's ``customParameters`` here; the URL's path,
Asterisk's ``TRANSLATE_SPEED`` and SIP's ``X-Translate-Speed`` reach the same ``call_setup``), and
``phone.speed`` for a call that names none. A fake Twilio (``phone_carriers.py``, from Twilio's
published Media Streams messages) calls a real server on the test checkpoint whose ``phone.speed``
is 1.5 twice with the same speech, once asking ``speed=1`` in its URL and once naming no rate: each
segment's speech (the µ-law between two marks) of the second is about 1/1.5 as long. A rate outside
0.5..2.0 ends the call with close 1008 whose reason names the parameter and the range."""

from __future__ import annotations

import asyncio
import json
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

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

#: segment mode: each segment's whole speech, then its mark
QUERY = "source=eng&target=spa&simultaneous=0"
#: one vocoder frame (20 ms of model audio) as 8 kHz µ-law bytes
FRAME = 160


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = phone_settings(test_model_dir, speed=1.5)  # a call that names no rate: 1.5
    async with serving(settings) as srv:  # the test checkpoint, not a fake
        yield srv


@pytest.fixture(scope="module")
def jfk_ulaw(shared_audio: Path) -> bytes:
    return ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))


def runs(items: list[bytes | str]) -> list[int]:
    """The speech bytes before each mark: one segment's speech each."""
    out, run = [], 0
    for item in items:
        if isinstance(item, str):
            out.append(run)
            run = 0
        else:
            run += len(item)
    return out


async def test_a_call_at_phone_speed_1_5_hears_each_segment_in_two_thirds_of_the_time_of_one_at_speed_1(
    phone: LiveServer, jfk_ulaw: bytes, access: AccessLines
) -> None:
    own = await FakeTwilio(phone_url(phone.server, "twilio", QUERY + "&speed=1")).call(jfk_ulaw)
    fast = await FakeTwilio(phone_url(phone.server, "twilio", QUERY)).call(jfk_ulaw)
    await calls_ended(phone.server)
    assert [line["code"] for line in access.of("phone_twilio")] == ["OK", "OK"]
    at_one, got = runs(own.items), runs(fast.items)
    assert len(at_one) == len(got) >= 3 and all(at_one), (at_one, got)  # the same segments, each spoken
    for n, (one, seen) in enumerate(zip(at_one, got, strict=True)):
        want = one / 1.5  # within two vocoder frames, a carrier frame of padding and 5 %
        assert abs(seen - want) <= 3 * FRAME + 0.05 * want, f"segment {n}: {seen} bytes at 1.5, {one} at 1"


START = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": "MZ1",
    "start": {
        "streamSid": "MZ1",
        "callSid": "CA1",
        "tracks": ["inbound"],
        "customParameters": {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}


@pytest.mark.parametrize(
    ("query", "custom"),
    [
        pytest.param(QUERY + "&speed=3", {}, id="query-over"),
        pytest.param(QUERY, {"speed": "0.25"}, id="custom-parameter-under"),
        pytest.param(QUERY, {"speed": "fast"}, id="not-a-number"),
    ],
)
async def test_a_rate_outside_half_to_double_ends_the_call_naming_the_parameter(
    phone: LiveServer, access: AccessLines, query: str, custom: dict[str, str]
) -> None:
    start = {**START, "start": {**START["start"], "customParameters": custom}}
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(phone_url(phone.server, "twilio", query)) as ws,
    ):
        await ws.send_str(json.dumps(start))
        async with asyncio.timeout(10):
            while (msg := await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                pass
        assert ws.close_code == 1008
    reason = msg.extra or ""
    assert "`speed`" in reason and "0.5" in reason and "2.0" in reason, reason
    await calls_ended(phone.server)
    (line,) = access.of("phone_twilio")
    assert line["code"] == "INVALID_ARGUMENT"
