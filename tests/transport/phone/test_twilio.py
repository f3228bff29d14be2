"""The phone door's Twilio framing end to end (issue 44): a fake Twilio (``phone_carriers.py``, from
Twilio's published Media Streams messages) calls a real server on the stable translator with
real speech (jfk.flac as 8 kHz µ-law, at real time); the translation comes back as µ-law
``media``, each segment's speech followed by a ``mark``; the server counts a mark as played only
when Twilio echoes it, and reports the ear-voice lag (the access line, the metric) that the carrier
itself saw (``phone_lag.py``)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import (
    AccessLines,
    FakeTwilio,
    access_lines,
    calls_ended,
    phone_settings,
    phone_url,
    ulaw_bytes,
    ulaw_decode,
)
from tests.support.phone_lag import CLOSE_SILENCE_MS, LAG_TOLERANCE_S, carrier_lags, p50_and_max_ms, segment_ends
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.model.testing.stable import SPEECH_S, StableTranslator

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

#: the stable translator speaks SPEECH_S of tone per word: at 8 kHz µ-law, this many bytes
WORD_BYTES = int(SPEECH_S * 8000)


@pytest.fixture
def access() -> Iterator[AccessLines]:
    with access_lines() as lines:
        yield lines


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def phone(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = phone_settings(test_model_dir)
    settings.vad = dataclasses.replace(settings.vad, min_silence_ms=CLOSE_SILENCE_MS)  # phone_lag.py
    async with serving(settings, runner_factory=lambda: StableTranslator(test_model_dir)) as srv:
        yield srv


def url(live: LiveServer, carrier: str = "twilio", query: str = "source=eng&target=spa") -> str:
    return phone_url(live.server, carrier, query)


@pytest.fixture(scope="module")
def jfk_ulaw(shared_audio: Path) -> bytes:
    return ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))


async def test_a_twilio_call_hears_its_translation_in_mulaw_with_each_mark_echoed_after_its_audio(
    phone: LiveServer, jfk_ulaw: bytes, access: AccessLines
) -> None:
    """The ear-voice lag the server reports (the access line's p50 and max, the metric's sum) is
    the one the carrier saw on its own clock: from sending the frame that reached each segment's
    end to sending back the segment's mark once its translation had played (Twilio's mark
    semantics), each mark within ``LAG_TOLERANCE_S`` (100 ms: what separates the two is one
    message delivery at each end, while a lag counted from the wrong moment is off by 200 ms or
    more; phone_lag.py says why)."""
    lag_sum0, lag_count0 = lag_metric("twilio")
    log = await FakeTwilio(url(phone)).call(jfk_ulaw)
    marks = log.marks
    assert marks, "no segment's speech was followed by a mark"
    assert log.speech_bytes > 0
    # each mark follows its segment's speech: whole words of the stable translator's tone, as µ-law at 8 kHz
    run = 0
    for item in log.items:
        if isinstance(item, str):
            assert run > 0 and run % WORD_BYTES == 0, f"mark {item} after {run} bytes of speech"
            run = 0
        else:
            run += len(item)
    speech = ulaw_decode(b"".join(i for i in log.items if isinstance(i, bytes)))
    assert np.sqrt(np.mean(speech**2)) > 0.01, "the speech played is silence"
    # the carrier echoed every mark once its audio had played; the server counted each echo
    assert set(log.echoed) == set(marks)
    await calls_ended(phone.server)
    (line,) = access.of("phone_twilio")
    assert line["code"] == "OK" and line["carrier"] == "twilio"
    assert line["marks_played"] == len(marks)
    # where each segment's speech ended: the server's own spans of the same audio and silence
    ends = await segment_ends(phone.stub, jfk_ulaw + b"\xff" * 8000 * 3, pb.MULAW, 8000, "eng", "spa")
    seen = carrier_lags(log, ends)
    p50, worst = p50_and_max_ms(seen)
    tolerance_ms = 1000 * LAG_TOLERANCE_S
    assert abs(line["ear_voice_lag_p50_ms"] - p50) <= tolerance_ms, ("p50", line["ear_voice_lag_p50_ms"], p50)
    assert abs(line["ear_voice_lag_max_ms"] - worst) <= tolerance_ms, ("max", line["ear_voice_lag_max_ms"], worst)
    lag_sum, lag_count = lag_metric("twilio")
    assert lag_count - lag_count0 == len(marks)
    assert abs((lag_sum - lag_sum0) - sum(seen)) <= LAG_TOLERANCE_S * len(marks), (lag_sum - lag_sum0, sum(seen))
    assert line["segments_total"] >= len(marks)
    assert log.close_code == 1000


def lag_metric(carrier: str) -> tuple[float, float]:
    """The server's ear-voice lag histogram for ``carrier`` (this process's registry): its sum
    (seconds) and count."""
    labels = {"carrier": carrier}
    name = "translate_svc_phone_ear_voice_lag_seconds"
    total = REGISTRY.get_sample_value(name + "_sum", labels) or 0.0
    count = REGISTRY.get_sample_value(name + "_count", labels) or 0.0
    return total, count


async def test_two_legs_of_one_call_hear_each_other_translated_never_themselves(
    phone: LiveServer, shared_audio: Path, access: AccessLines
) -> None:
    a_audio = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 6.0, 8000))
    b_audio = ulaw_bytes(speech_pcm16(shared_audio / "silero_test.wav", 6.0, 8000))
    leg_a = FakeTwilio(url(phone, query="source=eng&target=spa"), custom={"call": "call-1"})
    leg_b = FakeTwilio(url(phone, query="source=spa&target=eng"), custom={"call": "call-1"})
    log_a, log_b = await asyncio.gather(leg_a.call(a_audio), leg_b.call(b_audio))
    await calls_ended(phone.server)
    lines = {line["call_id"]: line for line in access.of("phone_twilio")}
    assert len(lines) == 2
    line_a, line_b = sorted(lines.values(), key=lambda line: line["targets"] != "spa")
    assert line_a["targets"] == "spa" and line_b["targets"] == "eng"
    # each leg's marks were played on the other leg's carrier, and only there
    assert line_a["marks_played"] == len(log_b.marks) > 0
    assert line_b["marks_played"] == len(log_a.marks) > 0
    assert set(log_a.echoed) == set(log_a.marks) and set(log_b.echoed) == set(log_b.marks)
    # both legs' streams ran on their own: their own segments and timelines
    assert line_a["segments_total"] >= len(log_b.marks) and line_b["segments_total"] >= len(log_a.marks)
    assert line_a["audio_s"] >= 6.0 and line_b["audio_s"] >= 6.0
