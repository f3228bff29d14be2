"""The phone door's drain and backlog clear on a real server (issue 44), fake carriers from the
carriers' published formats (``phone_carriers.py``) with real speech at real time:

- a drain (``TranslateServer.stop``, what SIGTERM runs) mid-call: the caller hears the translated
  tail -- speech, then its mark, acknowledged by the carrier -- before the socket closes with the
  protocol's close (Twilio: WebSocket close 1012; AudioSocket: the hang-up frame ``0x00``);
- ``phone.max_backlog_s``: a carrier that does not acknowledge its marks holds every second sent
  after the oldest one; past the bound the server sends ``clear``, counts it in the metric and the
  access line; a carrier that acknowledges at once on the same server is never cleared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from tests.support.live_server import serving
from tests.support.phone_carriers import (
    AccessLines,
    CarrierLog,
    FakeAudioSocket,
    FakeTwilio,
    SocketLog,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    ulaw_bytes,
)
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function"), pytest.mark.slow(60)]


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


async def until(log: CarrierLog | SocketLog, check: Callable[[], object], timeout_s: float = 20.0) -> None:
    """Wait for a fake carrier's own record to show ``check()`` (what it received so far)."""
    async with asyncio.timeout(timeout_s):
        while True:
            log.changed.clear()
            if check():
                return
            await log.changed.wait()


async def test_a_drained_twilio_call_hears_its_translated_tail_marked_and_played_before_close_1012(
    test_model_dir: Path, shared_audio: Path, access: AccessLines
) -> None:
    settings = phone_settings(test_model_dir)
    settings.server.drain_s = 1.0
    ulaw = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        fake = FakeTwilio(phone_url(live.server, "twilio"))
        call = asyncio.create_task(fake.call(ulaw, linger_s=20))
        # a segment was played and the next one's words are coming (simultaneous): drain mid-speech
        await until(fake.log, lambda: fake.log.marks and isinstance(fake.log.items[-1], bytes))
        before = len(fake.log.items)
        await live.server.stop(grace=20)  # what SIGTERM runs
        log: CarrierLog = await call
    tail = log.items[before:]
    assert any(isinstance(i, bytes) for i in tail), "no translated speech after the drain began"
    assert isinstance(tail[-1], str), "the tail's speech is not followed by its mark"
    # every mark, the tail's included, was played and echoed before the server closed the socket
    assert set(log.echoed) == set(log.marks)
    assert log.closed_at is not None and all(echo <= log.closed_at for _, echo in log.echoed.values())
    assert log.close_code == 1012
    (line,) = access.of("phone_twilio")
    assert line["code"] == "UNAVAILABLE" and line["marks_played"] == len(log.marks)


async def test_a_drained_audiosocket_call_hears_its_tail_in_paced_frames_then_the_hangup_frame(
    test_model_dir: Path, shared_audio: Path, access: AccessLines
) -> None:
    # segment mode: the drained segment's whole speech is queued at its end, seconds of frames to pace
    settings = phone_settings(test_model_dir, simultaneous=False)
    settings.server.drain_s = 1.0
    pcm = speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000).tobytes()

    def speaking(log: SocketLog) -> int:
        return sum(1 for _, p in log.audio() if np.abs(np.frombuffer(p, "<i2")).max() > 0)

    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        door = live.server.phone
        assert door is not None and door.audiosocket is not None
        fake = FakeAudioSocket("127.0.0.1", door.audiosocket.port)
        call = asyncio.create_task(fake.call(pcm, tail_s=8.0))
        await until(fake.log, lambda: speaking(fake.log) > 0)
        spoken_before = speaking(fake.log)
        await live.server.stop(grace=20)
        log = await call
    assert speaking(log) > spoken_before, "no translated speech after the drain began"
    kinds = [k for _, k, _ in log.frames]
    assert kinds[-1] == 0x00 and kinds.count(0x00) == 1, "the call did not end with one hang-up frame"
    assert all(0x10 == k for k in kinds[:-1])
    (line,) = access.of("phone_audiosocket")
    assert line["code"] == "UNAVAILABLE"
    # every speech frame the pacer sent reached the caller, and every segment's mark was played
    assert line["frames_speech"] == speaking(log) and line["frames_sent"] == len(log.audio())
    assert line["marks_played"] == line["segments_total"] > 0  # the tail segment's mark too


def clears(carrier: str) -> float:
    return REGISTRY.get_sample_value("translate_svc_phone_backlog_clears_total", {"carrier": carrier}) or 0.0


async def test_past_max_backlog_a_carrier_that_does_not_play_its_marks_is_cleared_and_counted(
    test_model_dir: Path, shared_audio: Path, access: AccessLines
) -> None:
    settings = phone_settings(test_model_dir, max_backlog_s=1.0)
    ulaw = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as live:
        slow = FakeTwilio(phone_url(live.server, "twilio"))
        slow.echo_marks = False  # it holds what it is sent (it echoes pending marks on `clear`, as Twilio does)
        prompt = FakeTwilio(phone_url(live.server, "twilio"))
        clears0 = clears("twilio")
        slow_log, prompt_log = await asyncio.gather(slow.call(ulaw), prompt.call(ulaw))
        await calls_ended(live.server)
    assert slow_log.clears >= 1 and prompt_log.clears == 0
    lines = {line["call_id"]: line for line in access.of("phone_twilio")}
    assert len(lines) == 2
    (slow_line,) = [x for x in lines.values() if x.get("backlog_clears")]
    assert slow_line["backlog_clears"] == slow_log.clears
    assert slow_line["backlog_cleared_s"] > 1.0
    assert clears("twilio") - clears0 == slow_log.clears
    # the prompt carrier heard every mark played (nothing of its was cleared)
    assert prompt_log.marks and set(prompt_log.echoed) == set(prompt_log.marks)
