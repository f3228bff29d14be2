"""Issue 59, item 5: Redis lost mid-run and back, with two real servers (two pods: ``serve`` processes
of their own, each ready by its ready file) sharing a real ``redis-server`` that the test kills
(``kill -9``: it forgets everything) and starts again on the same port, under each choice of
``cluster.on_redis_loss``.

A room ``hall``: its speaker on server A, listeners on A and on B; and a two-party phone call
(Twilio's Media Streams, ``phone_carriers.FakeTwilio``) with both legs on A. The speaker talks
before the loss, during it and after Redis is back. What the test holds each choice to
(docs/rooms.md, "When the cluster store is lost"; docs/deploy.md, "Several pods"):

- the speaker admitted before the loss is never cut: its own stream gets every segment and ends OK;
- A's listener (the speaker's server) gets every segment, with the speaker's ids and spans, none
  missed, none twice;
- B's listener, whose feed from A broke, is ended UNAVAILABLE saying why (its chosen end: listen
  again; the backlog is resent);
- a new listener on B while Redis is down: ``refuse``: UNAVAILABLE with a RetryInfo, naming Redis
  and never its password; ``node``: admitted (on B alone); either way, once Redis is back (no
  restart of either server), B's listener (the one admitted alone, or a new one) gets the
  speaker's later segments with the speaker's own ids and spans;
- the two-party call on A keeps its media through the loss (both legs hear the other after the
  kill); the call across the servers is never cut, and its legs hear each other again once Redis
  is back;
- ``/metrics`` (``translate_svc_cluster_store_up``, ``..._transitions_total``), gRPC health
  (``translate_svc.cluster``; the Translator service NOT_SERVING while lost under ``refuse`` only;
  the overall status always SERVING) and the HTTP port's ``/healthz`` (200, degraded) and
  ``/readyz`` (503 under ``refuse``, 200 under ``node``) show the state.

Before (2fed573): nothing acted on ``on_redis_loss`` (a new listener was refused under both), no
metric or health said the store was lost, and the two legs on one server passed their media
through Redis, so they heard nothing while it was down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.calls import own_channel, retry_ms
from tests.support.metrics import Metrics
from tests.support.phone_carriers import CarrierLog, FakeTwilio, ulaw_bytes
from tests.support.redis_server import RedisServer
from tests.support.rooms import CHUNK, speaker_config
from tests.support.server_process import ServerProcess
from tests.support.speech import speech_pcm16
from tests.support.waiting import eventually
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function"), pytest.mark.slow(240)]

Span = tuple[int, int, int]
PASSWORD = "loss-test-pass"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Pod:
    """One server process and its clients."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        assert server.info.metrics_port is not None
        self.metrics = Metrics(server.info.metrics_port)
        self.channel = own_channel(server.address)
        self.stub = pb_grpc.TranslatorStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def status(self, service: str) -> int:
        return int((await self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status)

    async def store_up(self) -> float:
        return await self.metrics.value("translate_svc_cluster_store_up")

    async def http_health(self, path: str) -> tuple[int, dict[str, str]]:
        """The HTTP port's ``/healthz`` or ``/readyz``: its status code and JSON body."""
        url = f"http://127.0.0.1:{self.server.info.http_port}{path}"
        async with aiohttp.ClientSession() as http, http.get(url) as reply:
            return reply.status, await reply.json()

    def phone(self, query: str) -> str:
        return f"ws://127.0.0.1:{self.server.info.http_port}/v1/phone/twilio?{query}"


@pytest.fixture(params=["node", "refuse"])
def cluster(
    request: pytest.FixtureRequest, test_model_dir: Path
) -> Iterator[tuple[str, RedisServer, ServerProcess, ServerProcess]]:
    mode = request.param
    redis = RedisServer(password=PASSWORD)
    redis.start()
    args = ["--model", str(test_model_dir), "--host", "127.0.0.1", "--port", "0", "--http-port", "0", "--phone"]
    env = {
        "TRANSLATE_SVC_CLUSTER__REDIS_URL": redis.url,
        "TRANSLATE_SVC_CLUSTER__ON_REDIS_LOSS": mode,
        "TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable",
        "TRANSLATE_SVC_ROOMS__BACKLOG_S": "600",
        "TRANSLATE_SVC_SERVER__METRICS_PORT": "0",
    }
    try:
        a = ServerProcess(args, env=env)
        try:
            b = ServerProcess(args, env=env)
            try:
                yield mode, redis, a, b
            finally:
                b.stop()
        finally:
            a.stop()
    finally:
        redis.remove()


class Talk:
    """The speaker's audio in phases, each let go by the test (``go``): speech, then silence at
    real time until the next phase is let go (so the stream stays open between them)."""

    def __init__(self, phases: list[bytes]) -> None:
        self.phases = phases
        self.go = [asyncio.Event() for _ in phases]
        self.started = [0] * len(phases)  # own segments when each phase began
        self.own: list[pb.SegmentResult] = []

    async def requests(self) -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=speaker_config("hall", targets=("spa",)))
        silence = bytes(CHUNK)
        for k, pcm in enumerate(self.phases):
            while not self.go[k].is_set():
                yield pb.StreamingTranslateRequest(audio=silence)
                await asyncio.sleep(0.1)
            self.started[k] = len(self.own)
            for at in range(0, len(pcm), CHUNK):
                yield pb.StreamingTranslateRequest(audio=pcm[at : at + CHUNK])
                await asyncio.sleep(0.05)  # twice real time
        for _ in range(20):  # two seconds of silence: the last segment closes
            yield pb.StreamingTranslateRequest(audio=silence)
            await asyncio.sleep(0.1)

    async def run(self, stub: pb_grpc.TranslatorStub) -> pb.StreamEnd:
        ended = None
        async for msg in stub.StreamingTranslate(self.requests()):
            if msg.WhichOneof("response") == "segment":
                self.own.append(msg.segment)
            elif msg.WhichOneof("response") == "ended":
                ended = msg.ended
        assert ended is not None
        return ended


class Heard:
    """A listen as it goes: its live and backlog spans, and how it ended."""

    def __init__(self, call: Any) -> None:
        self.call = call
        self.started = asyncio.Event()
        self.live: list[Span] = []
        self.backlog: list[Span] = []
        self.error: grpc.aio.AioRpcError | None = None
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        try:
            async for ev in self.call:
                kind = ev.WhichOneof("event")
                if kind == "started":
                    self.started.set()
                elif kind == "segment":
                    seg = ev.segment
                    (self.backlog if ev.backlog else self.live).append((seg.segment_id, seg.start_ms, seg.end_ms))
        except grpc.aio.AioRpcError as e:
            self.error = e


def listen(pod: Pod) -> Heard:
    return Heard(pod.stub.Listen(pb.ListenRequest(room="hall", language="spa")))


def spans(own: list[pb.SegmentResult]) -> list[Span]:
    return [(s.segment_id, s.start_ms, s.end_ms) for s in own]


async def test_redis_lost_and_back_mid_run_cuts_nothing_admitted_and_rejoins_without_a_restart(
    cluster: tuple[str, RedisServer, ServerProcess, ServerProcess], shared_audio: Path
) -> None:
    mode, redis, server_a, server_b = cluster
    a, b = Pod(server_a), Pod(server_b)
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 24.0, 16000).tobytes()
    third = len(pcm) // 3 // CHUNK * CHUNK
    talk = Talk([pcm[:third], pcm[third : 2 * third], pcm[2 * third :]])
    call_audio = ulaw_bytes(speech_pcm16(shared_audio / "jfk.flac", 11.0, 8000))
    leg_a = FakeTwilio(a.phone("source=eng&target=spa"), custom={"call": "kept"})
    leg_b = FakeTwilio(a.phone("source=spa&target=eng"), custom={"call": "kept"})
    long_audio = call_audio + call_audio  # still talking once Redis is back
    leg_c = FakeTwilio(a.phone("source=eng&target=spa"), custom={"call": "across"})
    leg_d = FakeTwilio(b.phone("source=spa&target=eng"), custom={"call": "across"})
    try:
        here, there = listen(a), listen(b)
        for heard in (here, there):
            await asyncio.wait_for(heard.started.wait(), 30)
        assert await a.store_up() == 1 and await b.status("translate_svc.cluster") == SERVING
        speaker = asyncio.ensure_future(talk.run(a.stub))
        talk.go[0].set()
        legs = asyncio.gather(
            leg_a.call(call_audio, linger_s=6),
            leg_b.call(call_audio, linger_s=6),
            leg_c.call(long_audio, linger_s=6),
            leg_d.call(long_audio, linger_s=6),
        )

        # before the loss: B's listener hears A's speaker; each leg of the call hears the other
        async def crossing() -> bool:
            heard = [len(leg.log.marks) >= 1 for leg in (leg_a, leg_b, leg_c, leg_d)]
            return len(there.live) >= 1 and all(heard)

        await eventually(crossing, "B's listener and both legs hear across", 60)
        marks_at_loss = (len(leg_a.log.marks), len(leg_b.log.marks))
        redis.kill()
        killed = asyncio.get_running_loop().time()
        talk.go[1].set()  # the speaker goes on talking while Redis is down

        async def lost() -> bool:
            return await a.store_up() == 0 and await b.store_up() == 0

        await eventually(lost, "both servers see Redis lost", 20)
        noticed_s = asyncio.get_running_loop().time() - killed
        assert await a.status("") == SERVING  # liveness never follows the store
        assert await a.status("translate_svc.cluster") == NOT_SERVING
        assert await a.status("translate_svc.api.v1.Translator") == (NOT_SERVING if mode == "refuse" else SERVING)
        assert await b.http_health("/healthz") == (
            200,
            {"status": "degraded", "cluster_store": "down", "on_redis_loss": mode},
        )
        ready = await b.http_health("/readyz")
        assert ready == ((503, {**ready[1], "status": "not_serving"}) if mode == "refuse" else (200, ready[1]))
        assert ready[1]["cluster_store"] == "down"
        await asyncio.wait_for(there.task, 20)  # B's listener: its feed from A broke, it is told
        assert there.error is not None and there.error.code() == grpc.StatusCode.UNAVAILABLE
        assert "cluster store is unreachable" in (there.error.details() or "")
        late = listen(b)
        if mode == "refuse":
            await asyncio.wait_for(late.task, 20)
            assert late.error is not None and late.error.code() == grpc.StatusCode.UNAVAILABLE, late.error
            details = late.error.details() or ""
            assert f"127.0.0.1:{redis.port}" in details and PASSWORD not in details, details
            assert "cluster.on_redis_loss=refuse" in details
            assert retry_ms(late.error) > 0
        else:
            await asyncio.wait_for(late.started.wait(), 20)  # admitted on B alone

        redis.start()  # the same port, empty: no server restarts
        restarted = asyncio.get_running_loop().time()

        async def back() -> bool:
            return await a.store_up() == 1 and await b.store_up() == 1

        await eventually(back, "both servers rejoin Redis", 30)
        rejoined_s = asyncio.get_running_loop().time() - restarted
        print(
            f"{mode}: both servers saw Redis lost {noticed_s:.2f} s after kill -9, up {rejoined_s:.2f} s after restart"
        )
        across_at_back = (len(leg_c.log.marks), len(leg_d.log.marks))
        assert await a.status("translate_svc.api.v1.Translator") == SERVING
        assert await b.status("translate_svc.cluster") == SERVING
        assert await b.http_health("/readyz") == (
            200,
            {"status": "serving", "cluster_store": "up", "on_redis_loss": mode},
        )
        if mode == "refuse":
            late = listen(b)
            await asyncio.wait_for(late.started.wait(), 20)
        talk.go[2].set()
        ended = await asyncio.wait_for(speaker, 120)
        logs: list[CarrierLog] = await asyncio.wait_for(legs, 60)

        own = spans(talk.own)
        assert ended.reason == pb.StreamEnd.HALF_CLOSE, ended
        assert [s[0] for s in own] == list(range(len(own))) and len(own) >= 6, own
        after = own[talk.started[2] :]
        assert after, "the speaker said nothing after Redis came back"

        async def b_heard_all_after() -> bool:
            return late.live[-len(after) :] == after

        await eventually(b_heard_all_after, f"B's listener hears the speaker again: {late.live} vs {after}", 30)
        # its live segments: the speaker's last ones, as the speaker's own stream has them, each once
        assert len(late.live) >= len(after) and late.live == own[len(own) - len(late.live) :], (late.live, own)

        async def a_heard_all() -> bool:
            return len(here.live) >= len(own)

        await eventually(a_heard_all, "A's listener hears every segment", 30)
        assert here.live == own and here.backlog == [] and here.error is None, (here.live, own)

        for side, log, before in zip("ab", logs[:2], marks_at_loss, strict=True):
            assert log.close_code == 1000, (side, log.close_code)
            assert len(log.marks) > before, f"leg {side} heard nothing of the other after Redis was lost"
        # the call across the two servers was never cut, and its legs hear each other again once Redis is back
        for side, log, before in zip("cd", logs[2:], across_at_back, strict=True):
            assert log.close_code == 1000, (side, log.close_code)
            assert len(log.marks) > before, f"leg {side} (across servers) heard nothing after Redis came back"

        assert await a.metrics.value(r'translate_svc_cluster_store_transitions_total\{state="down"\}') >= 1
        assert await b.metrics.value(r'translate_svc_cluster_store_transitions_total\{state="up"\}') >= 1
    finally:
        for pod in (a, b):
            await pod.channel.close()
