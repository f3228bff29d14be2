"""Issue 52 F6: client secrets of a tokens-file tenant named ``demo`` (the line that caps the demo
page, as docs/security.md suggests) die with its lines, and take its caps as they change; the demo
page's own secrets (minted by the server, not by a token) stay the page's. A real server on
loopback with a tokens file; each change of the file is waited for as the server's own reload
(``TokenStore.reloads``), not slept for."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.realtime import session_events
from tests.support.tokens import ALL, reloaded, replace

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(20)]

DEMO = "demo-tenant-token-6e2b8f1a"  # the line that caps the demo page's sessions
PATH = "/v1/realtime/translations"


def _url(live: LiveServer, path: str) -> str:
    assert live.server.http is not None
    return f"http://127.0.0.1:{live.server.http.port}{path}"


@asynccontextmanager
async def session(http: aiohttp.ClientSession, live: LiveServer, key: str) -> AsyncIterator[int]:
    """A realtime session opened with ``key`` and configured, held for the block: the handshake's
    status (101: open; else the block runs with nothing open)."""
    try:
        ws = await http.ws_connect(_url(live, PATH + "?model=m"), headers={"Authorization": f"Bearer {key}"})
    except aiohttp.WSServerHandshakeError as e:
        yield e.status
        return
    try:
        assert json.loads((await ws.receive(timeout=10)).data)["type"] == "session.created"
        await ws.send_json({"type": "session.update", "session": {"audio": {"output": {"language": "es"}}}})
        assert json.loads((await ws.receive(timeout=10)).data)["type"] == "session.updated"
        yield 101
    finally:
        await ws.close()


async def served_meanwhile(live: LiveServer) -> None:
    """Another tenant is served as usual, and so is health."""
    status = await health_pb2_grpc.HealthStub(live.channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
    assert await session_events(live, ALL) == ["session.updated", "session.closed"]


async def test_a_secret_of_the_tenant_named_demo_dies_with_its_lines_and_takes_its_caps(
    test_model_dir: Path, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALL}\n{DEMO} stream tenant=demo streams=1\n")
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.server.demo_page = True
    settings.auth.tokens_file = tokens
    async with serving(settings) as live, aiohttp.ClientSession() as http:
        store = live.server.tokens
        assert store is not None
        # a secret minted by the demo tenant's token, and one the demo page mints for itself
        async with http.post(
            _url(live, PATH + "/client_secrets"),
            json={"expires_after": {"seconds": 600}},
            headers={"Authorization": f"Bearer {DEMO}"},
        ) as r:
            assert r.status == 200
            minted = (await r.json())["value"]
        async with http.post(_url(live, "/demo/client_secret")) as r:
            assert r.status == 200
            page = (await r.json())["value"]
        # both are the tenant demo's, capped at one stream
        async with session(http, live, minted) as first, session(http, live, page) as second:
            assert (first, second) == (101, 429)
        # the cap raised: both at once
        before = store.reloads
        replace(tokens, f"{ALL}\n{DEMO} stream tenant=demo streams=2\n")
        await reloaded(live, before)
        async with session(http, live, minted) as first, session(http, live, page) as second:
            assert (first, second) == (101, 101)
        # the tenant's lines removed: the token's secret opens nothing (before: a session with no
        # caps at all); the page's own secret stays the page's, uncapped now that no line caps it
        before = store.reloads
        replace(tokens, f"{ALL}\n")
        await reloaded(live, before)
        async with session(http, live, minted) as refused:
            assert refused == 401
        async with session(http, live, page) as first, session(http, live, page) as second:
            assert (first, second) == (101, 101)
        await served_meanwhile(live)


async def test_the_demo_pages_own_secret_opens_nothing_on_a_server_without_the_page(
    test_model_dir: Path, tmp_path: Path
) -> None:
    """A page's secret carries its mark: a server sharing the key (``auth.client_secret_key``, as a
    node's processes do) but not serving the page takes it for nothing."""
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{ALL}\n{DEMO} stream tenant=demo\n")
    with_page, without = make_settings(test_model_dir), make_settings(test_model_dir)
    for settings, page in ((with_page, True), (without, False)):
        settings.server.http_port = 0
        settings.server.demo_page = page
        settings.auth.tokens_file = tokens
        settings.auth.client_secret_key = "shared-key-of-the-node-5a1c9e3b7d0f2a4c6e8b"
    async with serving(with_page, warmup=False) as live, aiohttp.ClientSession() as http:
        async with http.post(_url(live, "/demo/client_secret")) as r:
            page_secret = (await r.json())["value"]
    async with serving(without, warmup=False) as live, aiohttp.ClientSession() as http:
        async with session(http, live, page_secret) as status:
            assert status == 401
        await served_meanwhile(live)
