"""``serve --workers 2 --mcp`` (issue 62; a real node: supervisor, engine process, two workers and
the node's cluster hub, on loopback): the endpoint keeps no MCP session, so any worker answers any
request of a client, in either protocol era, and a room's state is the node's. A gRPC speaker
holds a room open on one worker; MCP clients, each on a connection of its own (the kernel spreads
them over both workers), ask ``room_status``: the worker of the speaker lists it among its own
speakers, the other among the speakers elsewhere, and both answers come (which worker answered is
read from that, never assumed). Then a client (on whichever worker) watches the room's captions
while the speaker talks: the update comes, and the captions read are the speaker's segments."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.subscriptions import ResourceUpdated

from tests.support.calls import own_channel
from tests.support.node import Node, node
from tests.support.rooms import CHUNK, speaker_config
from tests.support.speech import shared_pcm
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(60)]

ROOM = "across-workers"
URI = f"translate-svc://rooms/{ROOM}/captions/spa"
#: connections asked before both workers must have answered (each answers 1 in 2 at random)
MOST = 40


@pytest.fixture(scope="module")
def two(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    log = tmp_path_factory.mktemp("mcp-node") / "node.log"
    env = {
        "TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable",
        "TRANSLATE_SVC_SERVER__HTTP_PORT": "0",
        "TRANSLATE_SVC_MCP__ENABLED": "true",
        "TRANSLATE_SVC_ROOMS__BACKLOG_S": "600",
    }
    with node(test_model_dir, log, **env) as n:
        yield n


async def test_any_worker_answers_and_sees_the_nodes_room(two: Node, shared_audio: Path) -> None:
    assert two.http_port is not None
    url = f"http://127.0.0.1:{two.http_port}/mcp"
    pcm, _ = shared_pcm(shared_audio, "jfk.flac")
    started, talk, done, segment_came = asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event()
    said: list[pb.SegmentResult] = []

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(config=speaker_config(ROOM))
        await talk.wait()
        for k in range(0, len(pcm), CHUNK):
            yield pb.StreamingTranslateRequest(audio=pcm[k : k + CHUNK])
        await done.wait()  # in the room until the test is done

    async with own_channel(two.address) as channel:
        call = pb_grpc.TranslatorStub(channel).StreamingTranslate(requests())

        async def speaker() -> None:
            async for msg in call:
                if msg.WhichOneof("response") == "started":
                    started.set()
                elif msg.WhichOneof("response") == "segment":
                    said.append(msg.segment)
                    segment_came.set()

        task = asyncio.ensure_future(speaker())
        try:
            await asyncio.wait_for(started.wait(), 60)
            await _both_workers_answer(url)
            async with Client(url) as client:  # whichever worker the kernel picks: either must work
                async with client.listen(resource_subscriptions=[URI]) as updates:
                    talk.set()
                    assert await asyncio.wait_for(anext(aiter(updates)), 60) == ResourceUpdated(uri=URI)
                captions = json.loads((await client.read_resource(URI)).contents[0].text)["captions"]
            assert captions
            wanted = {e["segment_id"] for e in captions}
            while not wanted <= {s.segment_id for s in said}:  # the speaker's own results, as they come
                segment_came.clear()
                await asyncio.wait_for(segment_came.wait(), 60)
            spans = {(s.segment_id, s.start_ms, s.end_ms) for s in said}
            assert {(e["segment_id"], e["start_ms"], e["end_ms"]) for e in captions} <= spans
        finally:
            done.set()
            call.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _both_workers_answer(url: str) -> None:
    """``room_status`` on new connections until both workers have answered it."""
    seen = {"here": 0, "elsewhere": 0}
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
            return
    raise AssertionError(f"not both workers answered room_status with the speaker: {seen}")
