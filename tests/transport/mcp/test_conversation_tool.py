"""MCP's ``translate_audio`` with a ``conversation`` through the ``mcp`` SDK's own client, on a real
server of the test checkpoint whose test identifier picks Spanish wherever it is a candidate: each
segment is identified among the conversation's languages and translated into the other, and says
what chose its language; a stated language wins without identification; each party's rate makes
the speech in its language; ``stated_language``, ``voices`` or ``speeds`` without a conversation, a
party outside it and a conversation beside targets are tool errors naming what to drop."""

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

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(40)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    from translate_svc.app import build_lid_test_checkpoint

    settings = checkpoint_settings(test_model_dir)
    settings.model.lid_path = build_lid_test_checkpoint(tmp_path_factory.mktemp("lid") / "spa", bias="spa")
    async with serving(settings, warmup=False) as server:
        yield server


def clip(shared_audio: Path) -> str:
    return base64.b64encode((shared_audio / "jfk.flac").read_bytes()).decode()


async def call(live: LiveServer, arguments: dict[str, Any]) -> Any:
    async with Client(streamable_http_client(mcp_url(live), http_client=http_client(None))) as c:
        return await c.call_tool("translate_audio", arguments)


async def test_each_segment_goes_from_its_chosen_language_into_the_other(live: LiveServer, shared_audio: Path) -> None:
    heard = await call(live, {"audio_base64": clip(shared_audio), "conversation": ["eng", "spa"]})
    assert not heard.is_error, heard.content
    segments = heard.structured_content["segments"]
    assert len(segments) == 4
    for seg in segments:
        chosen = seg["detected_language"]
        assert chosen["language"] == "spa" and chosen["source"] in ("identified", "previous_turn"), chosen
        assert [t["language"] for t in seg["translations"]] == ["eng"], seg
    stated = await call(
        live, {"audio_base64": clip(shared_audio), "conversation": ["eng", "spa"], "stated_language": "eng"}
    )
    assert not stated.is_error, stated.content
    for seg in stated.structured_content["segments"]:
        assert seg["detected_language"] == {"language": "eng", "scores": [], "source": "stated"}, seg
        assert [t["language"] for t in seg["translations"]] == ["spa"], seg


def wav_seconds(result: Any) -> float:
    """The seconds of the one WAV an answer carries (its speech, one language)."""
    import io

    import soundfile as sf

    (wav,) = [c for c in result.content if getattr(c, "type", "") == "audio"]
    data, rate = sf.read(io.BytesIO(base64.b64decode(wav.data)))
    return len(data) / rate


async def test_each_partys_rate_is_the_speech_made_in_its_language(live: LiveServer, shared_audio: Path) -> None:
    """Spanish heard: the English speech at the English party's rate is longer; the Spanish
    party's rate leaves it as it was."""
    base = {"audio_base64": clip(shared_audio), "conversation": ["eng", "spa"], "speech": True, "transcript": False}
    plain, slow, other = [
        await call(live, {**base, **extra})
        for extra in ({}, {"speeds": {"eng": 0.5}, "voices": {"eng": 1}}, {"speeds": {"spa": 0.5}})
    ]
    assert not (plain.is_error or slow.is_error or other.is_error), (plain.content, slow.content, other.content)
    assert wav_seconds(slow) > 1.6 * wav_seconds(plain)
    assert wav_seconds(other) == pytest.approx(wav_seconds(plain), rel=0.25)  # not 2x: not its language


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        ({"stated_language": "eng"}, "stated_language goes with conversation"),
        ({"speeds": {"spa": 0.75}}, "speeds goes with conversation"),
        ({"conversation": ["eng", "spa"], "voices": {"fra": 1}}, "conversation.voices names 'fra'"),
        ({"conversation": ["eng", "spa"], "speeds": {"eng": 2.5}}, "conversation.speeds[eng] must be a number"),
        (
            {"conversation": ["eng", "spa"], "target_languages": ["fra"]},
            "conversation and target_languages are both set",
        ),
    ],
)
async def test_what_a_conversation_cannot_go_with_is_a_tool_error(
    live: LiveServer, shared_audio: Path, extra: dict[str, Any], said: str
) -> None:
    result = await call(live, {"audio_base64": clip(shared_audio), **extra})
    assert result.is_error and said in result.structured_content["error"]["message"], result.content
