"""Issue 87 J5: jobs take a permission of their own and are capped by default. Before, any token
with ``translate`` (every ``*`` token) could submit jobs (hours of the model's time and gigabytes
of disk each), and a tenant whose tokens-file line set no ``jobs=`` had no cap on them. Now the
jobs API (HTTP and gRPC) asks for the ``jobs`` permission, which ``*`` does not imply (as
``recordings`` and ``glossaries``), and a tenant without ``jobs=`` / ``job_hours=`` is held to
``jobs.max_jobs_per_tenant`` (4) and ``jobs.max_hours_per_tenant`` (12 h).

A real server on loopback (the test checkpoint): the jobs API over aiohttp and the ``Jobs`` gRPC
service with the generated stub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import grpc
import pytest
import pytest_asyncio

from tests.support.attacks.jobs import jobs_url, status_of, token_line
from tests.support.live_server import LiveServer, make_settings, serving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]

STAR = "perm-star-token-2d9b7f1c"
UNCAPPED = "perm-uncapped-token-8e3a6d0b"
TRIES = 10


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("perm")
    tokens = tmp / "tokens"
    tokens.write_text(f"{STAR} * tenant=star\n" + token_line(UNCAPPED, "nocaps"))
    settings = make_settings(test_model_dir)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    async with serving(settings) as live:
        yield live


async def test_a_star_token_may_not_submit_jobs(live: LiveServer) -> None:
    async with aiohttp.ClientSession() as http:
        status, err = await status_of(http, "POST", jobs_url(live), STAR, json={"target_languages": ["spa"]})
    jobs = pb_grpc.JobsStub(live.channel)
    try:
        await jobs.CreateJob(
            pb.CreateJobRequest(target_languages=["spa"]), metadata=(("authorization", f"Bearer {STAR}"),)
        )
        code = "OK"
    except grpc.aio.AioRpcError as e:
        code = e.code().name
    print(f"\nJ5 a '*' token: POST /v1/jobs {status}, CreateJob {code}")
    assert status == 403 and '"jobs"' in str(err), err
    assert code == "PERMISSION_DENIED"


async def test_a_tenant_without_caps_is_held_to_the_servers_defaults(live: LiveServer) -> None:
    base = jobs_url(live)
    made: list[str] = []
    async with aiohttp.ClientSession() as http:
        for _ in range(TRIES):
            status, job = await status_of(http, "POST", base, UNCAPPED, json={"target_languages": ["spa"]})
            if status != 201:
                break
            made.append(job["id"])
        for job_id in made:
            await status_of(http, "POST", f"{base}/{job_id}/cancel", UNCAPPED)
    print(f"\nJ5 a tenant without jobs=: {len(made)} jobs made of {TRIES} tried, then {status}")
    default = live.server.app.settings.jobs.max_jobs_per_tenant
    assert len(made) == default and status == 429, (len(made), status)
    assert f"jobs.max_jobs_per_tenant={default}" in str(job), job
