"""A malformed client-secret request (``POST /v1/realtime/translations/client_secrets``) is a 400
that says what to fix, and a well-formed one still mints (issue 34, N16). Against a real door on
loopback."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.transport.openai.door import PATH

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(10)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def door(test_model_dir: Path) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    async with serving(settings) as live:
        yield live


def _url(live: LiveServer, path: str = "") -> str:
    assert live.server.http is not None
    return f"http://127.0.0.1:{live.server.http.port}{PATH}{path}"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"session": "es"}, "session must be a JSON object"),
        ({"session": ["es"]}, "session must be a JSON object"),
        ({"session": 5}, "session must be a JSON object"),
        ({"session": {"x": "y" * 20_000}}, "session is too large"),
        ({"expires_after": 60}, "expires_after must be an object"),
        ({"expires_after": {"seconds": True}}, "expires_after.seconds"),
        ({"expires_after": {"seconds": "60"}}, "expires_after.seconds"),
        ({"expires_after": {"seconds": 0}}, "expires_after.seconds"),
        (["session"], "request body must be a JSON object"),
        ("not json", "request body must be a JSON object"),
    ],
)
async def test_a_malformed_client_secret_request_is_a_400_that_says_what_to_fix(
    door: LiveServer, body: Any, words: str
) -> None:
    data = body if isinstance(body, str) else json.dumps(body)
    async with aiohttp.ClientSession() as http, http.post(_url(door, "/client_secrets"), data=data) as response:
        assert response.status == 400, await response.text()
        error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "invalid_value"
    assert words in error["message"], error


async def test_a_well_formed_client_secret_request_still_mints(door: LiveServer) -> None:
    body = {"session": {"audio": {"output": {"language": "es"}}}, "expires_after": {"seconds": 60}}
    async with aiohttp.ClientSession() as http:
        for sent in (body, {}):
            async with http.post(_url(door, "/client_secrets"), json=sent) as response:
                assert response.status == 200, await response.text()
                minted = await response.json()
            assert minted["value"].startswith("ek_") and minted["session"]["type"] == "translation"
