"""Issue 59: on ``serve --workers 2`` with no Redis, a tenant's caps are leases in the node's hub
(``session/tenants/leases.py``): the cap holds over both workers, and no number of tenants can fill a table.

Before: the node's counters were a fixed-size shared table (``serving/admission.py``): 1,024 names,
64 of them the node's, and a tenant's audio budget kept its name a minute after it was drawn, so
after 960 tenants' streams in a minute the next tenant was refused RESOURCE_EXHAUSTED ("this server
counts at most 960 tenant counters at once").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from tests.support.calls import own_channel
from tests.support.node import Node, node, worker_of
from tests.support.tokens import bearer
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(240)]

FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
#: more tenants than the old table had names for (960 tenant names)
TENANTS = 1100
CAPPED = "capped-token-0123456789abcdef"
PROBE = "probe-token-0123456789abcdef"


def token(i: int) -> str:
    return f"tenant-token-{i:05d}-0123456789"


@pytest.fixture(scope="module")
def two(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp("node-caps")
    tokens = folder / "tokens"
    lines = [f"{CAPPED} stream tenant=acme streams=3\n", f"{PROBE} stream tenant=probe\n"]
    # each tenant draws half a second of its 1 s a minute: its budget is not full again for 30 s
    lines += [f"{token(i)} stream tenant=t{i:05d} streams=2 audio_seconds_per_minute=1\n" for i in range(TENANTS)]
    tokens.write_text("".join(lines))
    env = {
        "TRANSLATE_SVC_AUTH__TOKENS_FILE": str(tokens),
        "TRANSLATE_SVC_LIMITS__CONFIG_TIMEOUT_MS": "600000",
        "TRANSLATE_SVC_LIMITS__IDLE_TIMEOUT_S": "600",
    }
    with node(test_model_dir, folder / "node.log", **env) as n:
        yield n


async def test_a_tenants_streams_cap_holds_over_both_workers(two: Node) -> None:
    stop = asyncio.Event()

    async def silent() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, target_languages=["spa"]))
        await stop.wait()

    # connections of their own, at least two on each worker (the kernel hashes each connection)
    on: dict[str, list[grpc.aio.Channel]] = {}
    channels: list[grpc.aio.Channel] = []
    calls: list[grpc.aio.StreamStreamCall] = []
    try:
        for _ in range(40):
            channel = own_channel(two.address)
            channels.append(channel)
            on.setdefault(await worker_of(two, channel, bearer(PROBE)), []).append(channel)
            if len(on) == 2 and all(len(c) >= 2 for c in on.values()):
                break
        first, second = (chans for _, chans in sorted(on.items()))
        for channel in (first[0], first[1], second[0]):  # 3 streams of acme over both workers
            call = pb_grpc.TranslatorStub(channel).StreamingTranslate(silent(), metadata=bearer(CAPPED))
            got = await asyncio.wait_for(call.read(), 30)
            assert got.WhichOneof("response") == "started", got
            calls.append(call)
        for channel in (first[0], second[1]):  # the fourth, on either worker
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await pb_grpc.TranslatorStub(channel).StreamingTranslate(silent(), metadata=bearer(CAPPED)).read()
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
            assert "tenant 'acme'" in (e.value.details() or "") and "streams=3" in (e.value.details() or "")
    finally:
        stop.set()
        for call in calls:
            call.cancel()
        for channel in channels:
            await channel.close()


async def test_more_tenants_than_the_old_table_held_are_each_admitted(two: Node) -> None:
    half_second = bytes(16000)  # 0.5 s of PCM16 silence: drawn from the tenant's budget as it ends

    async def one(stub: pb_grpc.TranslatorStub, i: int) -> grpc.StatusCode:
        async def talk() -> AsyncIterator[pb.StreamingTranslateRequest]:
            yield pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=FMT, target_languages=["spa"]))
            yield pb.StreamingTranslateRequest(audio=half_second)

        call = stub.StreamingTranslate(talk(), metadata=bearer(token(i)))
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as e:
            return e.code()
        return await call.code()

    channels = [own_channel(two.address) for _ in range(4)]
    try:
        stubs = [pb_grpc.TranslatorStub(ch) for ch in channels]
        codes: dict[grpc.StatusCode, int] = {}
        for start in range(0, TENANTS, 20):
            got = await asyncio.gather(*(one(stubs[i % 4], i) for i in range(start, min(TENANTS, start + 20))))
            for code in got:
                codes[code] = codes.get(code, 0) + 1
        assert codes == {grpc.StatusCode.OK: TENANTS}, codes
    finally:
        for channel in channels:
            await channel.close()
