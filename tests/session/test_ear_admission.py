"""Issue 87 J1: streams with the ear (noise suppression, speaker labels) are counted against a cap
of the process (``limits.max_ear_streams``) and of their tenant (``ear_streams=`` in the tokens
file): beyond one, RESOURCE_EXHAUSTED naming it, with a retry hint; a tenant allowed none is
refused (PERMISSION_DENIED) saying what to ask instead. Streams without the ear are not counted, and
an ear stream's count is given back when it ends. Before the fix every one of them was admitted.

A real server on loopback (tokens required, the fake runner as its model), raw gRPC clients whose
streams hold open after their config."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from tests.support.calls import retry_ms
from tests.support.fake_runner import FakeRunner
from tests.support.live_server import LiveServer, make_settings, serving
from tests.support.stepped_call import FMT, NO_MODEL
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

CAPPED, NONE, FREE = "ear-capped-token-4f1a", "ear-none-token-8c2d", "ear-free-token-2b7e"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LiveServer]:
    tokens = tmp_path_factory.mktemp("ear") / "tokens"
    tokens.write_text(
        f"{CAPPED} stream tenant=capped ear_streams=1\n{NONE} stream tenant=none ear_streams=0\n{FREE} * tenant=free\n"
    )
    settings = make_settings(NO_MODEL)
    settings.auth.tokens_file = tokens
    settings.limits.max_ear_streams = 3
    runner = FakeRunner()
    async with serving(settings, warmup=False, runner_factory=lambda: runner) as live:
        yield live


def config(*, noise: bool = False, speakers: int = 0) -> pb.StreamingConfig:
    return pb.StreamingConfig(
        format=FMT,
        target_languages=["spa"],
        noise_suppression=pb.NOISE_SUPPRESSION_RNNOISE if noise else pb.NOISE_SUPPRESSION_OFF,
        speakers=speakers,
    )


class Held:
    """A stream sent its config and held open until ``end``: whether it started, or its refusal."""

    def __init__(self, live: LiveServer, token: str, cfg: pb.StreamingConfig) -> None:
        self._release = asyncio.Event()
        self.call = live.stub.StreamingTranslate(self._requests(cfg), metadata=bearer(token), timeout=60)

    async def _requests(self, cfg: pb.StreamingConfig) -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=cfg)
        await self._release.wait()

    async def started(self) -> bool:
        return bool((await self.call.read()).HasField("started"))

    async def refusal(self) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await self.call.read()
        return e.value

    async def end(self) -> None:
        self._release.set()
        while (await self.call.read()) is not grpc.aio.EOF:
            pass


async def test_the_process_cap_refuses_the_next_ear_stream_naming_it_and_frees_on_end(live: LiveServer) -> None:
    first = [Held(live, FREE, config(noise=True)), Held(live, FREE, config(speakers=2))]
    first.append(Held(live, FREE, config(noise=True, speakers=8)))
    assert [await h.started() for h in first] == [True, True, True]
    for cfg in (config(noise=True), config(speakers=2)):
        e = await Held(live, FREE, cfg).refusal()
        message = e.details() or ""
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, message
        assert "limits.max_ear_streams" in message and "3 streams with noise suppression" in message, message
        assert retry_ms(e) == 1000
    plain = Held(live, FREE, config())  # a stream without the ear is not counted
    assert await plain.started()
    await first[0].end()  # its count given back as it ends
    again = Held(live, FREE, config(noise=True))
    assert await again.started()
    for h in (*first[1:], plain, again):
        await h.end()


async def test_a_tenants_ear_streams_cap_from_the_tokens_file(live: LiveServer) -> None:
    one = Held(live, CAPPED, config(noise=True))
    assert await one.started()
    e = await Held(live, CAPPED, config(speakers=2)).refusal()
    message = e.details() or ""
    assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, message
    assert "tenant 'capped'" in message and "ear_streams=1 in the tokens file" in message, message
    plain = Held(live, CAPPED, config())
    assert await plain.started()
    await one.end()
    again = Held(live, CAPPED, config(speakers=2))
    assert await again.started()
    for h in (plain, again):
        await h.end()


async def test_a_tenant_allowed_no_ear_is_refused_saying_what_to_ask_instead(live: LiveServer) -> None:
    for cfg in (config(noise=True), config(speakers=2)):
        e = await Held(live, NONE, cfg).refusal()
        message = e.details() or ""
        assert e.code() == grpc.StatusCode.PERMISSION_DENIED, message
        assert "noise_suppression" in message and "speakers" in message and "ear_streams=0" in message, message
    plain = Held(live, NONE, config())
    assert await plain.started()
    await plain.end()
