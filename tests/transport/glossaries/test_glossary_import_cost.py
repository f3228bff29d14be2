"""What glossary creates and imports cost everyone else (issue 87 J4): a ``translate-svc serve``
on the test checkpoint, glossaries in SQLite, a tenant ``a`` replacing 10,000-entry JSON
glossaries over the HTTP port without pause, or importing TBX files that only open elements, while
tenant ``b`` streams 11 s of speech in real time.

Before, a JSON body was decoded, converted and checked on the event loop (about 0.3 s for 10,000
entries): four clients made ``b``'s results about 1.5 s late; and a TBX's elements nested without
bound: twelve 4 MiB imports at once took the server from 180 MB to 1.7 GB. Now bodies are parsed
and checked on the glossaries' own threads (``glossaries.threads``, 2), and a TBX nesting more
than 32 deep is refused there, at the bound.
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
from tests.support.proc import peak_rss_growth_mb
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(120), pytest.mark.serial]

ENTRIES = 10_000
CLIENTS = 4
FOUR_MIB = 4 * 1024 * 1024


#: issue 91's import slots (2 a tenant, 4 a process by default) would refuse most of these clients
#: at once; the attacks here are on the parse (issue 87 J4), so the slots let them all in
SLOTS = {"TRANSLATE_SVC_GLOSSARIES__MAX_IMPORTS": "16", "TRANSLATE_SVC_GLOSSARIES__MAX_IMPORTS_PER_TENANT": "16"}


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with attack.served(SLOTS) as srv:
        yield srv


async def replacing(port: int, gid: str, stop: asyncio.Event, statuses: list[int]) -> None:
    """Create ``gid``, then replace it with a new 10,000-entry JSON body without pause."""
    body = attack.json_body(gid, ENTRIES, chars=64)
    async with aiohttp.ClientSession() as http:
        statuses.append((await attack.http_post(http, port, body, "application/json"))[0])
        headers = {"Authorization": f"Bearer {attack.ATTACKER}", "Content-Type": "application/json"}
        url = f"http://127.0.0.1:{port}/v1/glossaries/{gid}"
        while not stop.is_set():
            async with http.put(url, data=body, headers=headers) as r:
                await r.read()
                statuses.append(r.status)


async def under(server: ServerProcess, clients: int, pcm: Any) -> dict[str, Any]:
    stop = asyncio.Event()
    checks: list[float] = []
    statuses: list[int] = []
    port = server.info.http_port
    assert port is not None
    loops = [asyncio.create_task(check_loop(server.address, stop, checks))]
    loops += [asyncio.create_task(replacing(port, f"j{k}-{clients}", stop, statuses)) for k in range(clients)]
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


def test_json_creates_leave_a_bystander_on_time(server: ServerProcess) -> None:
    pcm = speech()

    async def run() -> dict[str, Any]:
        return {"quiet": await under(server, 0, pcm), f"{CLIENTS} clients": await under(server, CLIENTS, pcm)}

    figures = asyncio.run(run())
    print("\n" + json.dumps(figures, indent=1))
    quiet, attacked = figures["quiet"], figures[f"{CLIENTS} clients"]
    assert set(attacked["answers"]) <= {200, 201} and sum(attacked["answers"].values()) > CLIENTS
    assert attacked["late_s"]["n"] == quiet["late_s"]["n"]
    # wide margins: the machine is shared (before, in two runs: 8.3 s and 1.7 s late; Check 2.8 s and
    # 1.0 s at worst, 0.64 s at the median; after: 0.03 s at the median; see docs/security.md)
    assert attacked["late_s"]["worst"] < quiet["late_s"]["worst"] + 1.0, attacked
    assert attacked["check_s"]["worst"] < quiet["check_s"]["worst"] + 0.5, attacked
    assert attacked["check_s"]["p50"] < 0.25, attacked


def test_parallel_deep_tbx_imports_are_refused_at_the_bound_and_cost_little_memory(server: ServerProcess) -> None:
    body = attack.deep_tbx(FOUR_MIB)
    port = server.info.http_port
    assert port is not None

    async def imports() -> list[tuple[int, str]]:
        async with aiohttp.ClientSession() as http:
            return await asyncio.gather(
                *(
                    attack.http_post(http, port, body, "application/x-tbx+xml", f"?id=deep{k}&source_language=en")
                    for k in range(12)
                )
            )

    with peak_rss_growth_mb(server.proc.pid) as grown:
        answers = asyncio.run(imports())
    print(f"\n12 deep 4 MiB TBX imports at once: {sorted({a[0] for a in answers})}, RSS grew {grown}")
    assert all(status == 400 for status, _ in answers), answers
    assert all("nests elements more than 32 deep" in message for _, message in answers), answers[0]
    assert grown["mb"] < 300, grown
