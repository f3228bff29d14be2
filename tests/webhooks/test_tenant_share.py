"""Issue 68 H6: the webhooks' queue is every tenant's, and one tenant flooding it while the receiver
is away must not cost another tenant its events. With ``webhooks.max_queued`` full, a new delivery
takes the place of the oldest of the tenant with the most waiting, so the flooding tenant loses its
own oldest, never the quiet tenant's; each drop is counted per tenant on ``/metrics`` and logged at
a bounded rate (a few lines a window, then one line summing the rest), not a line per event.

A real ``translate-svc serve`` (a tokens file with two tenants) and a real receiver that verifies
every delivery with the Standard Webhooks library; the queue in SQLite (the node's data dir) and in
a real ``redis-server``. The receiver is down while tenant ``flood`` runs 24 sessions and tenant
``quiet`` one, in the middle; then it comes back and the queue drains. Before: the quiet tenant's
``session.started`` and ``session.ended`` were dropped for good (a WARNING line each drop).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.metrics import Metrics
from tests.support.raw import channel
from tests.support.redis_server import redis_server
from tests.support.server_process import ServerProcess
from tests.support.waiting import eventually
from tests.support.webhook_receiver import Receiver, new_secret, receiving
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

FLOOD, QUIET = "hooks-flood-token-5e1a", "hooks-quiet-token-9c07"
MAX_QUEUED = 10
#: drop lines logged one by one in a window (``drops.DropLog``'s burst)
BURST = 5


@pytest.fixture(params=["sqlite", "redis"])
def queue(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Where the queue is: the environment that puts it there."""
    if request.param == "sqlite":
        yield {}
    else:
        with redis_server() as redis:
            yield {"TRANSLATE_SVC_CLUSTER__REDIS_URL": redis.url}


def serve(model: Path, tmp: Path, receiver: Receiver, queue: dict[str, str]) -> ServerProcess:
    tokens = tmp / "tokens"
    tokens.write_text(f"{FLOOD} * tenant=flood\n{QUIET} * tenant=quiet\n")
    env = {
        "TRANSLATE_SVC_AUTH__TOKENS_FILE": str(tokens),
        "TRANSLATE_SVC_SERVER__METRICS_PORT": "0",
        "TRANSLATE_SVC_WEBHOOKS__ENDPOINTS": json.dumps([{"url": receiver.url, "secret": receiver.secrets[0]}]),
        "TRANSLATE_SVC_WEBHOOKS__ALLOW_HTTP": "true",  # the receiver on loopback
        "TRANSLATE_SVC_WEBHOOKS__DATA_DIR": str(tmp / "data"),
        "TRANSLATE_SVC_WEBHOOKS__MAX_QUEUED": str(MAX_QUEUED),
        "TRANSLATE_SVC_WEBHOOKS__FIRST_BACKOFF_S": "0.2",
        "TRANSLATE_SVC_WEBHOOKS__MAX_BACKOFF_S": "1",
        **queue,
    }
    args = ["--model", str(model), "--host", "127.0.0.1", "--port", "0", "--test-translator", "stable"]
    return ServerProcess(args, env=env)


async def sessions(server: ServerProcess, token: str, n: int) -> None:
    """``n`` TranslateText calls of ``token``'s tenant, 4 at a time (each a session: started, ended)."""
    ch = channel(server.address)
    try:
        stub = pb_grpc.TranslatorStub(ch)
        req = pb.TranslateTextRequest(
            texts=["the meeting starts at nine"], source_language="eng", target_languages=["spa"]
        )
        for k in range(0, n, 4):
            calls = [
                stub.TranslateText(req, metadata=(("authorization", f"Bearer {token}"),), timeout=60)
                for _ in range(min(4, n - k))
            ]
            await asyncio.gather(*calls)
    finally:
        await ch.close()


async def dropped_of(metrics: Metrics, tenant: str) -> float:
    return await metrics.value(rf'translate_svc_webhook_dropped_total\{{reason="queue_full",tenant="{tenant}"\}}')


async def test_a_tenant_flooding_the_queue_loses_its_own_oldest_events_not_another_tenants(
    test_model_dir: Path, tmp_path: Path, queue: dict[str, str]
) -> None:
    async with receiving(new_secret()) as receiver:
        await receiver.stop()  # away: every delivery waits in the queue
        server = serve(test_model_dir, tmp_path, receiver, queue)
        try:
            assert server.info.metrics_port is not None
            metrics = Metrics(server.info.metrics_port)
            t0 = time.monotonic()
            await sessions(server, FLOOD, 12)  # 24 events: the queue is full after 5 sessions
            await sessions(server, QUIET, 1)
            await sessions(server, FLOOD, 12)

            async def written() -> bool:  # every event in the store (its thread writes after the call)
                every = r'translate_svc_webhook_dropped_total\{reason="queue_full"[^}]*\}'
                return await metrics.value(every) == 50 - MAX_QUEUED

            await eventually(written, "the 50 events written, 40 of them pushed out", deadline_s=60)
            await receiver.start()  # back: the queue drains

            async def drained() -> bool:
                return await metrics.value("translate_svc_webhook_queued") == 0 and bool(receiver.accepted)

            await eventually(drained, "the queue drained into the receiver", deadline_s=60)
            took = time.monotonic() - t0
            dropped = {tenant: await dropped_of(metrics, tenant) for tenant in ("flood", "quiet")}
        finally:
            server.stop()
    by_tenant: dict[str, list[dict[str, object]]] = {"flood": [], "quiet": []}
    for event in receiver.events():
        by_tenant[str(event["data"]["tenant"])].append(event)  # type: ignore[index]
    quiet = [e["type"] for e in by_tenant["quiet"]]
    drop_lines = [line for line in server.lines if "webhook" in line and "dropped" in line]
    print(
        f"H6 ({'redis' if queue else 'sqlite'}): delivered flood {len(by_tenant['flood'])} of 48 events, quiet "
        f"{sorted(quiet)} of 2; dropped on /metrics {dropped}; {len(drop_lines)} drop lines in {took:.1f} s"
    )
    assert sorted(quiet) == ["session.ended", "session.started"]
    assert len(by_tenant["flood"]) == MAX_QUEUED - 2
    assert dropped == {"flood": 48 - (MAX_QUEUED - 2), "quiet": 0}
    # the flooding tenant's oldest went first: what is left of it came after the quiet tenant's end
    quiet_end = next(e for e in by_tenant["quiet"] if e["type"] == "session.ended")["timestamp"]
    assert all(str(e["timestamp"]) >= str(quiet_end) for e in by_tenant["flood"])
    assert len(drop_lines) <= (BURST + 1) * (int(took // 10) + 1), drop_lines
    assert receiver.refused == []
