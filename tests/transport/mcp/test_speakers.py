"""MCP ``translate_audio`` takes ``speakers`` as docs/agents.md and the CHANGELOG say (issue 101):
with the ``mcp`` SDK's client against a real server on loopback, the issue 91 two-voice mix (truth
AABBBAABB) comes back with each segment (and its words) labelled by its voice, over the whole clip,
at the true count and at an upper bound; without ``speakers`` no segment carries a label; a bound
out of 0..8 is a tool error naming ``speakers``. Before: the tool refused ``speakers`` as an
unknown argument. (A fake model: the labels are the speaker encoder's, not the model's.)"""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import soundfile as sf
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.mcp_door import http_client, mcp_url
from tests.support.speaker_mixes import Mix, issue_mix, phrases, segment_accuracy, shown
from tests.support.stepped_call import NO_MODEL

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live() -> AsyncIterator[LiveServer]:
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.mcp.enabled = True
    async with serving(settings, warmup=False, runner_factory=FakeRunner) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def mix(shared_audio: Path) -> Mix:
    return issue_mix(await phrases(shared_audio))


async def _translate(live: LiveServer, mix: Mix, **extra: Any) -> Any:
    buf = io.BytesIO()
    sf.write(buf, mix.samples, 16000, format="WAV", subtype="PCM_16")
    args = {"audio_base64": base64.b64encode(buf.getvalue()).decode(), "source_language": "eng", **extra}
    async with Client(streamable_http_client(mcp_url(live), http_client=http_client(None))) as c:
        return await c.call_tool("translate_audio", args)


@pytest.mark.parametrize("bound", [2, 4])
async def test_translate_audio_labels_each_segment_with_its_voice(live: LiveServer, mix: Mix, bound: int) -> None:
    result = await _translate(live, mix, speakers=bound)
    assert not result.is_error, result.content
    segments = result.structured_content["segments"]
    spans = [(s["start_ms"], s["end_ms"]) for s in segments]
    labels = [s.get("speaker", 0) for s in segments]
    assert len(spans) == 9 and all(labels), shown(mix, spans, labels)
    assert segment_accuracy(mix, spans, labels) == 1.0, shown(mix, spans, labels)
    assert len(set(labels)) == 2, shown(mix, spans, labels)
    for s in segments:  # a segment's words carry its label
        assert {w["speaker"] for w in s["transcript"]["words"]} <= {s["speaker"]}


async def test_without_speakers_no_segment_is_labelled_and_a_bad_bound_is_refused(live: LiveServer, mix: Mix) -> None:
    result = await _translate(live, mix)
    assert not result.is_error, result.content
    assert all("speaker" not in s for s in result.structured_content["segments"])
    bad = await _translate(live, mix, speakers=9)
    assert bad.is_error and "speakers" in str(bad.content)
