"""Issue 87 J5: a tenant's ``jobs=`` cap is taken with the job's insert, so simultaneous creates
never pass it together. Before, the desk counted the tenant's jobs, then inserted: with ``jobs=1``,
20 simultaneous ``POST /v1/jobs`` made 20 jobs. Now the count and the insert are one SQLite
transaction (``BEGIN IMMEDIATE``), or one Lua script in Redis (``CREATE``): one job is made, the
others are 429 naming the cap.

A real server on loopback (the test checkpoint), its jobs kept in SQLite, or with
``cluster.redis_url`` in a real ``redis-server``; 20 creates at once, their connections opened first."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.support.attacks.jobs import at_once, jobs_url, status_of, token_line
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.redis_server import RedisServer, redis_server

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(30)]

TOKEN = "caps-race-token-8a1f2e7c"
CREATES = 20


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "redis"])
async def live(
    request: pytest.FixtureRequest, test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory, redis: RedisServer
) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("caps")
    tokens = tmp / "tokens"
    tokens.write_text(token_line(TOKEN, "racer", "jobs=1"))
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    if request.param == "redis":
        settings.cluster.redis_url = redis.url
    async with serving(settings) as live:
        yield live


async def test_simultaneous_creates_make_one_job_under_jobs_1(live: LiveServer) -> None:
    base = jobs_url(live)
    body = json.dumps({"source_language": "eng", "target_languages": ["spa"]}).encode()
    answers = await at_once(live.server.ports()["http_port"], "POST", "/v1/jobs", TOKEN, body, CREATES)
    made = [json.loads(got)["id"] for status, got in answers if status == 201]
    refused = [got.decode() for status, got in answers if status != 201]
    store = "redis" if live.server.app.settings.cluster.redis_url else "sqlite"
    print(
        f"\nJ5 cap race ({store}): {CREATES} creates at once under jobs=1 made {len(made)}; "
        f"refused {sorted({s for s, _ in answers if s != 201})}"
    )
    async with aiohttp.ClientSession() as http:
        for job_id in made:
            await status_of(http, "POST", f"{base}/{job_id}/cancel", TOKEN)
    assert len(made) == 1, made
    assert all(s == 429 for s, _ in answers if s != 201)
    assert any("jobs=1 in the tokens file" in got for got in refused), refused[:3]
