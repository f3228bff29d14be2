"""The sidecar's real network (issue 24) on a real server: RTP-style Opus packets that arrive out of
order, twice or not at all; a participant who mutes for minutes; a bad message in the middle of
speech. None of them loses what the client sent before."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.support.live_server import LiveServer
from tests.support.raw import OPUS_FORMAT, run_stream, segment_spans, stream_config
from tests.support.speech import FRAME, opus_packets
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session"), pytest.mark.slow(60)]

TOLERANCE_MS = 40


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return load_pcm16k(shared_audio / "jfk.flac")


@pytest.fixture(scope="module")
def jfk_packets(jfk: np.ndarray) -> list[bytes]:
    return opus_packets(jfk)


@pytest.fixture(scope="module")
def jfk_fec_packets(jfk: np.ndarray) -> list[bytes]:
    """As a browser sends them: with in-band FEC (``useinbandfec=1``)."""
    return opus_packets(jfk, fec=True)


def packet(data: bytes, ts: int) -> pb.StreamingTranslateRequest:
    return pb.StreamingTranslateRequest(packet=pb.AudioPacket(data=data, timestamp=ts))


def assert_counterparts(got: list[tuple[int, int]], want: list[tuple[int, int]], tol_ms: int = TOLERANCE_MS) -> None:
    """Segment count within one of the clean stream's, and every span within TOLERANCE_MS of its
    clean counterpart. A clean segment may come back cut in two at a short pause inside it (a
    filled loss or a different VAD state makes the pause visible): the two pieces' outer ends are
    then its counterpart's, and that is the one extra segment allowed."""
    assert abs(len(got) - len(want)) <= 1, (got, want)
    pieces = list(got)
    for b0, b1 in want:
        inside = [p for p in pieces if b0 - tol_ms <= p[0] and p[1] <= b1 + tol_ms]
        assert inside, ((b0, b1), got, want)
        a0, a1 = inside[0][0], inside[-1][1]
        assert abs(a0 - b0) <= tol_ms and abs(a1 - b1) <= tol_ms, ((b0, b1), got, want)
        for p in inside:
            pieces.remove(p)
    assert not pieces, (pieces, got, want)


async def test_opus_swapped_twice_sent_and_lost_packets_end_ok_with_the_clean_segments(
    live: LiveServer, jfk_fec_packets: list[bytes]
) -> None:
    """5 % of packets swapped with their neighbour, 1 % sent twice, 2 % lost: the stream ends OK
    with the clean stream's segments (count +-1, spans within 40 ms) and says what it did. The
    lost packets are concealed by libopus (with FEC from the packet after each loss)."""
    jfk_packets = jfk_fec_packets
    clean = segment_spans(
        await run_stream(
            live.stub, [stream_config(OPUS_FORMAT), *(packet(p, i * FRAME) for i, p in enumerate(jfk_packets))]
        )
    )
    rng = np.random.default_rng(24)
    n = len(jfk_packets)
    lost = {i for i in range(1, n - 1) if rng.random() < 0.02}
    order = [i for i in range(n) if i not in lost]
    swaps = 0
    k = 0
    while k < len(order) - 1:
        if rng.random() < 0.05:
            order[k], order[k + 1] = order[k + 1], order[k]
            swaps += 1
            k += 2
        else:
            k += 1
    sent: list[int] = []
    for i in order:
        sent.append(i)
        if rng.random() < 0.01:
            sent.append(i)  # sent twice
    duplicates = len(sent) - len(order)
    assert swaps >= 10 and duplicates >= 2 and len(lost) >= 5, (swaps, duplicates, len(lost))
    got = await run_stream(live.stub, [stream_config(OPUS_FORMAT), *(packet(jfk_packets[i], i * FRAME) for i in sent)])
    end = got[-1][1]
    assert end.HasField("ended") and end.ended.reason == pb.StreamEnd.HALF_CLOSE
    assert_counterparts(segment_spans(got), clean)
    assert end.ended.packets_reordered == swaps
    assert end.ended.packets_duplicate == duplicates and end.ended.packets_late == 0
    assert end.ended.audio_filled_ms == 20 * len(lost)  # each lost packet's time, filled
    assert end.ended.audio_concealed_ms == 20 * len(lost)  # by libopus (PLC, FEC), not silence
    assert end.ended.audio_received_ms == 20 * n


async def test_the_sdk_sends_packets_out_of_order_and_twice_as_the_network_gave_them(
    live: LiveServer, jfk_packets: list[bytes]
) -> None:
    """A sidecar on the SDK passes RTP packets on as they come: the SDK keeps them (for a resume)
    in timeline order and the server's window puts them back, with the clean stream's segments."""
    from translate_svc.client import AsyncTranslateClient, Segment, StreamEnd

    clean = segment_spans(
        await run_stream(
            live.stub, [stream_config(OPUS_FORMAT), *(packet(p, i * FRAME) for i, p in enumerate(jfk_packets))]
        )
    )
    order = list(range(len(jfk_packets)))
    for k in range(5, len(order) - 1, 37):
        order[k], order[k + 1] = order[k + 1], order[k]
    sent = [j for i in order for j in ([i, i] if i % 101 == 50 else [i])]
    events: list[object] = []
    async with AsyncTranslateClient(f"127.0.0.1:{live.server.port}") as client:
        async with client.stream(targets="spa", source="eng", encoding="opus", speech=False) as s:
            for i in sent:
                await s.send(jfk_packets[i], timestamp=i * FRAME)
            await s.close()
            events = [ev async for ev in s]
    end = events[-1]
    assert isinstance(end, StreamEnd)
    assert end.packets_reordered == len(range(5, len(order) - 1, 37))
    assert end.packets_duplicate == len(sent) - len(order) and end.packets_late == 0
    got = [(e.start_ms, e.end_ms) for e in events if isinstance(e, Segment) and e.ok]
    assert got == clean


async def test_a_bad_message_in_the_middle_of_speech_ends_the_stream_after_its_open_speech(
    live: LiveServer, jfk: np.ndarray
) -> None:
    """The open segment comes back (translated) before INVALID_ARGUMENT, with its span."""
    fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1)
    chunks = [jfk[i : i + 320].tobytes() for i in range(0, len(jfk), 320)]
    clean = segment_spans(
        await run_stream(live.stub, [stream_config(fmt), *(pb.StreamingTranslateRequest(audio=c) for c in chunks)])
    )
    longest = max(clean, key=lambda s: s[1] - s[0])
    cut_ms = (longest[0] + longest[1]) // 2  # in the middle of the longest segment's speech
    before = [pb.StreamingTranslateRequest(audio=c) for c in chunks[: cut_ms // 20]]
    got: list[pb.StreamingTranslateResponse] = []

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield stream_config(fmt)
        for m in before:
            yield m
        yield stream_config(fmt)  # a second config: not a message a stream may send
        for m in before[:50]:  # the client goes on sending a little: dropped
            yield m

    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for r in live.stub.StreamingTranslate(requests(), timeout=120):
            got.append(r)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "sent twice" in (err.value.details() or "")
    segs = [r.segment for r in got if r.HasField("segment")]
    assert segs, "the open speech was dropped"
    last = segs[-1]
    assert abs(last.start_ms - longest[0]) <= TOLERANCE_MS and cut_ms - TOLERANCE_MS <= last.end_ms <= cut_ms
    assert last.status.code == 0 and len(last.translations) == 1  # translated (the test model's text may be empty)
    ended = got[-1].ended
    assert got[-1].HasField("ended") and ended.reason == pb.StreamEnd.ERROR and ended.segments_total == len(segs)


async def test_a_participant_muted_for_45_s_is_still_translated_45_s_later_on_the_timeline(
    live: LiveServer, jfk: np.ndarray, jfk_packets: list[bytes]
) -> None:
    """Speech, then nothing at all for 45 s, then a packet 45 s later on the timeline (a live
    sender's clock ran on while it was muted), then the rest of the speech: the same stream
    translates it, at its true place on the timeline. (A skip further ahead of the wall clock than
    the stream's bytes pay for is refused: ``test_audio_per_byte.py``, issue 52 F5.)"""
    clean = segment_spans(
        await run_stream(
            live.stub, [stream_config(OPUS_FORMAT), *(packet(p, i * FRAME) for i, p in enumerate(jfk_packets))]
        )
    )
    pause = max(itertools.pairwise(clean), key=lambda ab: ab[1][0] - ab[0][1])
    split = (pause[0][1] + pause[1][0]) // 2 // 20  # a packet index in the longest pause
    skip = 45 * 48000
    got: list[pb.StreamingTranslateResponse] = []

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield stream_config(OPUS_FORMAT)
        for i in range(split):
            yield packet(jfk_packets[i], i * FRAME)
        await asyncio.sleep(45)  # muted: no message at all
        for i in range(split, len(jfk_packets)):
            yield packet(jfk_packets[i], i * FRAME + skip)

    async for r in live.stub.StreamingTranslate(requests(), timeout=180):
        got.append(r)
    segs = [(s.start_ms, s.end_ms) for s in (r.segment for r in got if r.HasField("segment"))]
    later = [s for s in segs if s[0] >= 45_000]
    want_later = [(a + 45_000, b + 45_000) for a, b in clean if a >= split * 20]
    assert later, (segs, clean)
    # at their true place, 45 s later on the timeline: within two VAD windows, as the VAD's state
    # after 45 s of silence is not its state after speech (a lost 45 s would be off by seconds)
    assert_counterparts(later, want_later, tol_ms=64)
    ended = got[-1].ended
    assert ended.reason == pb.StreamEnd.HALF_CLOSE and ended.audio_filled_ms == 45_000
