"""A stream's open that a server ends with CANCELLED (as a stopping server ends the calls it holds,
the open among them) is tried on the next address, as UNAVAILABLE is; the SDK raised it before,
and a rolling restart's stream failed so under load (docs/ci-timings.md). A real gRPC server on
loopback whose StreamingTranslate ends every call CANCELLED (the stock servicer base, nothing of
ours), then a real translate server with a fake model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest
import pytest_asyncio

from tests.support.fake_runner import FakeRunner
from tests.support.live_server import make_settings, serving
from tests.support.stepped_call import NO_MODEL
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client import AsyncTranslateClient, RetryPolicy, TranslateError

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


class Cancelling(pb_grpc.TranslatorServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def StreamingTranslate(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls += 1
        await context.abort(grpc.StatusCode.CANCELLED, "the server is stopping")
        yield  # a generator, as the method is


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def cancelling() -> AsyncIterator[tuple[str, Cancelling]]:
    servicer = Cancelling()
    server = grpc.aio.server()
    pb_grpc.add_TranslatorServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(None)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def real() -> AsyncIterator[str]:
    async with serving(make_settings(NO_MODEL), warmup=False, runner_factory=FakeRunner) as live:
        yield f"127.0.0.1:{live.port}"


async def test_an_open_the_server_cancelled_goes_to_the_next_address(
    cancelling: tuple[str, Cancelling], real: str
) -> None:
    address, servicer = cancelling
    before = servicer.calls
    async with AsyncTranslateClient([address, real], timeout_s=60) as c, c.stream(targets=["spa"]) as s:
        await s.send(np.zeros(1600, np.int16))
        await s.close()
        async for _ in s:
            pass
    assert servicer.calls == before + 1


async def test_only_cancelling_addresses_fail_after_the_attempts_with_the_status(
    cancelling: tuple[str, Cancelling],
) -> None:
    address, servicer = cancelling
    before = servicer.calls
    retry = RetryPolicy(max_attempts=2, initial_backoff_s=0.01, max_backoff_s=0.01)
    async with AsyncTranslateClient([address], timeout_s=60, retry=retry) as c:
        with pytest.raises(TranslateError) as err:
            async with c.stream(targets=["spa"]):
                pass
    assert err.value.code is grpc.StatusCode.CANCELLED and err.value.attempts == 2
    assert servicer.calls == before + 2
