"""A sender that stops in the middle of speech (mute, push-to-talk, a paused track) on a real server:
its open speech comes out once ``limits.stall_close_ms`` passed with no message, as if it had sent
FLUSH there, and audio sent later carries on the same timeline with nothing lost (issue 32)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from tests.support.live_server import LiveServer
from tests.support.raw import TEXT_ONLY, stream_config
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(10)]

PCM16K = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
CHUNK = 1600  # 100 ms
CUT_MS = 1500  # inside jfk.flac's first phrase (0.3-2.3 s): the speaker stops mid-word


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "jfk.flac")


def chunks(pcm: np.ndarray) -> list[pb.StreamingTranslateRequest]:
    return [pb.StreamingTranslateRequest(audio=pcm[i : i + CHUNK].tobytes()) for i in range(0, len(pcm), CHUNK)]


def segments(responses: list[pb.StreamingTranslateResponse]) -> list[pb.SegmentResult]:
    return [r.segment for r in responses if r.HasField("segment")]


async def test_a_sender_that_stops_mid_word_gets_that_segment_and_goes_on_losing_nothing(
    live: LiveServer, jfk: np.ndarray
) -> None:
    cut = CUT_MS * 16
    head, rest = chunks(jfk[:cut]), chunks(jfk[cut:])

    # the reference: the same audio with FLUSH where the sender stops
    flush = pb.StreamingTranslateRequest(control=pb.FLUSH)
    reference = [stream_config(PCM16K, output=TEXT_ONLY), *head, flush, *rest]
    want = [r async for r in live.stub.StreamingTranslate(iter(reference))]

    got: list[pb.StreamingTranslateResponse] = []
    arrived = asyncio.Event()
    waited_s: list[float] = []

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield stream_config(PCM16K, output=TEXT_ONLY)
        for m in head:
            yield m
        stopped = time.monotonic()
        await asyncio.wait_for(arrived.wait(), 30)  # nothing sent: the stalled speech must come out
        waited_s.append(time.monotonic() - stopped)
        for m in rest:
            yield m

    async for r in live.stub.StreamingTranslate(requests(), timeout=120):
        got.append(r)
        if r.HasField("segment"):
            arrived.set()

    stall_s = got[0].started.limits.stall_close_ms / 1000
    assert stall_s == 1.0  # the published default
    # the open speech came out while the sender sent nothing: after the stall time, not before
    # (no pause ends it: it stops mid-word), within the stall time plus a batch or so
    assert stall_s * 0.9 <= waited_s[0] < stall_s + 15, waited_s
    first = segments(got)[0]
    assert first.status.code == 0 and CUT_MS - 64 <= first.end_ms <= CUT_MS, first
    # exactly as if the sender had said FLUSH there: same segments, and the later audio on the
    # same timeline, every bit of it received
    assert [(s.start_ms, s.end_ms) for s in segments(got)] == [(s.start_ms, s.end_ms) for s in segments(want)]
    assert [s.segment_id for s in segments(got)] == list(range(len(segments(got))))
    assert all(s.status.code == 0 for s in segments(got))
    end = got[-1].ended
    assert end.reason == pb.StreamEnd.HALF_CLOSE and end.audio_received_ms == len(jfk) // 16
    assert end.segments_total == len(segments(got)) >= 4


async def test_a_sender_paced_by_long_chunks_is_not_cut_between_them(live: LiveServer, jfk: np.ndarray) -> None:
    """The stall time counts from the end of the last message's audio: a sender of 2 s chunks that
    waits 1.5 s between them (longer than the stall time) is not cut between them (the stall
    would close the first phrase at 2 s, 1.5 s before the next chunk; it is due at 3 s)."""
    step = 32_000  # 2 s
    pieces = [jfk[i : i + step] for i in range(0, 2 * step, step)]  # 0-4 s: the first phrase (0.3-2.3 s) and more
    whole = [
        r async for r in live.stub.StreamingTranslate(iter([stream_config(PCM16K), *chunks(np.concatenate(pieces))]))
    ]

    async def paced() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield stream_config(PCM16K)
        for p in pieces:
            yield pb.StreamingTranslateRequest(audio=p.tobytes())
            await asyncio.sleep(1.5)  # longer than the stall time, shorter than the chunk's audio

    got = [r async for r in live.stub.StreamingTranslate(paced(), timeout=60)]
    assert [(s.start_ms, s.end_ms) for s in segments(got)] == [(s.start_ms, s.end_ms) for s in segments(whole)]
    assert segments(got)[0].end_ms > 2000  # the first phrase runs past the first chunk, uncut


async def test_a_server_paused_past_the_stall_time_cuts_nothing_its_client_sent_meanwhile(
    live: LiveServer, jfk: np.ndarray
) -> None:
    """The server's own pause is not the sender's: its event loop blocked 1.6 s (a long collection,
    a starved process) while a client in a thread of its own goes on sending in real time. When
    the loop runs again the stall timer is due and the messages that came meanwhile wait unread
    behind it; the timer, finding itself late, lets them be read before it judges, so the segments
    are those of the same audio streamed without the pause and no stall close is counted."""
    pcm = jfk[: 16000 * 6]
    reference = [r async for r in live.stub.StreamingTranslate(iter([stream_config(PCM16K), *chunks(pcm)]))]

    def realtime() -> list[pb.StreamingTranslateResponse]:
        def requests() -> Iterator[pb.StreamingTranslateRequest]:
            yield stream_config(PCM16K)
            t0 = time.monotonic()
            for k, m in enumerate(chunks(pcm)):
                time.sleep(max(0.0, t0 + k * CHUNK / 16000 - time.monotonic()))
                yield m

        with grpc.insecure_channel(f"127.0.0.1:{live.port}") as ch:  # the stock sync client, off this loop
            return list(pb_grpc.TranslatorStub(ch).StreamingTranslate(requests(), timeout=60))

    before = REGISTRY.get_sample_value("translate_svc_stall_closes_total") or 0.0
    client = asyncio.get_running_loop().run_in_executor(None, realtime)
    await asyncio.sleep(1.2)  # inside jfk's first phrase (0.3-2.3 s): speech is open
    time.sleep(1.6)  # noqa: ASYNC251 - on purpose: the server's loop blocked past the stall time
    got = await client
    stalls = (REGISTRY.get_sample_value("translate_svc_stall_closes_total") or 0.0) - before
    spans = [(s.start_ms, s.end_ms) for s in segments(got)]
    assert spans == [(s.start_ms, s.end_ms) for s in segments(reference)], (spans, stalls)
    assert stalls == 0
