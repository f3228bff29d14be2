"""Health during a drain, through the wire (issue 24, item 5: paths that were implemented but never
went through the wire): ``TranslateServer.stop`` turns health NOT_SERVING at once while a live
stream is still served, on a real server on loopback whose model is ``FakeRunner``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import make_settings, serving
from tests.support.stepped_call import (
    NO_MODEL,
    WAIT_S,
    Call,
    assert_ended,
    assert_translated,
    call_config,
    jfk_then_silence,
    segments,
)
from translate_svc.transport.grpc.servicer import SERVICE_NAME

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(1)]


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return jfk_then_silence(shared_audio)


async def test_health_is_not_serving_from_the_start_of_a_drain_while_a_stream_is_still_served(
    jfk: np.ndarray,
) -> None:
    """``TranslateServer.stop`` (what SIGTERM runs) turns both health names NOT_SERVING at once, for
    a Watch already open and for a new Check, while a live stream is still being served: it gets
    the draining notice, and audio it sends after that is still translated until it half-closes."""
    settings = make_settings(NO_MODEL)
    settings.server.drain_s = 30.0  # the stream outlives every check below by far
    runner = FakeRunner()
    async with serving(settings, warmup=False, runner_factory=lambda: runner) as live:
        health = health_pb2_grpc.HealthStub(live.channel)
        names = ("", SERVICE_NAME)
        for name in names:
            assert (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status == SERVING
        watches = [health.Watch(health_pb2.HealthCheckRequest(service=name)) for name in names]
        call = Call(live.stub, call_config())
        stopping: asyncio.Task[None] | None = None
        try:
            for w in watches:
                assert (await w.read()).status == SERVING
            call.send(jfk[: 16000 * 3])  # the first phrase
            await call.until(lambda got: len(segments(got)) == 1)
            stopping = asyncio.create_task(live.server.stop(grace=30))
            async with asyncio.timeout(WAIT_S):
                for w in watches:
                    assert (await w.read()).status == NOT_SERVING
            for name in names:
                status = (await health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)).status
                assert status == NOT_SERVING, name
            await call.until(lambda got: any(r.HasField("draining") for r in got))
            assert not call.task.done()
            call.send(jfk[16000 * 3 : 16000 * 5])  # the second phrase, sent while draining
            await call.until(lambda got: len(segments(got)) == 2)
            call.close()
            got = await call.result()
        finally:
            for w in watches:
                w.cancel()  # an open Watch would hold the server's stop for its whole grace
            call.cancel()
            if stopping is not None:
                await asyncio.wait_for(stopping, WAIT_S)
    segs = segments(got)
    for s in segs:
        assert_translated(s)
    assert segs[1].start_ms >= 3000
    kinds = [r.WhichOneof("response") for r in got]
    assert kinds.index("draining") < kinds.index("segment", kinds.index("segment") + 1)  # the second came after it
    assert_ended(got, 2)
