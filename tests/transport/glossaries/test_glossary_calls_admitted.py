"""The glossaries' HTTP routes are admitted as unary calls of their token and tenant (issue 87 J2,
the glossary half; ``transport/glossaries/routes.py``), as the gRPC ``Glossaries`` service and the
MCP endpoint are: a real server on loopback with a tokens file; clients that open creates and
withhold their bodies (a raw socket: the head and a few bytes of a 4 MiB body) hold its token's
and its tenant's unary calls, so the token's next request, and then another token's of the same
tenant, is refused 429 naming the bound, while another tenant is served; once they go, the token
is served again. Before, a glossary request counted nowhere: each held a connection, a handler and
up to 4 MiB of body, without end but the port's header timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

ONE, TWO, OTHER = "acme-one-token-51c0", "acme-two-token-8d2e", "other-token-3f9a"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory, test_model_dir: Path) -> AsyncIterator[LiveServer]:
    folder = tmp_path_factory.mktemp("admitted")
    tokens = folder / "tokens"
    tokens.write_text(
        f"{ONE} * glossaries tenant=acme\n{TWO} * glossaries tenant=acme\n{OTHER} * glossaries tenant=other\n"
    )
    settings = make_settings(test_model_dir)
    settings.auth.tokens_file = tokens
    settings.server.http_port = 0
    settings.glossaries.enabled = True
    settings.glossaries.data_dir = folder / "glossaries"
    settings.limits.max_unary_calls_per_token = 2
    settings.limits.max_unary_calls_per_tenant = 3
    settings.glossaries.max_imports_per_tenant = 3  # issue 91's import slots: not the bound this tests
    settings.limits.http_header_timeout_s = 60  # the withheld bodies outlast the test
    async with serving(settings, runner_factory=FakeRunner) as live:
        yield live


async def withheld_create(port: int, token: str) -> asyncio.StreamWriter:
    """A create whose 4 MiB JSON body is announced and never sent (a few bytes of it are)."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            "POST /v1/glossaries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: {4 * 1024 * 1024}\r\n\r\n"
            '{"id": "slow", "entries": ['
        ).encode()
    )
    await writer.drain()
    return writer


async def listing(http: aiohttp.ClientSession, base: str, token: str) -> tuple[int, dict[str, object]]:
    async with http.get(base, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


async def test_withheld_glossary_bodies_hold_their_token_s_and_tenant_s_unary_calls(live: LiveServer) -> None:
    port = live.server.ports()["http_port"]
    base = f"http://127.0.0.1:{port}/v1/glossaries"
    held: list[asyncio.StreamWriter] = []
    async with aiohttp.ClientSession() as http:
        try:
            for _ in range(2):
                held.append(await withheld_create(port, ONE))

            async def token_full() -> bool:
                return (await listing(http, base, ONE))[0] == 429

            await eventually(token_full, "the token's third call refused", 10)
            status, body = await listing(http, base, ONE)
            error = body["error"]
            assert isinstance(error, dict)
            message = str(error["message"])
            print(f"\nthe token's third call: {status} {message}")
            assert "max_unary_calls_per_token" in message

            held.append(await withheld_create(port, TWO))  # the tenant's third

            async def tenant_full() -> bool:
                status, body = await listing(http, base, TWO)
                return status == 429 and "max_unary_calls_per_tenant" in str(body)

            await eventually(tenant_full, "the tenant's fourth call refused", 10)
            assert (await listing(http, base, OTHER))[0] == 200  # another tenant is served
        finally:
            for writer in held:
                writer.close()

        async def served_again() -> bool:
            return (await listing(http, base, ONE))[0] == 200

        await eventually(served_again, "the token served again once its calls went", 10)
