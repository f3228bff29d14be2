"""Issue 87 J2: one tenant's long polls no longer take the HTTP port. Before, every jobs request
was served outside admission: 520 ``GET /v1/jobs/<id>?wait=60`` of one ``*`` token held every
connection of the port (``limits.http_max_connections``), so the realtime WebSocket, the jobs
routes and ``/healthz`` answered 503, renewed every 60 s. Now each jobs request is admitted as its
token's and tenant's unary call, and one that holds its connection (a long poll, a part, a
download) as one of the tenant's ``limits.http_max_held_requests_per_tenant`` (4): the rest are
429 at once, and another tenant's requests and ``/healthz`` are served.

A real server on loopback (the test checkpoint), its HTTP port capped at 40 connections, 60 long
polls of one token, each on a connection of its own (aiohttp)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.support.attacks.jobs import (
    create_job,
    jobs_url,
    long_polls,
    serving_connections,
    status_of,
    token_line,
)
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]

FLOOD = "held-flood-token-6d0e1a2b"
QUIET = "held-quiet-token-9c4f7e3d"
PORT_CAP = 40
POLLS = 60


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("held")
    tokens = tmp / "tokens"
    tokens.write_text(token_line(FLOOD, "flood", "jobs=50") + token_line(QUIET, "quiet"))
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    settings.limits.http_max_connections = PORT_CAP
    async with serving(settings) as live:
        yield live


async def test_one_tenants_long_polls_hold_a_few_connections_and_the_port_serves_the_others(live: LiveServer) -> None:
    base = jobs_url(live)
    health = f"http://127.0.0.1:{live.server.ports()['http_port']}/healthz"
    # one connection a request, and never more than the client asks (no pool limit)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=90)) as http:
        job = await create_job(http, base, FLOOD)
        polls = long_polls(http, base, FLOOD, job["id"], POLLS)
        try:
            answered = lambda: sum(1 for p in polls if p.done())  # noqa: E731

            async def every_poll_seen() -> bool:  # answered, or holding a connection of the port
                return answered() + serving_connections(live) >= POLLS

            await eventually(every_poll_seen, "every long poll answered or holding a connection", 30)
            held = serving_connections(live)
            refusals = [p.result() for p in polls if p.done()]
            probes = {
                "healthz": (await status_of(http, "GET", health, QUIET))[0],
                "another tenant's create": (
                    await status_of(http, "POST", base, QUIET, json={"target_languages": ["spa"]})
                )[0],
            }
            print(
                f"\nJ2 long polls: {POLLS} sent (HTTP port capped at {PORT_CAP}), {held} held, "
                f"refused {sorted({s for s, _ in refusals})}; bystander {probes}"
            )
            assert probes == {"healthz": 200, "another tenant's create": 201}
            assert held <= live.server.app.settings.limits.http_max_held_requests_per_tenant
            assert all(status == 429 for status, _ in refusals), refusals[:3]
            assert any("http_max_held_requests_per_tenant" in str(body) for _, body in refusals), refusals[:3]
        finally:
            for p in polls:
                p.cancel()
            await asyncio.gather(*polls, return_exceptions=True)
            await status_of(http, "POST", f"{base}/{job['id']}/cancel", FLOOD)  # the held polls answer now
