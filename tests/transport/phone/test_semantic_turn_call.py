"""A phone call whose turns end on meaning (issue 102): a server whose default VAD asks the
end-of-turn model (``TRANSLATE_SVC_VAD__EAGERNESS=medium``, the only way a carrier's call, which
names no VAD option, gets it) against one on the silence rule. A fake Twilio (``phone_carriers.py``)
plays jfk.flac as 8 kHz µ-law at real time: "And so, my fellow Americans," then "ask not what your
country can do for you, ask what you can do for your country", said in four phrases (and at 8 kHz
silero also hears a pause between "ask" and "not"). The silence rule cuts it into five segments.
At medium the model holds the pauses after "ask" and after "can do for you," open (9 % and 21 %
complete); "ask not," itself, an imperative that could end there, reads 65 % complete in µ-law
(21-32 % at 16 and 24 kHz: tests/transport/grpc/test_semantic_turns.py), so the call has three:
the first sentence, "ask not," and the rest of the second whole. The caller hears one translated
segment a turn (one ``mark`` each), as many as ``Translate`` cuts from the same audio on that
server. Counts and spans only, never the words of the test checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, serving
from tests.support.phone_carriers import FakeTwilio, calls_ended, phone_settings, phone_url, ulaw_bytes
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]


async def server(test_model_dir: Path, eagerness: str) -> AsyncIterator[LiveServer]:
    settings = phone_settings(test_model_dir)
    settings.vad = dataclasses.replace(settings.vad, eagerness=eagerness)
    async with serving(settings, warmup=False) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def semantic(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async for live in server(test_model_dir, "medium"):
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def silence(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async for live in server(test_model_dir, ""):
        yield live


@pytest.fixture(scope="module")
def jfk_ulaw(shared_audio: Path) -> bytes:
    return ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))


async def spans(live: LiveServer, audio: bytes) -> list[tuple[int, int]]:
    """What ``Translate`` cuts from the same audio and the silence after it, on that server."""
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=audio, format=pb.AudioFormat(encoding=pb.MULAW, sample_rate_hz=8000, channels=1)),
        source_language="eng",
        target_languages=["spa"],
        output=pb.OutputOptions(text=True, speech=False, transcript=False),
    )
    reply = await live.stub.Translate(request, timeout=120)
    return [(s.start_ms, s.end_ms) for s in reply.segments]


async def heard(live: LiveServer, audio: bytes) -> tuple[int, list[tuple[int, int]]]:
    """What ``Translate`` cuts from ``audio``, and the marks a call of it gets (one a translated
    segment): the call stays on (up to 60 s after its audio) until as many marks as ``Translate``
    cut segments came and then nothing for 2 s, so one more would be heard and a late one is
    waited for on a busy machine."""
    cut = await spans(live, audio + b"\xff" * 8000 * 3)
    log = await FakeTwilio(phone_url(live.server, "twilio")).call(audio, quiet_s=2, linger_s=60, marks=len(cut))
    await calls_ended(live.server)
    assert log.speech_bytes > 0
    return len(log.marks), cut


async def test_a_call_on_the_semantic_rule_hears_a_mid_sentence_pause_held(
    semantic: LiveServer, jfk_ulaw: bytes
) -> None:
    marks, cut = await heard(semantic, jfk_ulaw)
    # the first sentence; "ask not,"; then one segment from "what" (5.38 s) to "country" (10.56 s)
    assert [round(a / 1000, 1) for a, _ in cut] == [0.3, 3.3, 5.4] and cut[-1][1] > 10400, cut
    assert marks == 3


async def test_a_call_on_the_silence_rule_hears_each_phrase_alone(silence: LiveServer, jfk_ulaw: bytes) -> None:
    marks, cut = await heard(silence, jfk_ulaw)
    assert len(cut) == 5, cut
    assert marks == 5
