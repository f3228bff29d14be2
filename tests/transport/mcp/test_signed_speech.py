"""MCP's speech carries content credentials (issue 103 item 3): with the operator's key set
(``credentials.cert_file``, ``key_file``: a throwaway CA and signer, ``tests/support/
credentials.py``), each WAV of ``translate_audio``'s and ``translate_text``'s answers, taken with the
``mcp`` SDK's client, carries a C2PA manifest that c2pa-python reads back as ``Trusted`` under that
CA: made by a trained model, the server's model named, the track's language, and for a clip the
SHA-256 of the clip sent; its samples are those the answer's JSON counts (signing adds a chunk,
changes no sample). Without the key the same WAVs carry none. Before, MCP's WAVs carried none.

A real server on loopback with the real VAD and a fake model (``FakeRunner``: speech of its own
for each segment and language)."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
import pytest_asyncio
import soundfile as sf
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.credentials import ThrowawayKeys, signing
from tests.support.dubbed_speech import speaking_runner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.mcp_door import http_client, mcp_url
from tests.support.stepped_call import NO_MODEL
from translate_svc.marking.credentials import read_bytes

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]


class Served:
    def __init__(self, live: LiveServer, keys: ThrowawayKeys | None) -> None:
        self.live, self.keys = live, keys
        self.model = live.server.app.sessions.card.info.name


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["signed", "unsigned"])
async def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    runner = speaking_runner()
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.mcp.enabled = True
    keys = None
    if request.param == "signed":
        keys = signing(settings, tmp_path_factory.mktemp("keys"))
    async with serving(settings, warmup=False, runner_factory=lambda: runner) as live:
        yield Served(live, keys)


async def call(served: Served, tool: str, args: dict[str, Any]) -> types.CallToolResult:
    async with Client(streamable_http_client(mcp_url(served.live), http_client=http_client(None))) as c:
        result = await c.call_tool(tool, args)
    assert not result.is_error, result.content
    return result


def wavs(result: types.CallToolResult) -> list[bytes]:
    return [base64.b64decode(b.data) for b in result.content if isinstance(b, types.AudioContent)]


def check(served: Served, wav: bytes, language: str, source_sha256: str | None, samples: int) -> None:
    assert len(sf.read(io.BytesIO(wav), dtype="int16")[0]) == samples  # the samples the JSON counts
    found = read_bytes(wav, "audio/wav", trust_anchors_pem=served.keys.ca_pem if served.keys else None)
    if served.keys is None:
        assert found is None, found
        return
    assert found is not None, "no C2PA manifest in the WAV"
    assert found.state == "Trusted", found
    assert found.generated and found.model == served.model and found.created, found
    assert found.source_sha256 == source_sha256 and found.languages == (language,), found
    assert found.signer == "translate-svc test signer", found


async def test_translate_audio_s_speech_is_signed_with_the_clip_s_hash(served: Served, shared_audio: Path) -> None:
    clip = (shared_audio / "jfk.flac").read_bytes()
    args = {"audio_base64": base64.b64encode(clip).decode(), "source_language": "eng", "speech": True}
    result = await call(served, "translate_audio", {**args, "target_languages": ["spa", "fra"]})
    tracks = wavs(result)
    assert len(tracks) == 2
    counted: dict[int, tuple[str, int]] = {}
    for seg in result.structured_content["segments"]:
        for t in seg["translations"]:
            index, (language, samples) = t["speech"]["audio_index"], counted.get(t["speech"]["audio_index"], ("", 0))
            counted[index] = (t["language"], samples + t["speech"]["samples"])
    assert sorted(lang for lang, _ in counted.values()) == ["fra", "spa"]
    for index, wav in enumerate(tracks):
        language, samples = counted[index]
        check(served, wav, language, hashlib.sha256(clip).hexdigest(), samples)


async def test_translate_text_s_speech_is_signed(served: Served) -> None:
    args = {"texts": ["good morning", "see you tomorrow"], "source_language": "eng", "target_languages": ["fra"]}
    result = await call(served, "translate_text", {**args, "speech": True})
    tracks = wavs(result)
    assert len(tracks) == 2
    for n, item in enumerate(result.structured_content["results"]):
        (t,) = item["translations"]
        check(served, tracks[t["speech"]["audio_index"]], "fra", None, t["speech"]["samples"])
        assert t["speech"]["audio_index"] == n
