"""Uploads that decode for hours never starve another tenant, and never hold a stopping server
(docs/security.md, "Hardening 7: untrusted media", K1): a tenant keeps eight ``complete`` calls in
flight on a Matroska file of DTX Opus that states no length (7 h in 8.8 MB:
``hostile_media.lengthless_opus_mkv``), each a job of its own, from a client process of its own
(``tests/support/attacks/media.py``). Meanwhile another tenant makes a job of jfk.flac (create, a
part, ``complete``: 202) and calls the gRPC port (health, ListLanguages, a one-second stream: all
OK); then SIGTERM stops the server within its drain.

Before, each probe decoded the file through on the event loop's default executor, which also
writes every job part: the other tenant's part waited behind six probes of minutes each (here:
no answer within the two minutes it is given), and SIGTERM did not stop the server (its default
executor's threads are joined at exit: not within a minute here). Now the probes run in media
processes, two of the tenant's at a time (``media.max_processes_per_tenant``; its other
completes are 429 with Retry-After), each bounded in CPU and read to ``jobs.max_audio_s`` at
most, and a stop ends them at once. No timing is asserted but the bounds a stuck server misses.

A real ``translate-svc serve`` (the test checkpoint, jobs on, a 2 s grace)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support import hostile_media
from tests.support.attacks.bystander import probe
from tests.support.attacks.process import AttackProcess
from tests.support.jobs import base
from tests.support.server_process import ServerProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow(90)]

ATTACKER = "lengthless-attacker-token-51c3"
OTHER = "lengthless-other-token-9e04"
#: the other tenant's job is answered within this (before: no answer after minutes)
ANSWERED_S = 120
#: the server's stop after SIGTERM, at most: its grace (2 s) and its engine's stop (before: not in 60 s)
STOPPED_S = 30


@pytest.fixture(scope="module")
def server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("lengthless")
    tokens = tmp / "tokens"
    tokens.write_text(f"{ATTACKER} * jobs tenant=attacker jobs=16 job_hours=1000\n{OTHER} * jobs tenant=other\n")
    started = ServerProcess(
        [
            *("--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"),
            *("--tokens-file", str(tokens)),
        ],
        env={
            "TRANSLATE_SVC_JOBS__DIR": str(tmp / "jobs"),
            "TRANSLATE_SVC_JOBS__QUIET_WAIT_S": "0",
            "TRANSLATE_SVC_MEDIA__NICENESS": "10",  # the product's, which the suite's servers lower
        },
    )
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.kill()
            started.proc.wait()
        started.stop()


async def other_tenants_job(server: ServerProcess, audio: bytes) -> tuple[int, int]:
    """The other tenant's job of ``audio``: its part's status and its complete's."""
    headers = {"Authorization": f"Bearer {OTHER}"}
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
        async with http.post(base(server), json={"source_language": "eng", "target_languages": ["spa"]}) as r:
            job = await r.json()
            assert r.status == 201, job
        async with http.put(f"{base(server)}/{job['id']}/audio", data=audio) as r:
            part = r.status
        async with http.post(f"{base(server)}/{job['id']}/complete") as r:
            return part, r.status


def test_completes_on_hours_of_lengthless_audio_leave_another_tenant_served_and_the_server_stoppable(
    server: ServerProcess, shared_audio: Path, tmp_path: Path
) -> None:
    k1 = hostile_media.lengthless_opus_mkv(tmp_path / "k1.mkv", 7.0)
    port = server.info.http_port
    assert port is not None
    attack = AttackProcess(
        "media", "completes", *("--http-port", str(port), "--token", ATTACKER, "--file", str(k1)),
        *("--jobs", "8", "--seconds", "600"), result_s=120,
    )  # fmt: skip
    try:
        asyncio.run(attack.started())
        audio = (shared_audio / "jfk.flac").read_bytes()

        async def served() -> tuple[tuple[int, int], dict[str, object]]:
            async with asyncio.timeout(ANSWERED_S):
                return await other_tenants_job(server, audio), await probe(server.address, OTHER)

        t = time.monotonic()
        (part, completed), calls = asyncio.run(served())
        print(
            f"\nK1: the other tenant's part {part}, complete {completed} ({time.monotonic() - t:.1f} s with its "
            f"gRPC calls: {calls})"
        )
        assert (part, completed) == (200, 202)
        assert all(c["code"] == "OK" for c in calls.values()), calls  # type: ignore[index]
        t = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(STOPPED_S + 30)
        except subprocess.TimeoutExpired:
            pass
        stopped_s = time.monotonic() - t
        got = asyncio.run(attack.result())
        print(f"SIGTERM: stopped in {stopped_s:.1f} s (exit {server.proc.poll()}); the attacker saw {got}")
        assert server.proc.poll() is not None and stopped_s <= STOPPED_S, f"not stopped {stopped_s:.0f} s after SIGTERM"
        assert got["statuses"].get("429", 0) >= 1, got  # the tenant's share: its other completes waited
    finally:
        attack.stop()
