"""With ``cluster.redis_url`` set the webhooks' queue is in Redis, one for every pod (issue 61: "in
Redis when the service is clustered"). Two real ``translate-svc serve`` processes, each with a data
dir of its own (two pods), share a real ``redis-server`` run with an append-only file; a real
receiver verifies every delivery with the Standard Webhooks library:

- events made on both servers arrive once each (one delivery per webhook-id: two pods taking from
  one queue never both send a delivery);
- a server killed with SIGKILL while its deliveries wait (the receiver down) and a stream is open
  on it: the other server delivers them once the receiver is back, and ends that stream's session
  from its last checkpoint (``session.ended``, ``ending: lost``);
- Redis killed and started again meanwhile (its append-only file synced on every write) keeps the
  queue;
- ``translate-svc usage --redis-url`` counts every session of both servers once.

Before (each server queued on its own disk), the killed server's events never arrived.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from tests.support.raw import channel
from tests.support.redis_server import RedisServer, redis_server
from tests.support.server_process import ServerProcess
from tests.support.webhook_receiver import Receiver, new_secret, receiving
from translate_svc import cli
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(90)]


def serve(model: Path, data_dir: Path, receiver: Receiver, redis: RedisServer) -> ServerProcess:
    return ServerProcess(
        ["--model", str(model), "--host", "127.0.0.1", "--port", "0", "--test-translator", "stable"],
        env={
            "TRANSLATE_SVC_CLUSTER__REDIS_URL": redis.url,
            "TRANSLATE_SVC_WEBHOOKS__ENDPOINTS": json.dumps([{"url": receiver.url, "secret": receiver.secrets[0]}]),
            "TRANSLATE_SVC_WEBHOOKS__DATA_DIR": str(data_dir),
            "TRANSLATE_SVC_WEBHOOKS__ALLOW_HTTP": "true",  # the receiver on loopback
            "TRANSLATE_SVC_WEBHOOKS__LEASE_S": "0.5",
            "TRANSLATE_SVC_WEBHOOKS__TIMEOUT_S": "1",  # a taken delivery is held 6 s (timeout + 5)
            "TRANSLATE_SVC_WEBHOOKS__FIRST_BACKOFF_S": "0.2",
            "TRANSLATE_SVC_WEBHOOKS__MAX_BACKOFF_S": "1",
        },
    )


async def texts(server: ServerProcess, n: int) -> None:
    """``n`` TranslateText calls (each a session: one session.started, one session.ended)."""
    ch = channel(server.address)
    try:
        stub = pb_grpc.TranslatorStub(ch)
        for _ in range(n):
            req = pb.TranslateTextRequest(texts=["the meeting starts at nine"], source_language="eng")
            req.target_languages.append("spa")
            await stub.TranslateText(req, timeout=60)
    finally:
        await ch.close()


async def open_stream(server: ServerProcess) -> grpc.aio.Channel:
    """A real-time stream left open on ``server`` (its session started); closing the channel ends it."""
    ch = channel(server.address)
    cfg = pb.StreamingConfig(format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000))
    cfg.target_languages.append("spa")
    forever = asyncio.Event()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=cfg)
        await forever.wait()

    call = pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(), timeout=120)
    assert (await asyncio.wait_for(call.read(), 30)).HasField("started")
    return ch


def ids_accepted(receiver: Receiver) -> Counter[str]:
    return Counter(d.headers["webhook-id"] for d in receiver.accepted)


async def test_pods_share_one_queue_that_outlives_a_killed_pod_and_a_redis_restart(
    test_model_dir: Path, tmp_path: Path
) -> None:
    async with receiving(new_secret()) as receiver:
        with redis_server(persist=True) as redis:
            a = await asyncio.to_thread(serve, test_model_dir, tmp_path / "a", receiver, redis)
            b = None
            try:
                b = await asyncio.to_thread(serve, test_model_dir, tmp_path / "b", receiver, redis)
                await asyncio.gather(texts(a, 3), texts(b, 3))
                await receiver.wait_for(lambda r: len(r.events()) == 12, 60)
                await asyncio.sleep(2.0)  # a second delivery of any of them would arrive meanwhile
                assert set(ids_accepted(receiver).values()) == {1}, ids_accepted(receiver)
                first = set(ids_accepted(receiver))

                await receiver.stop()  # down: a's deliveries fail and wait in the queue
                await texts(a, 2)
                stream = await open_stream(a)  # and a session open on a when it dies
                await asyncio.sleep(1.5)
                a.proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(a.proc.wait, 30)
                await stream.close()
                redis.kill()  # and Redis dies too: its append-only file keeps the queue
                await asyncio.to_thread(redis.start)
                await receiver.start()  # back: b delivers what a left
                await receiver.wait_for(lambda r: len(r.events()) == 18, 60)
            finally:
                a.stop()
                if b is not None:
                    await asyncio.to_thread(b.stop)
            # the usage records are in Redis too: every session of both servers, once
            out = CliRunner().invoke(cli.app, ["usage", "--redis-url", redis.url, "--json"])
            assert out.exit_code == 0, out.output
            assert sum(json.loads(line)["sessions"] for line in out.output.splitlines()) == 9
    later = set(ids_accepted(receiver)) - first
    assert len(later) == 6
    assert len(receiver.events("session.ended")) == len(receiver.events("session.started")) == 9
    (lost,) = [e["data"] for e in receiver.events("session.ended") if e["data"]["ending"] == "lost"]
    assert (lost["door"], lost["reason"]) == ("StreamingTranslate", "process_exited")
    assert receiver.refused == []
