"""What an agent is told when ``serve --mcp`` refuses it (issue 62), each through the ``mcp`` SDK's
client as an agent would meet it: a wrong token (HTTP 401 with ``WWW-Authenticate``, before the SDK
reads a byte), a token without the tool's permission or the room's rights, a tenant at its cap
(``RESOURCE_EXHAUSTED`` with ``retry_after_ms``), a clip over ``mcp.max_clip_bytes`` (a tool error;
a body far over it a 413 unread), and URLs the server will not fetch (another host, another
scheme, a host that is or resolves to a private address). A tool's refusal is a tool result with
``isError`` and ``structuredContent.error.{code, reason, param}``; the server serves on after each."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import pytest_asyncio
import soundfile as sf
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import http_client, mcp_settings, mcp_url
from tests.support.speech import read_16k
from translate_svc.transport.mcp.door import McpRoutes

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

TOKEN = "mcp-refusals-all-2d9c41"
LANG_ONLY = "mcp-refusals-lang-5a0e"
CAPPED = "mcp-refusals-capped-c3f8"
MAX_CLIP = 64 * 1024


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(
        f"{TOKEN} * room=open-*\n{LANG_ONLY} languages\n{CAPPED} translate tenant=small audio_seconds_per_minute=1\n"
    )
    settings = mcp_settings(
        test_model_dir,
        tokens,
        max_clip_bytes=MAX_CLIP,
        fetch_hosts=["media.example.com", "localhost", "127.0.0.1"],
        fetch_timeout_s=5.0,
    )
    async with serving(settings) as server:
        yield server


def client(live: LiveServer, token: str) -> Client:
    return Client(streamable_http_client(mcp_url(live), http_client=http_client(token)))


def two_seconds(shared_audio: Path) -> str:
    """jfk's first 2 s as a WAV (64 kB: within the limit), base64."""
    buffer = io.BytesIO()
    sf.write(buffer, read_16k(shared_audio / "jfk.flac")[: 2 * 16000], 16000, format="WAV", subtype="PCM_16")
    return base64.b64encode(buffer.getvalue()).decode()


def error_of(result: Any) -> dict[str, Any]:
    assert result.is_error, result.content
    error: dict[str, Any] = result.structured_content["error"]
    assert result.content[0].text == error["message"]
    return error


async def test_a_wrong_token_is_refused_before_the_sdk_reads_the_request(live: LiveServer) -> None:
    async with httpx2.AsyncClient() as http:
        answer = await http.post(
            mcp_url(live),
            headers={"Authorization": "Bearer not-a-token", "Accept": "application/json, text/event-stream"},
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        )
        stream = await http.get(mcp_url(live), headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Bearer ")
    assert answer.json()["error"]["data"] == {"code": "invalid_api_key", "status": 401}
    # no MCP session, so no stream to hold a connection with: the spec's 405
    assert stream.status_code == 405 and stream.headers["allow"] == "POST"
    with pytest.raises(ExceptionGroup) as refused:  # the SDK's client raises the JSON-RPC error it was sent
        async with client(live, "not-a-token"):
            pass
    (error,) = _leaves(refused.value)
    assert isinstance(error, MCPError) and error.error.data == {"code": "invalid_api_key", "status": 401}
    assert "the token is not valid" in error.error.message


async def test_a_missing_permission_is_the_tools_error(live: LiveServer) -> None:
    async with client(live, LANG_ONLY) as c:
        langs = await c.call_tool("list_languages", {})
        assert not langs.is_error
        refused = error_of(await c.call_tool("translate_audio", {"audio_base64": "AAAA", "source_language": "eng"}))
        assert refused["code"] == "PERMISSION_DENIED" and 'permission "translate"' in refused["message"]
        room = error_of(await c.call_tool("open_room", {"room": "open-1", "source_language": "eng"}))
        assert room["code"] == "PERMISSION_DENIED"
    async with client(live, TOKEN) as c:
        other = error_of(await c.call_tool("room_status", {"room": "closed-1"}))
        assert other["code"] == "PERMISSION_DENIED" and "publish=" in other["message"]
        with pytest.raises(MCPError) as unread:
            await c.read_resource("translate-svc://rooms/closed-1/captions/spa")
        assert unread.value.error.data["code"] == "PERMISSION_DENIED"


async def test_a_tenant_at_its_cap_is_told_when_to_retry(live: LiveServer, shared_audio: Path) -> None:
    args = {"audio_base64": two_seconds(shared_audio), "source_language": "eng"}
    async with client(live, CAPPED) as c:
        first = await c.call_tool("translate_audio", args)  # admitted with budget left: it overdraws it
        assert not first.is_error, first.content
        refused = error_of(await c.call_tool("translate_audio", args))
        assert refused["code"] == "RESOURCE_EXHAUSTED" and refused["reason"] == "quota"
        assert refused["retry_after_ms"] > 0 and "tenant 'small'" in refused["message"]


async def test_an_oversized_clip_is_refused_saying_the_limit(live: LiveServer) -> None:
    over = base64.b64encode(b"\0" * (MAX_CLIP + 1)).decode()
    async with client(live, TOKEN) as c:
        refused = error_of(await c.call_tool("translate_audio", {"audio_base64": over, "source_language": "eng"}))
        assert refused["code"] == "INVALID_ARGUMENT" and refused["reason"] == "clip_too_large"
        assert f"{MAX_CLIP}-byte limit" in refused["message"]
        bad = error_of(await c.call_tool("translate_audio", {"audio_base64": "not base64!", "source_language": "eng"}))
        assert bad["param"] == "audio_base64"
        both = error_of(await c.call_tool("translate_audio", {"source_language": "eng"}))
        assert both["code"] == "INVALID_ARGUMENT" and "exactly one of audio_base64 and audio_url" in both["message"]
    async with httpx2.AsyncClient() as http:  # far over: refused on its Content-Length, unread
        answer = await http.post(
            mcp_url(live),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            content=b"{" + b" " * body_limit(live) + b"}",
        )
    assert answer.status_code == 413 and answer.json()["error"]["data"]["code"] == "request_too_large"


def body_limit(live: LiveServer) -> int:
    routes = live.server.route_set(McpRoutes)
    assert routes is not None
    return routes.body_limit


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for e in group.exceptions:
        out.extend(_leaves(e) if isinstance(e, BaseExceptionGroup) else [e])
    return out


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("https://elsewhere.example.org/talk.wav", "does not fetch from host"),
        ("http://media.example.com/talk.wav", "must be an https:// URL"),
        ("https://user:pw@media.example.com/talk.wav", "user name or password"),
        ("https://127.0.0.1/talk.wav", "not a public address"),
        ("https://localhost:9/talk.wav", "resolves to a private, loopback or link-local address"),
    ],
)
async def test_a_url_the_server_will_not_fetch(live: LiveServer, url: str, says: str) -> None:
    async with client(live, TOKEN) as c:
        refused = error_of(await c.call_tool("translate_audio", {"audio_url": url, "source_language": "eng"}))
        assert refused["code"] == "INVALID_ARGUMENT" and refused["reason"] == "url_not_allowed"
        assert says in refused["message"]


async def test_detection_asked_for_is_not_ignored(live: LiveServer, shared_audio: Path) -> None:
    """Detection (no source language, or candidates beside one) reaches the clip core as the gRPC
    door's LanguageDetection does: this server has no language identifier, so it is refused as
    gRPC refuses it (FAILED_PRECONDITION), never run without it."""
    clip = two_seconds(shared_audio)
    async with client(live, TOKEN) as c:
        for args in ({}, {"source_language": "eng", "detect_languages": ["eng", "spa"]}):
            refused = error_of(await c.call_tool("translate_audio", {"audio_base64": clip, **args}))
            assert refused["code"] == "FAILED_PRECONDITION", refused
