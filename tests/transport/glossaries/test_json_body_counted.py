"""A glossary's JSON body is counted before it is parsed, in a parse process bounded in memory
(docs/security.md, "Hardening 7: untrusted media", K4): ``POST /v1/glossaries`` with 16 MiB of
``{"entries": [{}, {}, ...]}`` (5.6 million empty objects) is refused (400) naming the count and
the bound, and the parse process that read it grows by a few MB. Before, ``json.loads`` made every
object first and only then counted the entries: the process grew 47 → 454 MB (here +400 MB or
more), in a process with no bound on its address space. A valid body still makes its glossary.

A real ``translate-svc serve`` (the test checkpoint, glossaries in SQLite) over aiohttp; the parse
processes are the server's children, read from /proc."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aiohttp
import pytest

from tests.support.attacks import glossaries as attack
from tests.support.proc import descendants, memory_kb, reset_peak
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(20)]

TOKEN = "counted-json-token-7b2e"
#: what the parse process may grow by for the refused body: the body itself (16 MiB, received as
#: it is) and its strings set aside, never the objects it states
BOUND_MB = 64


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    # one parse process, so the one that read the body is the one measured
    with attack.served(
        env={"TRANSLATE_SVC_GLOSSARIES__PARSE_PROCESSES": "1"}, tokens_text=f"{TOKEN} * glossaries tenant=k\n"
    ) as s:
        yield s


async def post(port: int, body: bytes) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{port}/v1/glossaries", data=body, headers=headers) as r:
            doc = await r.json()
            return r.status, str(doc["error"]["message"]) if r.status >= 400 else str(doc.get("id"))


def test_a_json_body_of_millions_of_objects_is_refused_before_they_are_made(server: ServerProcess) -> None:
    port = server.info.http_port
    assert port is not None
    # a valid body first: it is taken, and the parse process is started and kept
    assert asyncio.run(post(port, attack.json_body("small", 10))) == (201, "small")
    (parser,) = descendants(server.proc.pid)
    head = b'{"id": "many", "display_name": "many", "entries": ['
    empties = (16 * 1024 * 1024 - len(head) - 1) // 3  # "{}," each, the last without its comma
    body = head + b",".join([b"{}"] * empties) + b"]}"
    assert 16_000_000 < len(body) <= 16 * 1024 * 1024
    reset_peak(parser)
    before = memory_kb(parser)["VmRSS"]
    status, message = asyncio.run(post(port, body))
    grown_mb = (memory_kb(parser)["VmHWM"] - before) / 1024
    print(
        f"\nK4: a 16 MiB JSON body of empty objects: {status} {message[:90]}...; "
        f"the parse process grew {grown_mb:.1f} MB"
    )
    assert status == 400, message
    assert "objects, members and elements" in message and "glossaries.max_entries" in message, message
    assert grown_mb <= BOUND_MB, f"the parse process grew {grown_mb:.0f} MB"
