"""What imports of glossaries as large as users keep cost everyone else (issue 91, point 9): a
``translate-svc serve`` on the test checkpoint, glossaries in SQLite, four tenants importing the
10,000-entry TBX (9.1 MB, ``tests/support/glossary_files.py``) over the HTTP port, while tenant
``b`` streams 11 s of speech in real time.

Files of 16 MiB held whole while they come and while they are parsed would let a process hold
one per admitted call (64 a tenant, any number of tenants): now a process takes at most
``glossaries.max_imports`` (4) at once, ``max_imports_per_tenant`` (2) of one tenant, the rest
refused at once with a retry delay. Twelve imports at once from four tenants: four are taken, and
the server's memory grows by what four files and their parses hold; the bystander's results stay
on time while imports run without pause (the parse is in the glossaries' own processes, outside
the server's interpreter lock: translate_svc/sandbox/).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.support.attacks import glossaries as attack
from tests.support.attacks.bystander import check_loop, realtime_lateness, speech, summary
from tests.support.glossary_files import tbx
from tests.support.proc import peak_rss_growth_mb
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(60), pytest.mark.serial]

TENANTS = [f"importer-{n}-token-5c{n}e" for n in range(4)]
TOKENS = "".join(f"{t} * glossaries tenant=t{n}\n" for n, t in enumerate(TENANTS)) + f"{attack.VICTIM} * tenant=b\n"
ENTRIES = 10_000


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with attack.served(tokens_text=TOKENS) as srv:
        yield srv


@pytest.fixture(scope="module")
def termbase() -> bytes:
    return tbx(ENTRIES)


async def post(http: aiohttp.ClientSession, port: int, token: str, gid: str, body: bytes, method: str = "POST") -> int:
    """An import of ``body`` (TBX) as ``gid``: a create, or (``PUT``) a replace of whatever is there."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-tbx+xml"}
    path = f"?id={gid}&source_language=en" if method == "POST" else f"/{gid}?source_language=en&revision=0"
    async with http.request(method, f"http://127.0.0.1:{port}/v1/glossaries{path}", data=body, headers=headers) as r:
        await r.read()
        return r.status


def test_twelve_imports_at_once_hold_four_files(server: ServerProcess, termbase: bytes) -> None:
    port = server.info.http_port
    assert port is not None

    async def imports(files: list[bytes]) -> list[int]:
        async with aiohttp.ClientSession() as http:
            return await asyncio.gather(
                *(post(http, port, TENANTS[k % 4], f"many{k}-{len(files)}", f) for k, f in enumerate(files))
            )

    # the parse processes start at the first files and stay (glossaries.parse_processes, 2): once
    with peak_rss_growth_mb(server.proc.pid, tree=True) as started:
        assert asyncio.run(imports([tbx(10), tbx(10)])) == [201, 201]
    with peak_rss_growth_mb(server.proc.pid, tree=True) as grown:
        answers = asyncio.run(imports([termbase] * 12))
    counts = {s: answers.count(s) for s in sorted(set(answers))}
    print(
        f"\nthe parse processes started: {started}; twelve 9.1 MB TBX imports at once from four tenants: {counts}, "
        f"the server and its processes grew {grown}"
    )
    assert set(counts) <= {201, 429} and 1 <= counts.get(201, 0) <= 4, counts
    # two processes that import the parser only (about 40 MB each), not the server's modules
    assert started["after_mb"] < 120, started
    # four files and two parses at a time: about 70 MB here in the server before the parse
    # processes (before, all twelve taken: about 140 MB)
    assert grown["mb"] < 200, grown


async def importing(port: int, token: str, gid: str, body: bytes, stop: asyncio.Event, statuses: list[int]) -> None:
    """``gid`` imported, then imported again without pause."""
    async with aiohttp.ClientSession() as http:
        statuses.append(await post(http, port, token, gid, body))
        while not stop.is_set():
            statuses.append(await post(http, port, token, gid, body, "PUT"))


async def under(server: ServerProcess, clients: int, body: bytes, pcm: Any) -> dict[str, Any]:
    stop = asyncio.Event()
    checks: list[float] = []
    statuses: list[int] = []
    port = server.info.http_port
    assert port is not None
    loops = [asyncio.create_task(check_loop(server.address, stop, checks))]
    loops += [
        asyncio.create_task(importing(port, TENANTS[k], f"busy{k}-{clients}", body, stop, statuses))
        for k in range(clients)
    ]
    try:
        late = await realtime_lateness(server.address, attack.VICTIM, pcm)
    finally:
        stop.set()
        await asyncio.gather(*loops)
    return {
        "late_s": summary(late),
        "check_s": summary(checks),
        "answers": {s: statuses.count(s) for s in sorted(set(statuses))},
    }


def test_imports_without_pause_leave_a_bystander_on_time(server: ServerProcess, termbase: bytes) -> None:
    pcm = speech()

    async def run() -> dict[str, Any]:
        return {"quiet": await under(server, 0, termbase, pcm), "4 tenants": await under(server, 4, termbase, pcm)}

    figures = asyncio.run(run())
    print("\n" + json.dumps(figures, indent=1))
    quiet, busy = figures["quiet"], figures["4 tenants"]
    assert set(busy["answers"]) <= {200, 201} and sum(busy["answers"].values()) > 4, busy
    assert busy["late_s"]["n"] == quiet["late_s"]["n"]
    # wide margins: the machine is shared (docs/security.md, issue 91, has the figures)
    assert busy["late_s"]["worst"] < quiet["late_s"]["worst"] + 1.5, busy
    assert busy["check_s"]["p50"] < 0.25, busy
