"""A tenant lists its jobs (issue 101, "jobs a user can manage"): ``GET /v1/jobs`` (aiohttp) and
gRPC ``ListJobs`` (the stock ``JobsStub``) page the caller's tenant's jobs newest first, each with
its id, state, creation time, length, targets and error, on a real server on loopback with either
store (SQLite in ``jobs.dir``, or a real ``redis-server``). Paging follows a cursor, so a job made
between two pages neither repeats nor shifts the next; another tenant's jobs are never listed, even
with a cursor made from one of its jobs; a bad cursor or limit is a 400 / INVALID_ARGUMENT saying
what to send. Before: ``GET /v1/jobs`` was 405 and ``ListJobs`` did not exist. Each test makes the
jobs it lists (one that needs a tenant with no others has its own), so any order or subset of them
passes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio

from tests.support.fake_runner import FakeRunner
from tests.support.jobs import JobsOverHttp
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.redis_server import redis_server
from tests.support.stepped_call import NO_MODEL
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.jobs.listing import JobCursor

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(20)]

ACME = "acme-list-token-6c1d0e9f"
OTHER = "other-list-token-3a7b2c5d"
#: two tenants whose only jobs are those of the test that pages through them all
PAGER = "pager-list-token-58e1a04b"
PEEKER = "peeker-list-token-9d3f6c21"
BODY = {"source_language": "eng", "target_languages": ["spa", "fra"], "speech": False}


class Listed:
    def __init__(self, live: LiveServer, http: aiohttp.ClientSession) -> None:
        self.live = live
        self.jobs = JobsOverHttp(http, live.server.ports()["http_port"], ACME)
        self.stub = pb_grpc.JobsStub(live.channel)

    async def make(self, token: str, n: int) -> list[dict[str, Any]]:
        made = []
        for _ in range(n):
            status, job = await self.jobs.call("POST", json=BODY, token=token)
            assert status == 201, job
            made.append(job)
        return made

    async def pages(self, token: str, limit: int) -> list[list[dict[str, Any]]]:
        pages, cursor = [], ""
        while True:
            query = f"?limit={limit}" + (f"&page_token={cursor}" if cursor else "")
            status, page = await self.jobs.call("GET", query, token=token)
            assert status == 200, page
            pages.append(page["jobs"])
            cursor = page["next_page_token"]
            if not cursor:
                return pages


def newest_first(jobs: list[dict[str, Any]]) -> list[str]:
    return [j["id"] for j in sorted(jobs, key=lambda j: (j["created_at"], j["id"]), reverse=True)]


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "redis"])
async def listed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Listed]:
    tmp = tmp_path_factory.mktemp(f"jobs-list-{request.param}")
    tokens = tmp / "tokens"
    tokens.write_text(
        f"{ACME} * jobs tenant=acme jobs=20\n{OTHER} * jobs tenant=other jobs=20\n"
        f"{PAGER} * jobs tenant=pager jobs=20\n{PEEKER} * jobs tenant=peeker jobs=20\n"
    )
    settings = make_settings(NO_MODEL)
    settings.server.http_port = 0
    settings.auth.tokens_file = tokens
    settings.jobs.dir = tmp / "jobs"
    with contextlib.ExitStack() as stack:
        if request.param == "redis":
            settings.cluster.redis_url = stack.enter_context(redis_server()).url
        async with (
            serving(settings, warmup=False, runner_factory=FakeRunner) as live,
            aiohttp.ClientSession() as http,
        ):
            yield Listed(live, http)


async def test_a_tenant_pages_through_its_jobs_newest_first_and_sees_no_other_tenants(listed: Listed) -> None:
    mine = await listed.make(PAGER, 5)
    theirs = await listed.make(PEEKER, 3)
    status, cancelled = await listed.jobs.call("POST", f"/{mine[1]['id']}/cancel", token=PAGER)
    assert status == 200 and cancelled["state"] == "cancelled", cancelled

    pages = await listed.pages(PAGER, 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    seen = [j for p in pages for j in p]
    assert [j["id"] for j in seen] == newest_first(mine)
    shown = {j["id"]: j for j in seen}[mine[1]["id"]]
    assert shown["state"] == "cancelled" and shown["error"] == "cancelled by its owner"
    assert shown["target_languages"] == ["spa", "fra"] and shown["duration_ms"] == 0
    assert shown["created_at"] == mine[1]["created_at"]

    other = [j["id"] for p in await listed.pages(PEEKER, 50) for j in p]
    assert other == newest_first(theirs)
    assert not set(other) & {j["id"] for j in mine}


async def test_a_page_continues_after_the_last_one_whatever_was_made_between(listed: Listed) -> None:
    await listed.make(ACME, 4)
    status, first = await listed.jobs.call("GET", "?limit=3")
    assert status == 200 and len(first["jobs"]) == 3 and first["next_page_token"]
    before = [j["id"] for j in first["jobs"]]
    new = await listed.make(ACME, 1)
    status, second = await listed.jobs.call("GET", f"?limit=3&after={first['next_page_token']}")
    assert status == 200
    after = [j["id"] for j in second["jobs"]]
    assert not set(after) & set(before) and new[0]["id"] not in after
    status, again = await listed.jobs.call("GET", "?limit=1")
    assert [j["id"] for j in again["jobs"]] == [new[0]["id"]]  # the newest, on the first page


async def test_a_cursor_from_another_tenants_job_lists_nothing_of_that_tenant(listed: Listed) -> None:
    await listed.make(ACME, 1)  # older than theirs: listed after the forged cursor
    theirs = (await listed.make(OTHER, 1))[0]
    forged = JobCursor(theirs["created_at"] + 1, theirs["id"]).token()
    status, page = await listed.jobs.call("GET", f"?limit=200&page_token={forged}")
    assert status == 200 and page["jobs"]
    assert {j["id"] for j in page["jobs"]} <= {j["id"] for p in await listed.pages(ACME, 200) for j in p}


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("?limit=201", "1..200 jobs a page"),
        ("?limit=ten", "limit: how many jobs"),
        ("?page_token=not-a-cursor", "page_token: give back a next_page_token"),
        ("?page_token=a&after=b", "send one of them"),
    ],
)
async def test_a_bad_page_request_is_refused_saying_what_to_send(listed: Listed, query: str, words: str) -> None:
    status, body = await listed.jobs.call("GET", query)
    assert status == 400 and words in body["error"]["message"], body


async def test_list_jobs_over_grpc_pages_as_the_http_listing_does(listed: Listed) -> None:
    meta = (("authorization", f"Bearer {ACME}"),)
    await listed.make(ACME, 5)  # two pages at least
    over_http = [j["id"] for p in await listed.pages(ACME, 200) for j in p]
    got: list[pb.Job] = []
    token = ""
    while True:
        page = await listed.stub.ListJobs(pb.ListJobsRequest(page_size=4, page_token=token), metadata=meta, timeout=30)
        assert len(page.jobs) <= 4
        got += page.jobs
        token = page.next_page_token
        if not token:
            break
    assert [j.job_id for j in got] == over_http
    assert all(j.created_at > 0 and list(j.target_languages) == ["spa", "fra"] for j in got)
    with pytest.raises(grpc.aio.AioRpcError) as e:
        await listed.stub.ListJobs(pb.ListJobsRequest(page_size=500), metadata=meta, timeout=30)
    assert e.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "1..200 jobs a page" in (e.value.details() or "")
    theirs = await listed.stub.ListJobs(
        pb.ListJobsRequest(page_size=200), metadata=(("authorization", f"Bearer {OTHER}"),), timeout=30
    )
    assert not {j.job_id for j in theirs.jobs} & set(over_http)
