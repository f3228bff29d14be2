"""AudioSocket's own bounds (issue 57, the review's medium finding): AudioSocket carries no
credentials, so its calls are the tenant ``phone.audiosocket_tenant``'s, whose caps and audio
quota in the tokens file apply; at most ``phone.audiosocket_max_calls`` of them hold streams at
once, whoever connects; a call whose peer stops sending audio frames ends after
``phone.audiosocket_input_timeout_s``; and a flood of refused connections writes a bounded log.
Each is the review's attack scaled down, against a real server on loopback. The peers are
Asterisk's AudioSocket as its published page defines it (``phone_carriers.py``: ``FakeAudioSocket``
and ``socket_frame``; https://docs.asterisk.org/Configuration/Channel-Drivers/AudioSocket/): a
3-byte header (kind, big-endian length), ``0x01`` the call's UUID, ``0x10`` 20 ms of slin 8 kHz,
``0x00`` hang-up, ``0xff`` an error."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import (
    AccessLines,
    FakeAudioSocket,
    FakeTwilio,
    SocketLog,
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

KIND_ERROR = 0xFF
#: 20 ms of silence, slin 8 kHz
SILENT_FRAME = bytes(320)
WEB_TOKEN = "web-tenant-token"


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def capped(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """AudioSocket calls are tenant ``pbx``'s, capped in the tokens file at one stream and 2 s of audio
    a minute."""
    tokens = tmp_path_factory.mktemp("capped") / "tokens"
    tokens.write_text(f"pbx-token stream tenant=pbx streams=1 audio_seconds_per_minute=2\n{WEB_TOKEN} stream\n")
    settings = phone_settings(test_model_dir, audiosocket_tenant="pbx")
    settings.auth.tokens_file = tokens
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def small(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    """A node of 8 streams; AudioSocket (an uncapped tenant) may hold 4 of them; a peer silent for
    1 s is ended."""
    tokens = tmp_path_factory.mktemp("small") / "tokens"
    tokens.write_text(f"{WEB_TOKEN} stream tenant=web\n")
    settings = phone_settings(test_model_dir, audiosocket_max_calls=4, audiosocket_input_timeout_s=1.0)
    settings.auth.tokens_file = tokens
    settings.limits.max_streams = 8
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


def audiosocket_port(live: LiveServer) -> int:
    door = live.server.phone
    assert door is not None and door.audiosocket is not None
    return int(door.audiosocket.port)


def refused(log: SocketLog) -> bool:
    return any(kind == KIND_ERROR for _, kind, _ in log.frames)


async def first_frame(log: SocketLog) -> None:
    """Until the server sent the call its first frame (a pacer's audio, or a refusal)."""
    async with asyncio.timeout(10):
        while not log.frames:
            log.changed.clear()
            await log.changed.wait()


async def test_the_audiosocket_tenants_caps_and_quota_from_the_tokens_file_apply(
    capped: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    port = audiosocket_port(capped)
    speech = speech_pcm16(shared_audio / "jfk.flac", 6.0, 8000).tobytes()
    first = FakeAudioSocket("127.0.0.1", port)
    calling = asyncio.create_task(first.call(speech, tail_s=1.0))
    await first_frame(first.log)
    assert not refused(first.log)
    # the tenant's streams=1: a second call while the first lives is refused (error frame, hang-up)
    second = FakeAudioSocket("127.0.0.1", port)
    await second.call(SILENT_FRAME * 10, tail_s=0.0)
    assert refused(second.log), "a second call of a tenant capped at streams=1 was served"
    assert second.log.frames[-1][1] == 0x00
    await calling
    await calls_ended(capped.server)
    # 6 s of speech against a budget of 2 audio seconds a minute: the first call ended by its quota
    (line,) = access.of("phone_audiosocket")
    assert line["tenant"] == "pbx"
    assert line["code"] == "RESOURCE_EXHAUSTED", line
    assert line["audio_s"] < 4.5


async def test_silent_audiosocket_calls_cannot_take_other_tenants_streams(
    small: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    """20 AudioSocket connections that send silence, as a muted caller's Asterisk does, on a node of 8
    streams: 4 are served (``phone.audiosocket_max_calls``), 16 refused, and another tenant's phone
    call still gets its stream."""
    port = audiosocket_port(small)
    peers = [FakeAudioSocket("127.0.0.1", port) for _ in range(20)]
    holding = [asyncio.create_task(p.call(b"", tail_s=8.0)) for p in peers]
    for p in peers:
        await first_frame(p.log)
    served = [p for p in peers if not refused(p.log)]
    assert len(served) == 4, f"{len(served)} AudioSocket calls hold streams at once"
    web = FakeTwilio(phone_url(small.server, "twilio"), headers={"Authorization": f"Bearer {WEB_TOKEN}"})
    # served: its speech comes back (a mark after it). Waited for, not timed: a loaded `make test` saw
    # the first result come more than the 2 s of quiet a call waits after its audio
    log = await web.call(ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 3.0, 8000)), linger_s=60, marks=1)
    assert log.close_code == 1000 and log.marks, "another tenant's phone call was not served"
    for task in holding:
        task.cancel()
    await asyncio.gather(*holding, return_exceptions=True)
    await calls_ended(small.server)


async def test_a_call_that_sends_one_frame_then_only_reads_ends_by_the_input_deadline(
    small: LiveServer, access: AccessLines, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="translate_svc.transport.phone")
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", audiosocket_port(small))
    writer.write(socket_frame(0x01, uuid.uuid4().bytes) + socket_frame(0x10, SILENT_FRAME))
    sent_at = loop.time()
    async with asyncio.timeout(8):  # the deadline is 1 s; without it the call lives limits.idle_timeout_s
        rest = await reader.read(-1)  # the pacer's frames, until the server closes
    lived = loop.time() - sent_at
    writer.close()
    assert rest.endswith(socket_frame(0x00)), "the call did not end with AudioSocket's hang-up"
    assert lived < 4.0
    await calls_ended(small.server)
    (line,) = access.of("phone_audiosocket")
    assert line["code"] == "OUT_OF_RANGE"
    assert any("phone.audiosocket_input_timeout_s" in r.getMessage() for r in caplog.records)


async def test_a_flood_of_refused_audiosocket_connections_writes_a_bounded_log(
    small: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With the node's AudioSocket calls and streams held, 60 more connections are each refused (an
    error frame and the hang-up), and the log gets at most the refusal log's burst of lines for them."""
    caplog.set_level(logging.INFO)
    port = audiosocket_port(small)
    holders = [FakeAudioSocket("127.0.0.1", port) for _ in range(8)]  # limits.max_streams
    holding = [asyncio.create_task(p.call(b"", tail_s=8.0)) for p in holders]
    for p in holders:
        await first_frame(p.log)
    caplog.clear()
    answers = []
    for _ in range(60):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(socket_frame(0x01, uuid.uuid4().bytes) + socket_frame(0x10, SILENT_FRAME))
        try:
            async with asyncio.timeout(5):
                answers.append(await reader.read(-1))
        except ConnectionResetError:
            answers.append(b"(reset)")
        writer.close()
    lines = [r for r in caplog.records if "AudioSocket" in r.getMessage() and "refused" in r.getMessage()]
    assert len(lines) <= 10, f"{len(lines)} log lines for 60 refused connections"
    assert all(a.startswith(socket_frame(KIND_ERROR, b"\x04")) for a in answers), "a connection was not refused"
    for task in holding:
        task.cancel()
    await asyncio.gather(*holding, return_exceptions=True)
    await calls_ended(small.server)
