"""Issue 52 (left from issue 34): a token-less client that keeps reopening half-sent HTTP requests
does not keep a token holder's WebSocket out. A real ``translate-svc serve`` process (its memory
read from /proc) whose HTTP port takes ``CAP`` connections; the flooder (a process of its own) keeps more than that
open from 127.0.0.1, reopening each as the server closes it, while a token holder opens sessions from
127.0.0.2 (another machine, as far as the server can tell) and another tenant's gRPC calls and
health ``Check`` are timed. Before the fix every session was answered 503: the cap was full of
half-sent requests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.attacks.process import AttackProcess
from tests.support.attacks.unread import ws_session
from tests.support.proc import memory_kb
from tests.support.server_process import ServerProcess
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(35)]

HOLDER = "http-flood-holder-4b8e2d"  # tenant b: opens sessions
CAP = 64  # limits.http_max_connections
FLOODERS = 2 * CAP  # half-sent requests the flooder keeps open at once
TRIES = 6
ON_TIME_S = 3.0
#: what the flood may cost the server: a waiting connection holds its head so far (a few hundred
#: bytes here, 64 x 8 KiB at most) and aiohttp's protocol, for CAP connections
RSS_BOUND_MB = 32


@pytest.fixture(scope="module")
def server(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tokens = tmp_path_factory.mktemp("tokens") / "tokens"
    tokens.write_text(f"{HOLDER} * tenant=b\n")
    srv = ServerProcess(
        [
            *("--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0"),
            *("--tokens-file", str(tokens)),
        ],
        env={"TRANSLATE_SVC_LIMITS__HTTP_MAX_CONNECTIONS": str(CAP)},
    )
    try:
        yield srv
    finally:
        srv.stop()


async def _other_tenant(port: int, worst: list[float]) -> None:
    """Health ``Check`` and tenant b's ``ListLanguages`` every 0.2 s (raises if one fails)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        health, stub = health_pb2_grpc.HealthStub(ch), pb_grpc.TranslatorStub(ch)
        while True:
            t0 = time.perf_counter()
            status = await health.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            metadata = (("authorization", f"Bearer {HOLDER}"),)
            await stub.ListLanguages(pb.ListLanguagesRequest(), metadata=metadata, timeout=10)
            worst[0] = max(worst[0], time.perf_counter() - t0)
            await asyncio.sleep(0.2)


async def test_half_sent_requests_reopened_by_a_tokenless_client_keep_no_token_holder_out(
    server: ServerProcess, tmp_path: Path
) -> None:
    port = server.info.http_port
    assert port is not None
    before = memory_kb(server.info.pid)["VmRSS"]
    worst = [0.0]
    stop_file = tmp_path / "stop"
    # the flood in a process of its own: its connections' churn is not the timed client's loop
    flood = AttackProcess(
        "half_sent",
        *("--port", str(port), "--flooders", str(FLOODERS), "--started-at", str(4 * CAP)),
        *("--stop-file", str(stop_file)),
    )
    timing = asyncio.create_task(_other_tenant(server.port, worst))
    got: list[str] = []
    try:
        await flood.started()  # the cap is full, and its connections churn
        for _ in range(TRIES):
            got.append(await ws_session(port, HOLDER, "127.0.0.2"))
            await asyncio.sleep(0.5)
        grown_mb = (memory_kb(server.info.pid)["VmRSS"] - before) / 1024
        assert not timing.done(), timing  # no call of the other tenant failed
        stop_file.touch()
        churned = (await flood.result())["opened"]
    finally:
        stop_file.touch()
        flood.stop()
        timing.cancel()
        await asyncio.gather(timing, return_exceptions=True)
    assert got == ["ok"] * TRIES, got
    assert churned > 4 * CAP + TRIES  # the flood went on while the sessions opened
    assert worst[0] < ON_TIME_S, f"the other tenant's Check + ListLanguages took {worst[0]:.2f} s"
    assert grown_mb < RSS_BOUND_MB, f"the server's memory grew {grown_mb:.1f} MB"
