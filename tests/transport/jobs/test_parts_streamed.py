"""Issue 87 J2: an upload's parts are written to disk as they come, and a part that stalls is cut.
Before, a part (``PUT /v1/jobs/<id>/audio``, up to ``jobs.max_part_bytes``, 16 MiB) was read
whole into memory before anything was done with it, and held there until ``jobs.part_timeout_s``
(120 s): 96 stalled 16 MiB parts grew the server by 1.54 GB (about 8 GB at the port's connection
cap). Now a part is admitted first (one of its tenant's ``limits.http_max_held_requests_per_tenant``,
else 429 unread), written to a file of its own as it comes, at least
``limits.http_min_transfer_bytes_per_s`` on average and never pausing longer than
``limits.http_header_timeout_s`` (else 408), then appended.

A ``translate-svc serve`` process (the test checkpoint): 8 parts of one token, each declaring
16 MiB, sending 12 MiB and stalling; the server's peak resident memory meanwhile (``/proc``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.attacks.jobs import create_job, stalled_part, token_line
from tests.support.proc import peak_rss_growth_mb
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(60)]

TOKEN = "parts-flood-token-3b8e5c1a"
PARTS = 8
DECLARED = 16 * 1024 * 1024
SENT = 12 * 1024 * 1024
#: how long a part may take, all told, on this server (the bound of the part that stalls)
PART_TIMEOUT_S = 60


@pytest.fixture
def server(test_model_dir: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    tokens = tmp_path / "tokens"
    tokens.write_text(token_line(TOKEN, "flood", "jobs=50"))
    env = {
        "TRANSLATE_SVC_AUTH__TOKENS_FILE": str(tokens),
        "TRANSLATE_SVC_JOBS__DIR": str(tmp_path / "jobs"),
        "TRANSLATE_SVC_JOBS__PART_TIMEOUT_S": str(PART_TIMEOUT_S),
    }
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"]
    s = ServerProcess(args, env=env)
    try:
        yield s
    finally:
        s.stop()


async def test_stalled_parts_are_refused_or_cut_and_never_held_in_memory(server: ServerProcess) -> None:
    port = server.info.http_port
    assert port is not None
    base = f"http://127.0.0.1:{port}/v1/jobs"
    async with aiohttp.ClientSession() as http:
        jobs = [await create_job(http, base, TOKEN) for _ in range(PARTS)]
    loop = asyncio.get_running_loop()
    began = loop.time()
    with peak_rss_growth_mb(server.proc.pid) as grown:
        answers = await asyncio.wait_for(
            asyncio.gather(*(stalled_part(port, f"/v1/jobs/{job['id']}/audio", TOKEN, DECLARED, SENT) for job in jobs)),
            PART_TIMEOUT_S + 30,
        )
    statuses = sorted(status for status, _ in answers)
    last_s = max(at for _, at in answers) - began
    print(
        f"\nJ2 stalled parts: {PARTS} x {SENT >> 20} MiB sent of {DECLARED >> 20} MiB: server peak RSS growth "
        f"{grown['mb']} MB; answered {statuses}, the last after {last_s:.1f} s"
    )
    assert grown["mb"] < PARTS * (SENT >> 20) / 3, grown  # before: at least the 96 MB received
    assert set(statuses) <= {408, 429} and 408 in statuses, statuses
    assert last_s < PART_TIMEOUT_S / 2, last_s  # cut as they stall, not at jobs.part_timeout_s
