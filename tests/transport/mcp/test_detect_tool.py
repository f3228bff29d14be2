"""MCP's ``detect_synthetic_speech`` through the ``mcp`` SDK's own client on a real server
(``--mcp`` on the stable translator: detection runs in the server's sandbox processes whatever the
model): a clip marked by the product's watermarker reads as marked, the same speech unmarked does
not, and a clip that is not audio, or not base64, is a tool error naming what to fix; a token
without ``translate`` is refused."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.credentials import make_keys
from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import http_client, mcp_settings, mcp_url
from translate_svc.marking.credentials import Made, Signer
from translate_svc.marking.watermarker import shared

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

TOKEN = "mcp-detect-token-3f9a1c"
LISTEN_ONLY = "mcp-detect-languages-only-77b2"
TOOL = "detect_synthetic_speech"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} * tenant=agents\n{LISTEN_ONLY} languages tenant=agents\n")
    async with serving(mcp_settings(test_model_dir, tokens)) as server:
        yield server


def client(live: LiveServer, token: str = TOKEN) -> Client:
    return Client(streamable_http_client(mcp_url(live), http_client=http_client(token)))


def flac_base64(samples: np.ndarray, rate: int) -> str:
    out = io.BytesIO()
    sf.write(out, samples, rate, format="FLAC")
    return base64.b64encode(out.getvalue()).decode()


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(shared_audio / "jfk.flac", dtype="float32")
    return (samples.mean(axis=1) if samples.ndim == 2 else samples).astype(np.float32), rate


def answer_of(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    found: dict[str, Any] = result.structured_content
    return found


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    error: dict[str, Any] = result.structured_content["error"]
    return error


async def test_a_marked_clip_reads_as_marked_and_the_same_unmarked_does_not(
    live: LiveServer, jfk: tuple[np.ndarray, int]
) -> None:
    samples, rate = jfk
    async with client(live) as c:
        listed = {t.name: t for t in (await c.list_tools()).tools}
        assert (
            listed[TOOL].input_schema["type"] == "object" and "audio_base64" in listed[TOOL].input_schema["properties"]
        )
        marked = answer_of(await c.call_tool(TOOL, {"audio_base64": flac_base64(shared().mark(samples, rate), rate)}))
        assert marked["marked"] is True and marked["conclusive"] is True and marked["probability"] > 0.9, marked
        assert marked["watermarker"] == shared().name and marked["spans"][0]["start_ms"] == 0, marked
        unmarked = answer_of(await c.call_tool(TOOL, {"audio_base64": flac_base64(samples, rate)}))
        assert unmarked["marked"] is False and unmarked["probability"] < 0.5 and unmarked["spans"] == [], unmarked
        assert marked["content_credentials"] is None and unmarked["content_credentials"] is None
        # a file signed with content credentials (C2PA): read and checked
        keys = make_keys()
        made = Made("jfk.flac", "facebook/seamless-m4t-v2-large")
        flac = base64.b64decode(flac_base64(shared().mark(samples, rate), rate))
        signed = Signer(keys.chain_pem, keys.key_pem, generator="t").sign_bytes(flac, "audio/flac", made)
        found = answer_of(await c.call_tool(TOOL, {"audio_base64": base64.b64encode(signed).decode()}))
        credentials = found["content_credentials"]
        assert found["marked"] is True and credentials["state"] == "Valid" and credentials["generated"], found
        assert credentials["model"] == made.model, found
        assert credentials["failures"] == ["signingCredential.untrusted"], found  # no trust anchors given


async def test_bad_clips_and_a_token_without_translate_are_tool_errors(live: LiveServer) -> None:
    async with client(live) as c:
        junk = base64.b64encode(b"these are not samples\n" * 20).decode()
        error = error_of(await c.call_tool(TOOL, {"audio_base64": junk}))
        assert error["code"] == "INVALID_ARGUMENT" and "not a WAV, FLAC, OGG, MP3 or WebM file" in error["message"]
        error = error_of(await c.call_tool(TOOL, {"audio_base64": "not base64!"}))
        assert error["code"] == "INVALID_ARGUMENT" and "audio_base64 is not valid base64" in error["message"]
        error = error_of(await c.call_tool(TOOL, {}))
        assert "exactly one of audio_base64 and audio_url" in error["message"], error
    async with client(live, LISTEN_ONLY) as c:
        error = error_of(await c.call_tool(TOOL, {"audio_base64": junk}))
        assert error["code"] == "PERMISSION_DENIED" and "translate" in error["message"], error
