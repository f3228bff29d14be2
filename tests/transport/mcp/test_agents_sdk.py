"""``serve --mcp`` as the OpenAI Agents SDK sees it (issue 62): its ``MCPServerStreamableHttp``
(``openai-agents``) connects with a bearer token, lists the tools, turns each into the function
tool an agent's model would be shown (its strict JSON schema), and calls them, the way an agent's
run does (``MCPUtil.invoke_mcp_tool``), without any model. A refusal reaches it as the tool's
error text, which an agent hands its model to correct the call."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from agents import RunContextWrapper
from agents.mcp import MCPServerStreamableHttp, MCPUtil

from tests.support.live_server import LiveServer, serving
from tests.support.mcp_door import mcp_settings, mcp_url

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

TOKEN = "mcp-agents-token-0b7f3d"
LANG_ONLY = "mcp-agents-lang-only-77e1"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{TOKEN} * room=agents-*\n{LANG_ONLY} languages\n")
    async with serving(mcp_settings(test_model_dir, tokens)) as server:
        yield server


def agents_server(live: LiveServer, token: str) -> MCPServerStreamableHttp:
    params = {"url": mcp_url(live), "headers": {"Authorization": f"Bearer {token}"}, "timeout": 120}
    return MCPServerStreamableHttp(params, name="translate-svc", client_session_timeout_seconds=120)  # type: ignore[arg-type]


async def test_lists_and_calls_the_tools(live: LiveServer, shared_audio: Path) -> None:
    server = agents_server(live, TOKEN)
    await server.connect()
    try:
        tools = {t.name: t for t in await server.list_tools()}
        assert set(tools) == {
            "list_languages",
            "translate_text",
            "translate_audio",
            "detect_synthetic_speech",
            "open_room",
            "room_status",
        }
        for tool in tools.values():  # what an agent's model is shown: strict function schemas
            function = MCPUtil.to_function_tool(tool, server, convert_schemas_to_strict=True)
            assert function.name == tool.name and function.params_json_schema["type"] == "object"

        langs = await server.call_tool("list_languages", {})
        assert not langs.is_error and "spa" in {lang["code"] for lang in langs.structured_content["languages"]}

        context = RunContextWrapper(context=None)
        output = await MCPUtil.invoke_mcp_tool(
            server,
            tools["translate_text"],
            context,
            json.dumps({"texts": ["see you tomorrow"], "source_language": "eng", "target_languages": ["fra", "deu"]}),
        )
        result = json.loads(str(output if isinstance(output, str) else output["text"]))  # type: ignore[index]
        assert [t["language"] for t in result["results"][0]["translations"]] == ["fra", "deu"]

        clip = base64.b64encode((shared_audio / "jfk.flac").read_bytes()).decode()
        audio = await server.call_tool("translate_audio", {"audio_base64": clip, "source_language": "eng"})
        assert not audio.is_error and audio.structured_content["segments"]

        opened = await server.call_tool("open_room", {"room": "agents-standup", "source_language": "eng"})
        assert not opened.is_error and opened.structured_content["listeners"]["key"].startswith("ek_")
        outside = await server.call_tool("open_room", {"room": "board", "source_language": "eng"})
        assert outside.is_error and outside.structured_content["error"]["code"] == "PERMISSION_DENIED"
    finally:
        await server.cleanup()


async def test_a_missing_permission_reaches_the_agent_as_the_tools_error(live: LiveServer) -> None:
    server = agents_server(live, LANG_ONLY)
    await server.connect()
    try:
        refused = await server.call_tool(
            "translate_text", {"texts": ["hi"], "source_language": "eng", "target_languages": ["spa"]}
        )
        assert refused.is_error
        assert refused.structured_content["error"]["code"] == "PERMISSION_DENIED"
        assert 'permission "translate"' in refused.content[0].text
    finally:
        await server.cleanup()
