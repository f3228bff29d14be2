"""``serve --workers 2 --mcp`` (issue 62; a real node: supervisor, engine process, two workers and
the node's cluster hub, on loopback): the endpoint keeps no MCP session, so any worker answers any
request of a client, in either protocol era, and a room's state is the node's. A gRPC speaker
holds a room open on one worker; MCP clients, each on a connection of its own (the kernel spreads
them over both workers), ask ``room_status``: the worker of the speaker lists it among its own
speakers, the other among the speakers elsewhere, and both answers come (which worker answered is
read from that, never assumed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client

from tests.support.calls import own_channel
from tests.support.node import Node, node
from tests.support.rooms import speaker_config
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

ROOM = "across-workers"
#: connections asked before both workers must have answered (both answer 1 in 2 at random)
MOST = 40


@pytest.fixture(scope="module")
def two(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    log = tmp_path_factory.mktemp("mcp-node") / "node.log"
    env = {
        "TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable",
        "TRANSLATE_SVC_SERVER__HTTP_PORT": "0",
        "TRANSLATE_SVC_MCP__ENABLED": "true",
    }
    with node(test_model_dir, log, **env) as n:
        yield n


async def test_any_worker_answers_and_sees_the_nodes_room(two: Node) -> None:
    assert two.http_port is not None
    url = f"http://127.0.0.1:{two.http_port}/mcp"
    speaking = asyncio.Event()
    done = asyncio.Event()

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=speaker_config(ROOM))
        await done.wait()  # the speaker stays in the room until the test is done

    async with own_channel(two.address) as channel:
        call = pb_grpc.TranslatorStub(channel).StreamingTranslate(requests())

        async def speaker() -> None:
            async for msg in call:
                if msg.WhichOneof("response") == "started":
                    speaking.set()

        task = asyncio.ensure_future(speaker())
        await asyncio.wait_for(speaking.wait(), 60)
        seen: dict[str, int] = {"here": 0, "elsewhere": 0}
        for n in range(MOST):
            async with Client(url, mode="legacy" if n % 2 else "auto") as client:  # a connection of its own
                result = await client.call_tool("room_status", {"room": ROOM})
            assert not result.is_error, result.content
            status = result.structured_content
            if status["speakers"]:
                seen["here"] += 1
            elif status["speakers_elsewhere"]:
                seen["elsewhere"] += 1
            if all(seen.values()):
                break
        done.set()
        call.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert all(seen.values()), seen
