"""Issue 87 J1: the demo page mints client secrets for anyone who reaches the HTTP port, so its
sessions (tenant ``demo``) are refused noise suppression unless the operator allows it
(``limits.demo_ear_streams``): the ``error`` says which option and which setting; allowed, the
tenant's streams with the ear are capped by that setting (the cap named in the refusal). A session
without the option is served either way. Before the fix a page's session with ``noise_reduction``
ran RNNoise on the server's event loop, as many as anyone opened.

A real server on loopback with the demo page on; the ``openai`` SDK as the page's client would be
(a client secret as its key)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.realtime import MODEL, openai_client
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

NOISE = {"audio": {"input": {"noise_reduction": {"type": "near_field"}}, "output": {"language": "es"}}}
PLAIN = {"audio": {"output": {"language": "es"}}}


@asynccontextmanager
async def demo_server(test_model_dir: Path, demo_ear_streams: int | None = None) -> AsyncIterator[LiveServer]:
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.demo_page = True
    if demo_ear_streams is not None:
        settings.limits.demo_ear_streams = demo_ear_streams
    async with serving(settings) as live:
        yield live


async def page_secret(live: LiveServer) -> str:
    """A client secret as the demo page gets it (no token)."""
    assert live.server.http is not None
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{live.server.http.port}/demo/client_secret") as r:
            assert r.status == 200
            return str((await r.json())["value"])


@asynccontextmanager
async def configured(live: LiveServer, session: dict[str, Any]) -> AsyncIterator[Any]:
    """A session of a fresh page secret, sent ``session``: held for the block; yields the event
    that answered it (``session.updated``, or the ``error`` that refused it)."""
    async with openai_client(live, await page_secret(live)).realtime.translations.connect(model=MODEL) as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.send({"type": "session.update", "session": session})  # type: ignore[arg-type]
        async with asyncio.timeout(30):
            answer = await conn.recv()
        yield answer


async def test_a_page_secret_is_refused_noise_reduction_naming_the_option_and_the_setting(test_model_dir: Path) -> None:
    async with demo_server(test_model_dir) as live:
        async with configured(live, NOISE) as answer:
            assert answer.type == "error", answer
            message = answer.error.message
            assert "noise_reduction" in message and "limits.demo_ear_streams" in message, message
            assert answer.error.code == "ear_streams"
        async with configured(live, PLAIN) as answer:  # the page's own sessions are served
            assert answer.type == "session.updated", answer


async def test_allowed_by_the_operator_the_pages_ear_streams_are_capped_by_that_setting(test_model_dir: Path) -> None:
    async with demo_server(test_model_dir, demo_ear_streams=1) as live:
        async with configured(live, NOISE) as first:
            assert first.type == "session.updated", first
            assert first.session.audio.input.noise_reduction.type == "near_field"
            async with configured(live, NOISE) as second:
                assert second.type == "error", second
                message = second.error.message
                assert "tenant 'demo'" in message and "limits.demo_ear_streams" in message, message
                assert second.error.code == "ear_streams"
            async with configured(live, PLAIN) as plain:
                assert plain.type == "session.updated", plain
        ear = live.server.app.sessions.ear
        await until(lambda: ear.streams == 0)  # the first one's count is given back as it ends
        async with configured(live, NOISE) as again:
            assert again.type == "session.updated", again
