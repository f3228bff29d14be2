"""The speaking rate on the MCP door (issue 90 item 1): a ``speed`` argument on the tools that
return speech (``translate_text``, ``translate_audio``), driven by the ``mcp`` SDK's own client over
streamable HTTP against a real server on the test checkpoint.

Each tool's schema lists ``speed`` with its range; the same input at speed 1 and at 1.5: each
translation's speech 1/1.5 as long (within two vocoder frames and 5 %,
``tests/support/speaking_rate.py``), its words inside its own speech; 0.3 and 2.5 are tool errors
(INVALID_ARGUMENT) naming the argument and the range."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import checkpoint_settings, http_client, mcp_url
from tests.support.speaking_rate import at_rate, long_enough, rate_failure, words_inside

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(30)]

TEXTS = ["the meeting starts at noon", "Ada Lovelace wrote the first program"]
SPEECH_TOOLS = ("translate_text", "translate_audio")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    async with serving(checkpoint_settings(test_model_dir)) as server:
        yield server


def client(live: LiveServer) -> Client:
    return Client(streamable_http_client(mcp_url(live), http_client=http_client(None)))


def arguments(tool: str, shared_audio: Path, **extra: Any) -> dict[str, Any]:
    if tool == "translate_text":
        return {"texts": TEXTS, "source_language": "eng", "target_languages": ["spa", "fra"], "speech": True, **extra}
    clip = (shared_audio / "jfk.flac").read_bytes()
    return {
        "audio_base64": base64.b64encode(clip).decode(),
        "source_language": "eng",
        "target_languages": ["spa", "fra"],
        "speech": True,
        "word_timings": True,
        **extra,
    }


def speech(answer: dict[str, Any]) -> dict[tuple[int, str], tuple[int, int, list[tuple[int, int]]]]:
    """(item, language) -> (samples, rate, words) of each translation's speech, for either tool."""
    items = answer["results"] if "results" in answer else answer["segments"]
    out = {}
    for n, item in enumerate(items):
        for t in item["translations"]:
            where = t["speech"]
            words = [(w["start_ms"], w["end_ms"]) for w in t.get("words", [])]
            out[(n, t["language"])] = (where["samples"], where["sample_rate_hz"], words)
    return out


async def test_each_speech_tool_lists_speed_with_its_range(live: LiveServer) -> None:
    async with client(live) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    for name in SPEECH_TOOLS:
        prop = tools[name].input_schema["properties"]["speed"]
        assert (prop["type"], prop["minimum"], prop["maximum"], prop["default"]) == ("number", 0.5, 2.0, 1.0)


@pytest.mark.parametrize("tool", SPEECH_TOOLS)
async def test_speed_1_5_speaks_in_two_thirds_of_the_time(live: LiveServer, shared_audio: Path, tool: str) -> None:
    async with client(live) as c:
        own = await c.call_tool(tool, arguments(tool, shared_audio))
        fast = await c.call_tool(tool, arguments(tool, shared_audio, speed=1.5))
    assert not own.is_error and not fast.is_error, (own.content, fast.content)
    at_1, at_15 = speech(own.structured_content), speech(fast.structured_content)
    assert at_1.keys() == at_15.keys()
    assert any(long_enough(n, rate) for n, rate, _ in at_1.values()), at_1
    for key, (n, rate, _) in at_1.items():
        got, _, words = at_15[key]
        assert at_rate(n, got, 1.5, rate), (key, rate_failure(n, got, 1.5, rate))
        assert words_inside(words, got, rate), (key, words, got)


@pytest.mark.parametrize("speed", [0.3, 2.5])
@pytest.mark.parametrize("tool", SPEECH_TOOLS)
async def test_a_speed_out_of_range_is_a_tool_error_naming_it_and_the_range(
    live: LiveServer, shared_audio: Path, tool: str, speed: float
) -> None:
    async with client(live) as c:
        result = await c.call_tool(tool, arguments(tool, shared_audio, speed=speed))
    assert result.is_error, result.content
    error = result.structured_content["error"]
    assert error["code"] == "INVALID_ARGUMENT" and error["param"] == "speed"
    assert "speed" in error["message"] and "0.5 to 2.0" in error["message"], error
