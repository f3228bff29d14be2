"""Speech without text, through the wire (issue 24, item 5: paths that were implemented but never
went through the wire): output ``text=false, speech=true`` carries the translation's audio and no
translated text, on a stream and on Translate; a real server on loopback whose model is
``FakeRunner``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from google.rpc import code_pb2

from tests.support.fake_runner import FakeRunner
from tests.support.stepped_call import (
    FMT,
    WAIT_S,
    Call,
    assert_ended,
    call_config,
    fake_serving,
    jfk_then_silence,
    samples,
    segments,
    spans_of,
)
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(1)]


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return jfk_then_silence(shared_audio)


async def test_speech_without_text_carries_audio_and_no_translated_text(jfk: np.ndarray) -> None:
    """output text=false, speech=true: StreamStarted's resolved config says so, and each result has
    the translation's audio (and the transcript, still asked for) but no translated text on the
    wire. Translate (the unary call) answers the same way."""
    runner = FakeRunner()
    async with fake_serving(runner) as live:
        call = Call(live.stub, call_config(text=False, speech=True))
        call.send(jfk)
        call.close()
        got = await call.result()
        clip = await live.stub.Translate(
            pb.TranslateRequest(
                audio=pb.AudioInput(content=jfk.astype("<i2").tobytes(), format=FMT),
                source_language="eng",
                target_languages=["spa"],
                output=pb.OutputOptions(text=False, speech=True),
            ),
            timeout=WAIT_S,
        )
    out = got[0].started.config.output
    assert (out.text, out.speech, out.transcript) == (False, True, True)
    assert out.speech_encoding == pb.SPEECH_ENCODING_LINEAR16 and out.speech_sample_rate_hz == 16000
    spans = await spans_of(jfk)
    for segs in (segments(got), list(clip.segments)):
        assert [(s.start_ms, s.end_ms) for s in segs] == spans
        for s in segs:
            assert s.status.code == code_pb2.OK
            (t,) = s.translations
            assert t.target_language == "spa" and t.text == ""
            assert t.audio.num_samples == samples(s) // 2 and len(t.audio.content) == samples(s)
            assert s.transcript.text == f"n={samples(s)}"
    for r in [*got, clip]:
        assert b"spa:" not in r.SerializeToString()  # the fake's translated text never reaches the wire
    assert_ended(got, 4)
