"""The phone door's Asterisk framings end to end (issue 44), fake carriers from Asterisk's published
protocols (``phone_carriers.py``) calling a real server on the stable translator with real
speech at real time:

- chan_websocket, plain-text control, µ-law (jfk.flac): speech back as whole 160-byte frames
  bracketed by START/STOP_MEDIA_BUFFERING, played when MEDIA_BUFFERING_COMPLETED comes back;
- chan_websocket, JSON control, slin16 (silero_test.wav): whole frames and MARK_MEDIA, played when
  MEDIA_MARK_PROCESSED comes back;
- AudioSocket, slin 8 kHz (jfk.flac): one 320-byte frame per 20 ms slot from the server's pacer,
  speech frames among silence, every mark played once its last frame went out.

The server's own counters (the access line: frames sent, skipped; marks played; ear-voice lag)
are asserted on, never the wall clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import (
    AccessLines,
    FakeAsterisk,
    FakeAudioSocket,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    ulaw_bytes,
)
from tests.support.speech import speech_pcm16
from translate_svc.model.testing.stable import SPEECH_S, StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async with serving(phone_settings(test_model_dir), runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


def runs(items: list[bytes | str]) -> list[int]:
    """Bytes of speech before each mark."""
    out, run = [], 0
    for item in items:
        if isinstance(item, str):
            out.append(run)
            run = 0
        else:
            run += len(item)
    return out


async def test_plain_text_chan_websocket_in_mulaw(phone: LiveServer, shared_audio: Path, access: AccessLines) -> None:
    media = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))
    log = await FakeAsterisk(phone_url(phone.server, "asterisk"), fmt="ulaw").call(media)
    assert log.marks and log.other.count("START_MEDIA_BUFFERING") == len(log.marks)
    assert all(len(i) % 160 == 0 for i in log.items if isinstance(i, bytes)), "not whole 160-byte frames"
    word = int(SPEECH_S * 8000)
    assert all(r > 0 and r % 160 == 0 and r >= word for r in runs(log.items))
    assert set(log.echoed) == set(log.marks)
    await calls_ended(phone.server)
    (line,) = access.of("phone_asterisk")
    assert line["code"] == "OK" and line["marks_played"] == len(log.marks)
    assert line["ear_voice_lag_p50_ms"] > 0


async def test_json_chan_websocket_in_slin16(phone: LiveServer, shared_audio: Path, access: AccessLines) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 12.0, 16000)
    fake = FakeAsterisk(phone_url(phone.server, "asterisk"), fmt="slin16", json_mode=True, frame_bytes=640)
    log = await fake.call(pcm.tobytes())
    assert log.marks and "START_MEDIA_BUFFERING" not in log.other
    assert all(len(i) % 640 == 0 for i in log.items if isinstance(i, bytes)), "not whole 640-byte frames"
    word = int(SPEECH_S * 16000) * 2
    assert all(r >= word for r in runs(log.items))
    speech = np.frombuffer(b"".join(i for i in log.items if isinstance(i, bytes)), "<i2")
    assert np.abs(speech).max() > 1000, "the speech sent is silence"
    assert set(log.echoed) == set(log.marks)
    await calls_ended(phone.server)
    (line,) = access.of("phone_asterisk")
    assert line["code"] == "OK" and line["marks_played"] == len(log.marks)
    assert line["sample_rate_hz"] == 16000 and line["encoding"] == "LINEAR16"


async def test_audiosocket_frames_come_back_one_per_slot(
    phone: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    door = phone.server.phone
    assert door is not None and door.audiosocket is not None
    pcm = speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000)
    log = await FakeAudioSocket("127.0.0.1", door.audiosocket.port).call(pcm.tobytes())
    audio = log.audio()
    assert audio and all(len(p) == 320 for _, p in audio), "every frame is 20 ms of slin 8 kHz"
    await calls_ended(phone.server)
    (line,) = access.of("phone_audiosocket")
    assert line["code"] == "OK"
    # every frame the pacer sent arrived; one frame per 20 ms slot of the server's clock, a slot
    # the loop was too late for skipped rather than sent in a burst (how many: the benchmark's)
    assert line["frames_sent"] == len(audio)
    assert line["frames_sent"] + line["frames_skipped"] == line["frame_slots"]
    # the slots span the call as the carrier's audio did (its own 20 ms frames), within a second
    assert abs(line["frame_slots"] - 50 * line["audio_s"]) <= 50
    spoken = [p for _, p in audio if np.abs(np.frombuffer(p, "<i2")).max() > 0]
    assert len(spoken) == line["frames_speech"] > 0
    assert line["marks_played"] > 0 and line["ear_voice_lag_p50_ms"] > 0
    # silence before the first speech: the pacer plays from the call's first frame on
    first = next(i for i, (_, p) in enumerate(audio) if np.abs(np.frombuffer(p, "<i2")).max() > 0)
    assert first > 25


async def test_audiosocket_calls_share_one_pacer_wake_per_slot(
    phone: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    """Three concurrent AudioSocket calls are paced by one timer of the process (``SlotClock``):
    one wake per 20 ms step serves every call, so the wakes are about one call's slots, not three."""
    door = phone.server.phone
    assert door is not None and door.audiosocket is not None
    clock = door.audiosocket.clock
    wakes0 = clock.wakes
    pcm = speech_pcm16(shared_audio / "jfk.flac", 3.0, 8000).tobytes()
    fakes = [FakeAudioSocket("127.0.0.1", door.audiosocket.port) for _ in range(3)]
    logs = await asyncio.gather(*(f.call(pcm, tail_s=1.0) for f in fakes))
    await calls_ended(phone.server)
    lines = access.of("phone_audiosocket")
    assert len(lines) == 3 and all(line["code"] == "OK" for line in lines)
    assert [line["frames_sent"] for line in sorted(lines, key=lambda x: x["frames_sent"])] == sorted(
        len(log.audio()) for log in logs
    )
    slots = [line["frame_slots"] for line in lines]
    wakes = clock.wakes - wakes0
    assert 0 < wakes < sum(slots) * 0.6, (wakes, slots)
