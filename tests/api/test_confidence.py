"""Confidence through the gRPC door (issue 72): ``avg_logprob`` on each segment's transcript, each
translation and each timed word, on a real server with the real client (the Python SDK) and the
raw stub. On the random test checkpoint the values are noise: the test holds their structure
(present, finite, <= 0), that the SDK hands them over as the wire has them, and that they follow
the input (different speech, different values)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.support.live_server import LiveServer
from tests.support.raw import raw_request
from tests.support.speech import shared_pcm
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client import AsyncTranslateClient

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]


def ok(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value <= 0.0


async def test_segments_translations_and_words_carry_their_avg_logprob(live: LiveServer, shared_audio: Path) -> None:
    content, _ = shared_pcm(shared_audio, "jfk.flac")
    request = raw_request(
        content,
        pb.LINEAR16,
        source_language="eng",
        target_languages=["spa", "fra"],
        output=pb.OutputOptions(word_timings=True),
    )
    resp = await live.stub.Translate(request)
    assert len(resp.segments) >= 3
    transcripts = []
    for seg in resp.segments:
        assert seg.transcript.HasField("avg_logprob") and ok(seg.transcript.avg_logprob)
        transcripts.append(seg.transcript.avg_logprob)
        for t in seg.translations:
            assert t.HasField("avg_logprob") and ok(t.avg_logprob)
            assert all(w.HasField("avg_logprob") and ok(w.avg_logprob) for w in t.words)
        assert all(w.HasField("avg_logprob") and ok(w.avg_logprob) for w in seg.transcript.words)
    assert len(set(transcripts)) == len(transcripts)  # each segment its own, not a constant
    words = [w.avg_logprob for seg in resp.segments for w in seg.transcript.words]
    assert len(words) > 1 and len(set(words)) > 1

    async with AsyncTranslateClient(f"127.0.0.1:{live.port}") as client:
        got = await client.translate(
            content, targets=["spa", "fra"], source="eng", encoding="linear16", sample_rate=16000, word_timings=True
        )
        other, _ = shared_pcm(shared_audio, "silero_test.wav")
        second = await client.translate(other, targets="spa", source="eng", encoding="linear16", sample_rate=16000)
    assert [s.transcript_avg_logprob for s in got.segments] == pytest.approx(transcripts, abs=1e-4)
    for s, wire in zip(got.segments, resp.segments, strict=True):
        assert [t.avg_logprob for t in s.translations] == pytest.approx(
            [t.avg_logprob for t in wire.translations], abs=1e-4
        )
        assert [w.avg_logprob for w in s.transcript_words] == pytest.approx(
            [w.avg_logprob for w in wire.transcript.words], abs=1e-4
        )
    # another recording: its own values
    assert second.segments and all(ok(s.transcript_avg_logprob) for s in second.segments)
    assert {s.transcript_avg_logprob for s in second.segments}.isdisjoint(transcripts)
