"""What imports of glossaries as large as users keep cost everyone else (issue 91, point 9): a
``translate-svc serve`` on the test checkpoint, glossaries in SQLite, four tenants importing the
10,000-entry TBX (9.1 MB, ``tests/support/glossary_files.py``) over the HTTP port.

Files of 16 MiB held whole while they come and while they are parsed would let a process hold
one per admitted call (64 a tenant, any number of tenants): now a process takes at most
``glossaries.max_imports`` (4) at once, ``max_imports_per_tenant`` (2) of one tenant, the rest
refused at once with a retry delay. Twelve imports at once from four tenants: four are taken, and
the server's memory grows by what four files and their parses hold; an import's work is mostly
done outside the server's interpreter lock (the parse is in the glossaries' own processes:
translate_svc/sandbox/), which kept a bystander's results on time while imports ran without pause.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest

from tests.support.attacks import glossaries as attack
from tests.support.glossary_files import tbx
from tests.support.proc import peak_rss_growth_mb
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(60)]

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


def test_an_import_does_most_of_its_work_outside_the_server_s_lock(server: ServerProcess, termbase: bytes) -> None:
    """What importing the 10,000-entry TBX costs under the server's interpreter lock (its own
    process's CPU: the body, the parse's answer loaded, the entries checked and stored) against
    its parse, outside it: CPU time, so the machine's load does not move it (under four busy
    loops the parse processes, at nice +10, finish a handful of imports while a bystander's 11 s
    stream runs: no sure attack to time). The bystander's own figures: docs/security.md (issue 91)."""
    port = server.info.http_port
    assert port is not None

    async def imports() -> dict[str, float]:
        async with aiohttp.ClientSession() as http:
            assert await post(http, port, TENANTS[0], "cpu", termbase) == 201  # the processes start

            async def replace() -> None:
                assert await post(http, port, TENANTS[0], "cpu", termbase, "PUT") == 200

            return await attack.lock_cost(server, 3, replace)

    got = asyncio.run(imports())
    print(f"\nthe {ENTRIES}-entry TBX imported, its CPU inside the server's process and in its parse process: {got}")
    assert got["outside_s"] > 0, got  # the parse ran in a process of its own
    assert got["inside_s"] < got["outside_s"] / 4, got
