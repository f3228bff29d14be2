"""Issue 59: a room on ``serve --workers 2`` (a real node: supervisor, engine process, two workers
and the node's cluster hub, on loopback). A speaker and six listeners, each on a connection of its
own, so that the kernel spreads them over both workers (which worker took each connection is read
from the node's per-worker stream counter, never assumed); every listener, on either worker, gets
the speaker's segments with the ids and spans of the speaker's own stream, and a late listener
gets the whole backlog, as on one process.

Before: rooms lived in each worker's own dicts: a listener on the other worker than the speaker's
got none of its segments and an empty backlog, and its call said nothing was wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.support.node import Node, node, spread
from tests.support.rooms import speak, speaker_config
from tests.support.speech import speech_pcm16
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(120)]

Span = tuple[int, int, int]


@pytest.fixture(scope="module")
def two(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    log = tmp_path_factory.mktemp("rooms-node") / "node.log"
    env = {"TRANSLATE_SVC_MODEL__TEST_TRANSLATOR": "stable", "TRANSLATE_SVC_ROOMS__BACKLOG_S": "600"}
    with node(test_model_dir, log, **env) as n:
        yield n


async def listen_until(call: Any, want: int, backlog: list[Span], live: list[Span]) -> pb.ListenStarted | None:
    """Read a listen until ``want`` segments (backlog and live) came; the started event if read here."""
    started = None
    while len(backlog) + len(live) < want:
        ev = await asyncio.wait_for(call.read(), 60)
        kind = ev.WhichOneof("event")
        if kind == "started":
            started = ev.started
        elif kind == "segment":
            seg = ev.segment
            (backlog if ev.backlog else live).append((seg.segment_id, seg.start_ms, seg.end_ms))
    return started


async def test_listeners_on_both_workers_get_the_speakers_segments_and_backlog(two: Node, shared_audio: Path) -> None:
    pcm = speech_pcm16(shared_audio / "silero_test.wav", 20.0, 16000).tobytes()
    channels = await spread(two, 7)  # one for the speaker, six for listeners
    try:
        (speaker_ch, speaker_worker), listeners = channels[0], channels[1:]
        early, late = listeners[:4], listeners[4:]
        calls = [pb_grpc.TranslatorStub(ch).Listen(pb.ListenRequest(room="hall", language="spa")) for ch, _ in early]
        for call in calls:
            first = await asyncio.wait_for(call.read(), 30)
            assert first.WhichOneof("event") == "started", first
        own: list[pb.SegmentResult] = []
        ended = await speak(pb_grpc.TranslatorStub(speaker_ch), speaker_config("hall", targets=("spa",)), pcm, own)
        spans = [(s.segment_id, s.start_ms, s.end_ms) for s in own]
        assert len(spans) >= 5 and ended is not None, (spans, ended)
        for call, (_, worker) in zip(calls, early, strict=True):
            backlog: list[Span] = []
            live: list[Span] = []
            await listen_until(call, len(spans), backlog, live)
            assert backlog == [] and live == spans, (worker, speaker_worker, live, spans)
            call.cancel()
        for ch, worker in late:
            call = pb_grpc.TranslatorStub(ch).Listen(pb.ListenRequest(room="hall", language="spa"))
            backlog, live = [], []
            started = await listen_until(call, len(spans), backlog, live)
            assert started is not None and started.backlog == len(spans) and backlog == spans and live == [], (
                worker,
                speaker_worker,
                backlog,
            )
            call.cancel()
        print(f"speaker on {speaker_worker}; listeners on {[w for _, w in listeners]}; {len(spans)} segments")
    finally:
        for ch, _ in channels:
            await ch.close()


async def test_a_listen_cap_holds_over_both_workers(test_model_dir: Path, tmp_path: Path) -> None:
    """rooms.max_listeners 3 on the node: three listeners spread over both workers, the fourth is
    refused RESOURCE_EXHAUSTED on whichever worker it lands."""
    env = {"TRANSLATE_SVC_ROOMS__MAX_LISTENERS": "3"}
    with node(test_model_dir, tmp_path / "node.log", **env) as capped:
        channels = await spread(capped, 4)
        try:
            calls = [
                pb_grpc.TranslatorStub(ch).Listen(pb.ListenRequest(room=f"r{k}", language="spa"))
                for k, (ch, _) in enumerate(channels[:3])
            ]
            for call in calls:
                assert (await asyncio.wait_for(call.read(), 30)).WhichOneof("event") == "started"
            over = pb_grpc.TranslatorStub(channels[3][0]).Listen(pb.ListenRequest(room="r0", language="spa"))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await asyncio.wait_for(over.read(), 30)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "rooms.max_listeners" in (refused.value.details() or "")
            for call in calls:
                call.cancel()
        finally:
            for ch, _ in channels:
                await ch.close()
