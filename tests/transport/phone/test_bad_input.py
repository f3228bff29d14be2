"""Bad input at the phone door (issue 44), one test each, against a real server: each ends that
call with a logged reason (its access line's code) and the close its carrier's protocol defines
(a WebSocket close code; Asterisk's ``HANGUP``; AudioSocket's hang-up frame or a reset), while a
good call beside them goes on to its end. The bounds are the ones docs/security.md gives the door,
set small here: ``limits.config_timeout_ms``, ``phone.max_message_bytes``, ``phone.max_held_s``."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import (
    AccessLines,
    FakeAsterisk,
    FakeAudioSocket,
    FakeTwilio,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    socket_frame,
    ulaw_bytes,
)
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

MAX_MESSAGE = 4096


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = phone_settings(test_model_dir, max_message_bytes=MAX_MESSAGE, max_held_s=1.0)
    settings.limits.config_timeout_ms = 500
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


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


async def twilio_exchange(live: LiveServer, *messages: str | bytes) -> tuple[int | None, list[Any]]:
    """Send ``messages`` on a Twilio connection; what came back, and the close code."""
    got: list[Any] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(phone_url(live.server, "twilio")) as ws:
        for m in messages:
            await (ws.send_str(m) if isinstance(m, str) else ws.send_bytes(m))
        async for msg in ws:
            got.append(msg.data)
        return ws.close_code, got


async def only_line(live: LiveServer, access: AccessLines, method: str) -> dict[str, Any]:
    await calls_ended(live.server)
    (line,) = access.of(method)
    return line


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        pytest.param(["{not json"], 1008, id="malformed-json"),
        pytest.param([json.dumps(START), json.dumps({"event": "hello"})], 1008, id="unknown-event"),
        pytest.param(
            [json.dumps(START), json.dumps({"event": "media", "media": {"track": "inbound", "payload": "@@@"}})],
            1008,
            id="payload-not-base64",
        ),
        pytest.param(
            [json.dumps({**START, "start": {**START["start"], "mediaFormat": {"encoding": "audio/x-g729"}}})],
            1008,
            id="codec-not-served",
        ),
        pytest.param([json.dumps(START), "x" * (MAX_MESSAGE + 1)], 1009, id="over-the-size-limit"),
        pytest.param([json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})], 1008, id="no-start"),
    ],
)
async def test_a_twilio_call_with_bad_input_ends_with_its_close_code_and_logged_reason(
    phone: LiveServer, access: AccessLines, messages: list[str], code: int
) -> None:
    close, _ = await twilio_exchange(phone, *messages)
    assert close == code
    line = await only_line(phone, access, "phone_twilio")
    expected = "OUT_OF_RANGE" if "connected" in messages[0] else "INVALID_ARGUMENT"
    assert line["code"] == expected


async def test_an_asterisk_frame_not_of_the_announced_codec_gets_a_hangup(
    phone: LiveServer, access: AccessLines
) -> None:
    got: list[Any] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(phone_url(phone.server, "asterisk")) as ws:
        await ws.send_str("MEDIA_START connection_id:x channel:WebSocket/c/0x1 format:slin optimal_frame_size:320")
        await ws.send_bytes(b"\x00" * 321)  # 16-bit PCM cannot have an odd number of bytes
        async for msg in ws:
            got.append(msg.data)
        assert ws.close_code == 1008
    assert "HANGUP" in got
    assert (await only_line(phone, access, "phone_asterisk"))["code"] == "INVALID_ARGUMENT"


async def test_an_asterisk_queue_that_stays_full_ends_the_call(
    phone: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    fake = FakeAsterisk(phone_url(phone.server, "asterisk"), fmt="ulaw")
    fake.xoff = True  # MEDIA_XOFF after our first speech, and never MEDIA_XON
    await fake.call(ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000)), linger_s=3)
    line = await only_line(phone, access, "phone_asterisk")
    assert line["code"] == "OUT_OF_RANGE"
    assert fake.log.close_code == 1008


async def test_an_audiosocket_frame_over_the_limit_and_an_unknown_kind_hang_up(
    phone: LiveServer, access: AccessLines
) -> None:
    door = phone.server.phone
    assert door is not None and door.audiosocket is not None
    for bad in (socket_frame(0x10, bytes(MAX_MESSAGE + 2)), socket_frame(0x42, b"?")):
        reader, writer = await asyncio.open_connection("127.0.0.1", door.audiosocket.port)
        writer.write(socket_frame(0x01, uuid.uuid4().bytes) + socket_frame(0x10, bytes(320)) + bad)
        rest = await reader.read()  # until the server closes
        writer.close()
        assert rest.endswith(b"\x00\x00\x00"), "the call ends with AudioSocket's hang-up frame"
    await calls_ended(phone.server)
    assert [line["code"] for line in access.of("phone_audiosocket")] == ["INVALID_ARGUMENT"] * 2


async def test_an_audiosocket_peer_that_stops_reading_is_cut_off(phone: LiveServer, access: AccessLines) -> None:
    door = phone.server.phone
    assert door is not None and door.audiosocket is not None
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", door.audiosocket.port))
    fake = FakeAudioSocket("127.0.0.1", door.audiosocket.port)
    fake.stop_reading_after = 0.5
    _reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(socket_frame(0x01, uuid.uuid4().bytes))
    try:
        for _ in range(1500):  # up to 30 s of silence, as a live call sends it
            writer.write(socket_frame(0x10, bytes(320)))
            await writer.drain()
            await asyncio.sleep(0.02)
    except ConnectionError:
        pass  # the server reset the connection
    writer.close()
    line = await only_line(phone, access, "phone_audiosocket")
    assert line["code"] == "OUT_OF_RANGE"


async def test_a_good_call_goes_on_beside_bad_ones(phone: LiveServer, shared_audio: Path, access: AccessLines) -> None:
    good = asyncio.create_task(
        FakeTwilio(phone_url(phone.server, "twilio")).call(
            ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 5.0, 8000)), linger_s=6
        )
    )
    for bad in ("{not json", json.dumps({"event": "hello"})):
        await twilio_exchange(phone, bad)
    log = await good
    await calls_ended(phone.server)
    codes = sorted(line["code"] for line in access.of("phone_twilio"))
    assert codes == ["INVALID_ARGUMENT", "INVALID_ARGUMENT", "OK"]
    assert log.marks and set(log.echoed) == set(log.marks)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("carrier", "messages"),
    [
        pytest.param("twilio", [json.dumps(START), "[" * 4000], id="twilio"),
        pytest.param("asterisk", ['{"event": ' + "[" * 4000], id="asterisk-json"),
    ],
)
async def test_deep_json_gets_the_close_and_its_reason_not_a_traceback(
    phone: LiveServer, access: AccessLines, caplog: pytest.LogCaptureFixture, carrier: str, messages: list[str]
) -> None:
    """JSON nested deeper than the parser goes (issue 57: a traceback and close 1011): bad input,
    answered with close 1008 and the reason in the close frame."""
    caplog.set_level(logging.INFO)
    async with aiohttp.ClientSession() as http, http.ws_connect(phone_url(phone.server, carrier)) as ws:
        for m in messages:
            await ws.send_str(m)
        async with asyncio.timeout(10):
            while (msg := await ws.receive()).type not in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                pass
        assert ws.close_code == 1008
        assert "nests too deep" in (msg.extra or ""), msg
    line = await only_line(phone, access, f"phone_{carrier}")
    assert line["code"] == "INVALID_ARGUMENT"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], "a traceback was logged"
