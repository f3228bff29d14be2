"""What one realtime event may hold is checked before anything in it is converted (issue 34, N2):
a ``session.update`` of 10,000 languages is refused by its count before one is mapped, and values
oversized or malformed are refused without echo, as the session opens or while it runs. Against a
real door on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.transport.openai import protocol
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


async def _events(live: LiveServer, *events: dict[str, Any]) -> list[dict[str, Any]]:
    """The events the door sends after ``session.created`` for ``events``, until it closes."""
    got: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(_url(live)) as ws:
        created = json.loads((await ws.receive(timeout=10)).data)
        assert created["type"] == "session.created"
        for event in events:
            await ws.send_str(json.dumps(event))
        async with asyncio.timeout(10):
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                got.append(json.loads(msg.data))
                if got[-1]["type"] == "session.closed":
                    break
    return got


def _update(output: dict[str, Any], **audio_input: Any) -> dict[str, Any]:
    return {"type": "session.update", "session": {"audio": {"output": output, "input": audio_input}}}


async def test_a_session_update_with_10k_languages_is_refused_before_one_is_mapped(
    door: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 languages (60 KB): counted before one is mapped. (100,000, 600 KB, are refused by
    their size before json.loads reads them: issue 52 F3, ``wire.MAX_BESIDE_AUDIO_CHARS``.)"""
    mapped: list[str] = []
    original = protocol.guess_model_code

    def counting(value: str) -> str:
        mapped.append(value)
        return original(value)

    monkeypatch.setattr(protocol, "guess_model_code", counting)
    flood = _update({"languages": ["es"] * 10_000})
    started = time.perf_counter()
    got = await _events(door, flood)
    took = time.perf_counter() - started
    # refused (invalid_value, naming the limit), then closed like any invalid first config
    assert [e["type"] for e in got] == ["error"], got
    assert got[0]["error"]["code"] == "invalid_value"
    assert "10000 output languages" in got[0]["error"]["message"]
    assert "at most 4" in got[0]["error"]["message"]
    assert mapped == []  # no tag was converted
    assert took < 1.0, took
    # the limit itself: five is refused, four are taken (each mapped once)
    got = await _events(door, _update({"languages": ["es", "fr", "de", "it", "pt"]}))
    assert got[0]["error"]["code"] == "invalid_value" and mapped == []
    got = await _events(door, _update({"languages": ["es", "fr", "de", "it"]}), {"type": "session.close"})
    assert [e["type"] for e in got] == ["session.updated", "session.closed"], got
    assert mapped == ["es", "fr", "de", "it"]
    got = await _events(door, _update({"languages": ["es"] * 100_000}), {"type": "session.close"})
    assert got[0]["error"]["code"] == "event_too_large" and mapped == ["es", "fr", "de", "it"], got


@pytest.mark.parametrize(
    ("update", "words"),
    [
        # each far over its limit, and within the 64 KiB an event holds beside audio (issue 52 F3)
        (_update({"language": "e" * 60_000}), "at most 35 characters"),  # one huge tag
        (_update({"languages": [["es"] * 1000]}), "language tag"),  # not a string
        (_update({"languages": "es,fr"}), "list of language tags"),
        (_update({"language": "es"}, language="a" * 60_000), "audio.input.language"),
        (_update({"language": "es"}, language=list(range(10_000))), "audio.input.language"),
        (_update({"language": "es"}, transcription={"model": "x" * 60_000}), "audio.input.transcription"),
        ({"type": "session.update", "session": ["es"] * 1000}, "session must be a JSON object"),
        ({"type": "session.update", "session": {"audio": {"output": ["es"]}}}, "session.audio.output"),
    ],
)
async def test_oversized_or_malformed_session_values_are_refused_without_echo(
    door: LiveServer, update: dict[str, Any], words: str
) -> None:
    got = await _events(door, update)
    assert [e["type"] for e in got] == ["error"], got
    error = got[0]["error"]
    assert error["code"] == "invalid_value" and words in error["message"], error
    assert len(error["message"]) < 300  # names no client value


async def test_a_running_session_refuses_a_flood_update_by_count_too(door: LiveServer) -> None:
    got = await _events(door, _update({"language": "es"}), _update({"languages": ["es"] * 10_000}))
    assert [e["type"] for e in got] == ["session.updated", "error", "session.closed"], got
    assert got[1]["error"]["code"] == "invalid_value" and "10000" in got[1]["error"]["message"]
