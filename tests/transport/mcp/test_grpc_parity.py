"""The MCP tools answer what the gRPC door answers for the same input (issue 62): ``translate_text``
against ``TranslateText`` and ``translate_audio`` against ``Translate``, on the test checkpoint (the
model itself, terms and glossary included: a term the MCP door dropped would change its output),
compared field by field: segment ids and spans, transcripts, detected languages, translations, and
each translation's speech sample for sample (the MCP door's WAV, cut at its ``offset_samples``,
against the gRPC door's PCM16), with word timings and another speech rate asked for."""

from __future__ import annotations

import base64
import io
import wave
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import checkpoint_settings, http_client, mcp_url
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

TEXTS = ["the meeting starts at noon", "Ada Lovelace wrote the first program"]
TERMS = [pb.Term(phrase="Ada Lovelace", kind=pb.Term.KEEP), pb.Term(phrase="program", kind=pb.Term.BOOST, weight=4)]
GLOSSARY = [pb.Term(phrase="meeting", kind=pb.Term.TRANSLATE, translation="reunión", target_language="spa")]
MCP_TERMS = {
    "terms": [{"phrase": "Ada Lovelace", "keep": True}, {"phrase": "program", "weight": 4}],
    "glossary": [{"phrase": "meeting", "translation": "reunión", "target_language": "spa"}],
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async with serving(checkpoint_settings(test_model_dir)) as server:
        yield server


def client(live: LiveServer) -> Client:
    return Client(streamable_http_client(mcp_url(live), http_client=http_client(None)))


def tracks(result: types.CallToolResult) -> list[bytes]:
    """The PCM16 frames of each WAV the tool returned, in ``audio_index`` order."""
    out = []
    for block in result.content:
        if isinstance(block, types.AudioContent):
            with wave.open(io.BytesIO(base64.b64decode(block.data))) as w:
                assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
                out.append(w.readframes(w.getnframes()))
    return out


def speech_of(item: dict[str, Any], pcm: list[bytes]) -> bytes | None:
    where = item.get("speech")
    if where is None:
        return None
    start = 2 * where["offset_samples"]
    return pcm[where["audio_index"]][start : start + 2 * where["samples"]]


Words = list[tuple[str, int, int]]


def grpc_translations(msgs: Any) -> list[tuple[str, str, bytes | None, int | None, Words]]:
    return [
        (
            t.target_language,
            t.text,
            t.audio.content if t.HasField("audio") else None,
            t.audio.sample_rate_hz or None,
            [(w.word, w.start_ms, w.end_ms) for w in t.words],
        )
        for t in msgs
    ]


def mcp_translations(
    items: list[dict[str, Any]], pcm: list[bytes]
) -> list[tuple[str, str, bytes | None, int | None, Words]]:
    return [
        (
            t["language"],
            t["text"],
            speech_of(t, pcm),
            t["speech"]["sample_rate_hz"] if "speech" in t else None,
            [(w["word"], w["start_ms"], w["end_ms"]) for w in t.get("words", [])],
        )
        for t in items
    ]


async def test_translate_text_equals_translate_text(live: LiveServer) -> None:
    request = pb.TranslateTextRequest(
        texts=TEXTS,
        source_language="eng",
        target_languages=["spa", "fra"],
        output=pb.OutputOptions(text=True, speech=True, transcript=False, speech_sample_rate_hz=16000),
        terms=[*TERMS, *GLOSSARY],
    )
    expected = await live.stub.TranslateText(request, timeout=120)
    async with client(live) as c:
        got = await c.call_tool(
            "translate_text",
            {"texts": TEXTS, "source_language": "eng", "target_languages": ["spa", "fra"], "speech": True, **MCP_TERMS},
        )
    assert not got.is_error, got.content
    pcm = tracks(got)
    results = got.structured_content["results"]
    assert len(results) == len(expected.results) == len(TEXTS)
    for mine, theirs in zip(results, expected.results, strict=True):
        assert mcp_translations(mine["translations"], pcm) == grpc_translations(theirs.translations)
    assert any(t["speech"]["samples"] for r in results for t in r["translations"])  # speech was compared


async def test_translate_audio_equals_translate(live: LiveServer, shared_audio: Path) -> None:
    clip = (shared_audio / "jfk.flac").read_bytes()
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=clip, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language="eng",
        target_languages=["spa", "deu"],
        output=pb.OutputOptions(
            text=True, speech=True, transcript=True, speech_sample_rate_hz=24000, word_timings=True
        ),
        terms=[*TERMS, *GLOSSARY],
    )
    expected = await live.stub.Translate(request, timeout=300)
    async with client(live) as c:
        got = await c.call_tool(
            "translate_audio",
            {
                "audio_base64": base64.b64encode(clip).decode(),
                "source_language": "eng",
                "target_languages": ["spa", "deu"],
                "speech": True,
                "speech_sample_rate_hz": 24000,
                "word_timings": True,
                **MCP_TERMS,
            },
        )
    assert not got.is_error, got.content
    answer = got.structured_content
    pcm = tracks(got)
    assert answer["audio_duration_ms"] == expected.audio_duration_ms
    assert len(answer["segments"]) == len(expected.segments) > 0
    for mine, theirs in zip(answer["segments"], expected.segments, strict=True):
        assert (mine["segment_id"], mine["start_ms"], mine["end_ms"]) == (
            theirs.segment_id,
            theirs.start_ms,
            theirs.end_ms,
        )
        assert (mine["transcript"]["language"], mine["transcript"]["text"]) == (
            theirs.transcript.language,
            theirs.transcript.text,
        )
        assert [(w["word"], w["start_ms"], w["end_ms"]) for w in mine["transcript"]["words"]] == [
            (w.word, w.start_ms, w.end_ms) for w in theirs.transcript.words
        ]
        assert mcp_translations(mine["translations"], pcm) == grpc_translations(theirs.translations)
        assert mine["error"] is None and theirs.status.code == 0
        # confidence (issue 72): the same values as the gRPC door's (to float32 rounding: batches differ)
        assert mine["transcript"]["avg_logprob"] == pytest.approx(theirs.transcript.avg_logprob, abs=1e-4)
        assert [t["avg_logprob"] for t in mine["translations"]] == pytest.approx(
            [t.avg_logprob for t in theirs.translations], abs=1e-4
        )
        assert [w["avg_logprob"] for w in mine["transcript"]["words"]] == pytest.approx(
            [w.avg_logprob for w in theirs.transcript.words], abs=1e-4
        )
    assert answer["transcript"] == " ".join(s.transcript.text for s in expected.segments if s.transcript.text)
    words = [w for s in expected.segments for w in s.transcript.words]
    assert words and all(t["speech"]["sample_rate_hz"] == 24000 for s in answer["segments"] for t in s["translations"])
