"""A phone call shared by two people speaking two languages: the call parameter ``conversation``
(``eng,spa``) in place of ``source`` and ``target``. A fake Twilio (``phone_carriers.py``) calls a
real server on the test checkpoint whose test identifier picks Spanish wherever it is a candidate,
with real speech (jfk.flac as 8 kHz µ-law, at real time): every segment is identified as Spanish,
so what the caller hears is each segment's translation into the other party's language, English:
exactly the English speech a ``Translate`` call of the same conversation makes of the same audio.

The SIP door reads the same parameter (``X-Translate-Conversation``) into the same setup
(``telephony/call.py``: ``call_setup``, ``stream_config``), which tests/transport/telephony/
test_call_conversation.py holds; the
media path after the setup is the phone door's, exercised here end to end. A conversation beside a
``target`` is the core's refusal (``check_conversation``), naming both; the door only splits the
comma list.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
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
from tests.support.phone_lag import CLOSE_SILENCE_MS
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.audio.g711 import decode_mulaw

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    from translate_svc.app import build_lid_test_checkpoint

    settings = phone_settings(test_model_dir)
    settings.vad = dataclasses.replace(settings.vad, min_silence_ms=CLOSE_SILENCE_MS)
    settings.model.lid_path = build_lid_test_checkpoint(tmp_path_factory.mktemp("lid") / "spa", bias="spa")
    async with serving(settings, warmup=False) as srv:
        yield srv


@pytest.fixture(scope="module")
def jfk_ulaw(shared_audio: Path) -> bytes:
    return ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))


async def reference(live: LiveServer, audio: bytes, voices: dict[str, int] | None = None) -> pb.TranslateResponse:
    """The same audio (and the silence after it the call sends) through ``Translate`` as the same
    conversation (its parties' ``voices``), speech at the call's rate."""
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=audio, format=pb.AudioFormat(encoding=pb.MULAW, sample_rate_hz=8000, channels=1)),
        conversation=pb.Conversation(languages=["eng", "spa"], voices=voices or {}),
        output=pb.OutputOptions(text=True, speech=True, transcript=False, speech_sample_rate_hz=8000),
    )
    return await live.stub.Translate(request, timeout=120)


async def test_the_caller_hears_each_segment_in_the_other_partys_language(
    phone: LiveServer, jfk_ulaw: bytes, access: AccessLines
) -> None:
    # quiet_s: the last segment's speech may come late on a busy machine; the call waits for it
    # the English party hears voice 3 (``voices``: keyed by the language the party hears)
    log = await FakeTwilio(phone_url(phone.server, "twilio", "conversation=eng,spa&voices=eng:3")).call(
        jfk_ulaw, quiet_s=6, linger_s=40
    )
    await calls_ended(phone.server)
    (line,) = access.of("phone_twilio")
    assert line["code"] == "OK", line
    sent = jfk_ulaw + b"\xff" * 8000 * 3
    ref = await reference(phone, sent, {"eng": 3})
    assert ref.segments and all(s.detected_language.language == "spa" for s in ref.segments)
    assert all([t.target_language for t in s.translations] == ["eng"] for s in ref.segments)
    # one mark per segment, each after that segment's English speech (µ-law: a byte a sample)
    assert len(log.marks) == len(ref.segments)
    english = sum(t.audio.num_samples for s in ref.segments for t in s.translations)
    assert log.speech_bytes == english > 0
    # in voice 3: the call's speech is Translate's in that voice, to µ-law's step, and not voice 0's
    heard = decode_mulaw(b"".join(i for i in log.items if isinstance(i, bytes)))

    def speech(r: pb.TranslateResponse) -> np.ndarray:
        pcm = b"".join(t.audio.content for s in r.segments for t in s.translations)
        return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768

    in_voice, default = speech(ref), speech(await reference(phone, sent))
    assert len(in_voice) == len(default) == len(heard)
    assert np.abs(heard - in_voice).max() < 0.05 < np.abs(heard - default).max()


async def refused(
    phone: LiveServer, query: str, audio: bytes, access: AccessLines, caplog: pytest.LogCaptureFixture
) -> str:
    """A call of ``query`` that the server refuses: closed with 1008, nothing spoken, its access line
    INVALID_ARGUMENT; the one refusal it logs."""
    caplog.set_level(logging.INFO, logger="translate_svc.transport.telephony.loop")
    log = await FakeTwilio(phone_url(phone.server, "twilio", query)).call(audio, linger_s=2)
    await calls_ended(phone.server)
    assert log.close_code == 1008 and not log.speech_bytes
    (line,) = access.of("phone_twilio")
    assert line["code"] == "INVALID_ARGUMENT", line
    (message,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("phone call refused")]
    return message


async def test_a_conversation_beside_a_target_is_refused_naming_both(
    phone: LiveServer, jfk_ulaw: bytes, access: AccessLines, caplog: pytest.LogCaptureFixture
) -> None:
    message = await refused(phone, "conversation=eng,spa&target=fra", jfk_ulaw[:8000], access, caplog)
    assert "conversation and target_languages are both set" in message, message


async def test_each_partys_voice_reaches_the_core_and_one_the_model_lacks_is_refused(
    phone: LiveServer, jfk_ulaw: bytes, access: AccessLines, caplog: pytest.LogCaptureFixture
) -> None:
    message = await refused(phone, "conversation=eng,spa&voices=eng:9999", jfk_ulaw[:8000], access, caplog)
    assert "conversation.voices[eng] is 9999" in message, message
