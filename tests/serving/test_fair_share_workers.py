"""Fair share across a node (security review N8, issue 34): on a real ``serve --workers 2``, one
tenant floods from streams on both workers, sending as fast as the server reads, and keeps the
engine's queue full; another tenant's real-time stream, beside one worker's flood streams and the
other worker's, still gets every one of its segments, OK, with the spans it gets on the idle node.

The engine's queue is small and its model slow (one segment a batch), so the flood's demand is far
beyond the queue. Before the share was decided in the engine, each worker divided the whole queue
between its own sessions: the two workers together promised it twice over, and the real-time
stream lost 3 to 6 of its 8 segments (RESOURCE_EXHAUSTED). Now the engine gives each of the node's
5 sessions 7 places and makes room for a session within its share; the real-time stream waits at
most a few seconds in the queue, so it has 1 or 2 segments waiting, far from its 7."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest
from google.rpc import code_pb2

from tests.support.calls import own_channel
from tests.support.node import Node, node
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(40)]

QUEUE = 35  # the engine queue: 5 sessions get 7 places each
FLOODS = 4  # the flooding tenant's streams, at least FLOOD_MIN on each worker
FLOOD_MIN = 2
FLOOD_CHUNK_S = 1.0  # the flood sends 1 s messages back to back: as fast as flow control lets it
VICTIM_S = 20  # the real-time stream's audio, sent in 100 ms chunks at real time
CHUNK_MS = 100
FMT = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
TEXT = pb.OutputOptions(text=True, speech=False, transcript=False)
TOKENS = {"flood": "flood-tenant-token-4c1e", "victim": "victim-tenant-token-9a07"}


def cfg() -> pb.StreamingTranslateRequest:
    return pb.StreamingTranslateRequest(
        config=pb.StreamingConfig(format=FMT, source_language="eng", target_languages=["spa"], output=TEXT)
    )


def bearer(tenant: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {TOKENS[tenant]}"),)


@pytest.fixture(scope="module")
def busy_node(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """A node whose engine queue holds QUEUE segments and runs one segment a batch (slow)."""
    tmp = tmp_path_factory.mktemp("fair-node")
    tokens = tmp / "tokens"
    tokens.write_text(
        f"{TOKENS['flood']} stream,translate tenant=flood\n{TOKENS['victim']} stream,translate tenant=victim\n"
    )
    env = {
        "TRANSLATE_SVC_ENGINE__MAX_QUEUED_SEGMENTS": str(QUEUE),
        "TRANSLATE_SVC_ENGINE__MAX_BATCH_SIZE": "1",
        "TRANSLATE_SVC_AUTH__TOKENS_FILE": str(tokens),
    }
    with node(test_model_dir, tmp / "node.log", **env) as n:
        yield n


class Stream:
    """A stream of ``tenant`` on a connection of its own (so the kernel picks its worker); the
    worker that took it is found from the node's count of admitted streams (``open``)."""

    def __init__(self, n: Node, tenant: str) -> None:
        self.node = n
        self.channel = own_channel(n.address)
        self.tenant = tenant
        self.audio: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)
        self.segments: list[pb.SegmentResult] = []
        self.started = asyncio.Event()
        self.worker = ""
        self.task = asyncio.create_task(self._run())

    async def _requests(self) -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield cfg()
        while (data := await self.audio.get()) is not None:
            yield pb.StreamingTranslateRequest(audio=data)

    async def _run(self) -> None:
        stub = pb_grpc.TranslatorStub(self.channel)
        call = stub.StreamingTranslate(self._requests(), timeout=300, metadata=bearer(self.tenant))
        async for r in call:
            self.started.set()
            if r.HasField("segment"):
                self.segments.append(r.segment)

    async def open(self) -> str:
        """Send the config and wait until the server started the stream; the worker's label."""
        before = self.node.started()
        waiting = asyncio.ensure_future(self.started.wait())
        await asyncio.wait({waiting, self.task}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        assert self.started.is_set(), self.task.exception()
        after = self.node.started()
        [self.worker] = [k for k in after if after[k] > before.get(k, 0)]
        return self.worker

    async def end(self) -> None:
        """Half-close; wait for the server's end."""
        await self.audio.put(None)
        try:
            await self.task
        finally:
            await self.channel.close()


async def flood_streams(n: Node) -> list[Stream]:
    """FLOODS streams of the flooding tenant, at least FLOOD_MIN on each worker: a stream on a
    worker that has its FLOODS - FLOOD_MIN already is reopened on a fresh connection."""
    streams: list[Stream] = []
    tries = 0
    while len(streams) < FLOODS:
        tries += 1
        assert tries < 100, "the kernel kept every connection on one worker"
        s = Stream(n, "flood")
        worker = await s.open()
        if sum(f.worker == worker for f in streams) >= FLOODS - FLOOD_MIN:
            await s.end()
            continue
        streams.append(s)
    return streams


async def send_flood(s: Stream, pcm: np.ndarray, stop: asyncio.Event) -> int:
    """1 s messages back to back (the clip over and over) until ``stop``; seconds sent."""
    step = int(16000 * FLOOD_CHUNK_S)
    sent = 0
    while not stop.is_set():
        at = (sent * step) % (len(pcm) - step)
        await s.audio.put(pcm[at : at + step].tobytes())
        sent += 1
    return sent


async def send_real_time(s: Stream, pcm: np.ndarray) -> None:
    step = 16 * CHUNK_MS
    t0 = time.perf_counter()
    for i, at in enumerate(range(0, len(pcm), step)):
        await asyncio.sleep(max(0.0, t0 + i * CHUNK_MS / 1000 - time.perf_counter()))
        await s.audio.put(pcm[at : at + step].tobytes())


async def spans_alone(n: Node, pcm: np.ndarray) -> list[tuple[int, int]]:
    """The victim's segments on the idle node: the same audio as one Translate clip."""
    async with own_channel(n.address) as ch:
        req = pb.TranslateRequest(
            audio=pb.AudioInput(content=pcm.tobytes(), format=FMT),
            source_language="eng",
            target_languages=["spa"],
            output=TEXT,
        )
        r = await pb_grpc.TranslatorStub(ch).Translate(req, timeout=120, metadata=bearer("victim"))
    assert all(s.status.code == code_pb2.OK for s in r.segments)
    return [(s.start_ms, s.end_ms) for s in r.segments]


async def test_a_tenant_flooding_from_both_workers_takes_no_segment_of_a_real_time_stream(
    busy_node: Node, shared_audio: Path
) -> None:
    pcm = load_pcm16k(shared_audio / "silero_test.wav")
    clip = pcm[: 16000 * VICTIM_S]
    alone = await spans_alone(busy_node, clip)
    floods = await flood_streams(busy_node)
    victim = Stream(busy_node, "victim")
    await victim.open()
    stop = asyncio.Event()
    sending = [asyncio.create_task(send_flood(f, pcm, stop)) for f in floods]
    try:
        await asyncio.sleep(3)  # the flood fills the queue first
        await send_real_time(victim, clip)
        await victim.end()
    finally:
        stop.set()
        sent = await asyncio.gather(*sending)
        await asyncio.gather(*(f.end() for f in floods), return_exceptions=True)
    lost = [(s.segment_id, code_pb2.Code.Name(s.status.code)) for s in victim.segments if s.status.code != code_pb2.OK]
    flood_segments = sum(len(f.segments) for f in floods)
    flood_failed = sum(s.status.code != code_pb2.OK for f in floods for s in f.segments)
    print(
        f"\nvictim on {victim.worker}: {len(victim.segments)} segments, {len(lost)} lost {lost}, "
        f"queue_ms max {max(s.timing.queue_ms for s in victim.segments):.0f}, "
        f"model_ms max {max(s.timing.model_ms for s in victim.segments):.0f}; "
        f"flood: {sum(sent)} s sent, {flood_segments} segments ({flood_failed} failed), "
        f"workers {sorted(f.worker for f in floods)}"
    )
    assert not lost, lost
    assert [(s.start_ms, s.end_ms) for s in victim.segments] == alone
    assert len(alone) >= 6
    assert flood_segments > 0
