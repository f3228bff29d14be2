"""Sessions against a fake ``EngineClient``: the test decides when and how each job ends, so order,
per-segment refusals, captions and abort are checked without an engine or a model. Where a test
needs segments and nothing more, a scripted VAD (``fake_vad.py``) makes them from silence, exactly
where its script says; the tests of what silero itself does at a drain's cut and a resume's
lead-in score real speech."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tests.support.fake_engine import FakeEngineClient
from tests.support.fake_vad import scripted_worker
from tests.support.waiting import until
from translate_svc.errors import LimitReached
from translate_svc.session import (
    AudioIn,
    SegmentResult,
    SessionManager,
    StreamConfig,
    StreamDriver,
    StreamEnded,
    StreamRequest,
)
from translate_svc.session.calls.clip import ClipDriver
from translate_svc.session.stream.session import StreamSession
from translate_svc.settings import LimitsSettings
from translate_svc.types import AudioEncoding, AudioFormat, InterimResult, OutputOptions, TranslationTask
from translate_svc.vad.segmenter import SegmenterConfig
from translate_svc.vad.silero import SileroVad
from translate_svc.vad.worker import VadWorker

pytestmark = pytest.mark.unit

FMT = AudioFormat(AudioEncoding.LINEAR16, 16000, 1)
TASK = TranslationTask("eng", ("spa",), OutputOptions(speech=False))


#: the speech the scripted VAD hears in 13 s of silence: six regions, each closed in the audio
REGIONS = [(0.5, 1.5), (2.5, 3.3), (4.0, 6.0), (7.0, 7.6), (8.5, 10.0), (11.0, 12.2)]
STREAM_S = 13


@pytest.fixture(scope="module")
def vad() -> VadWorker:
    """The real VAD, for the tests of what silero does at a cut."""
    return VadWorker(SileroVad())


@pytest.fixture(scope="module")
def scripted() -> VadWorker:
    """A VAD that hears ``REGIONS`` in any stream."""
    return scripted_worker(REGIONS)


@pytest.fixture(scope="module")
def silence() -> bytes:
    """``STREAM_S`` of silence as 16 kHz PCM16: what ``scripted`` hears ``REGIONS`` in."""
    return bytes(2 * 16000 * STREAM_S)


@pytest.fixture(scope="module")
def real_speech(shared_audio: Path) -> bytes:
    """The first 20 s of silero_test.wav (several speech regions), for the real VAD."""
    samples, rate = sf.read(shared_audio / "silero_test.wav", dtype="int16")
    assert rate == 16000
    return bytes(samples[: 16000 * 20].tobytes())


async def feed_all(session: StreamSession, pcm: bytes, chunk_bytes: int = 3200) -> None:
    for i in range(0, len(pcm), chunk_bytes):
        await session.feed(pcm[i : i + chunk_bytes])


async def test_results_leave_in_segment_order_whatever_order_the_engine_answers(
    scripted: VadWorker, silence: bytes
) -> None:
    engine = FakeEngineClient()
    manager = SessionManager(engine, scripted, SegmenterConfig(), LimitsSettings(max_unread_results=64))
    session = await manager.open_stream(FMT, TASK, SegmenterConfig())
    try:
        await feed_all(session, silence)
        await session.finish()
        jobs = engine.pending()
        assert len(jobs) == len(REGIONS)
        for job in reversed(jobs):  # the engine answers the last segment first
            engine.resolve(job)
        events = [ev async for ev in session.events()]
    finally:
        session.close()
    results = [ev for ev in events if isinstance(ev, SegmentResult)]
    assert [r.segment_id for r in results] == list(range(len(jobs)))
    assert [r.translations[0].text for r in results] == [f"spa:{len(j.item.audio)}" for j in jobs]
    # each segment is its scripted region with the default 30 ms pads, to the VAD's 32 ms window
    for r, (start_s, end_s) in zip(results, REGIONS, strict=True):
        assert abs(r.start_ms - (1000 * start_s - 30)) <= 32 and abs(r.end_ms - (1000 * end_s + 30)) <= 32, r
    assert isinstance(events[-1], StreamEnded) and events[-1].segments_total == len(jobs)
    assert manager.open_streams == 0 and manager.sessions == 0


async def test_a_refused_segment_fails_alone_and_the_stream_goes_on(scripted: VadWorker, silence: bytes) -> None:
    engine = FakeEngineClient()
    manager = SessionManager(engine, scripted, SegmenterConfig(), LimitsSettings(max_unread_results=64))
    session = await manager.open_stream(FMT, TASK, SegmenterConfig())
    try:
        await feed_all(session, silence[: len(silence) // 2])
        await until(lambda: len(engine.jobs) >= 1)
        engine.overloaded = True  # the next segments are refused by a full engine
        await feed_all(session, silence[len(silence) // 2 :])
        await session.finish()
        for job in engine.pending():
            engine.resolve(job)
        results = [ev async for ev in session.events() if isinstance(ev, SegmentResult)]
    finally:
        session.close()
    refused = [r for r in results if r.error is not None]
    assert refused and all(r.error is not None and r.error.code == "RESOURCE_EXHAUSTED" for r in refused)
    assert [r.segment_id for r in results] == list(range(len(results)))
    assert results[0].error is None


async def test_a_closed_stream_aborts_its_jobs_in_the_engine(scripted: VadWorker, silence: bytes) -> None:
    engine = FakeEngineClient()
    manager = SessionManager(engine, scripted, SegmenterConfig(), LimitsSettings(max_unread_results=64))
    session = await manager.open_stream(FMT, TASK, SegmenterConfig())
    await feed_all(session, silence)
    await session.finish()
    jobs = engine.pending()
    assert jobs
    session.close()
    assert engine.aborted == [session.session_id]
    assert all(j.future.cancelled() for j in jobs)
    assert manager.open_streams == 0 and not manager.live


async def test_captions_are_skipped_while_the_engine_refuses_best_effort_work(
    scripted: VadWorker, silence: bytes
) -> None:
    engine = FakeEngineClient()
    engine.droppable = False
    manager = SessionManager(engine, scripted, SegmenterConfig(), LimitsSettings(max_unread_results=64))
    session = await manager.open_stream(FMT, TASK, SegmenterConfig(), interim_interval_ms=250)
    try:
        await feed_all(session, silence)
        await session.finish()
        assert session.interims_skipped > 0 and not engine.pending(droppable=True)
        engine.droppable = True
        for job in engine.pending():
            engine.resolve(job)
        events = [ev async for ev in session.events()]
    finally:
        session.close()
    assert not any(isinstance(ev, InterimResult) for ev in events)


async def test_the_fair_share_is_the_engine_queue_split_between_sessions(scripted: VadWorker) -> None:
    engine = FakeEngineClient(max_queued=40)
    manager = SessionManager(engine, scripted, SegmenterConfig(), LimitsSettings(max_unread_results=16))
    assert manager.fair_share() == 16
    sessions = [await manager.open_stream(FMT, TASK, SegmenterConfig()) for _ in range(4)]
    assert manager.fair_share() == 10
    for s in sessions:
        s.close()
    assert manager.fair_share() == 16


async def test_the_driver_runs_a_stream_against_the_fake_engine(scripted: VadWorker, silence: bytes) -> None:
    engine = FakeEngineClient()
    manager = SessionManager(engine, scripted, SegmenterConfig(), LimitsSettings(max_unread_results=64))

    async def requests() -> AsyncIterator[StreamRequest]:
        yield StreamConfig(FMT, "eng", ("spa",), OutputOptions(speech=False), SegmenterConfig())
        for i in range(0, len(silence), 3200):
            yield AudioIn(silence[i : i + 3200])

    async def answer() -> None:
        while True:  # an engine that answers every job as it comes
            for job in engine.pending():
                engine.resolve(job)
            await asyncio.sleep(0.005)

    answering = asyncio.create_task(answer())
    try:
        async with contextlib.aclosing(StreamDriver(manager).run(requests())) as events:
            got = [ev async for ev in events]
    finally:
        answering.cancel()
    results = [ev for ev in got if isinstance(ev, SegmentResult)]
    assert results and [r.segment_id for r in results] == list(range(len(results)))
    assert isinstance(got[-1], StreamEnded) and got[-1].limit is None
    assert len(results) == len(REGIONS) and np.isclose(got[-1].audio_received_ms, STREAM_S * 1000)


async def test_the_idle_limit_ends_the_stream_beside_the_reader_which_drops_what_comes_after(
    scripted: VadWorker,
) -> None:
    engine = FakeEngineClient()
    manager = SessionManager(engine, scripted, SegmenterConfig(), LimitsSettings(idle_timeout_s=0.1))
    read: list[int] = []

    async def requests() -> AsyncIterator[StreamRequest]:
        yield StreamConfig(FMT, "eng", ("spa",), OutputOptions(speech=False), SegmenterConfig())
        yield AudioIn(b"\0\0" * 1600)  # 100 ms
        await asyncio.sleep(0.4)  # silent past the idle limit
        for i in range(3):  # then it sends on: read and dropped, not fed
            read.append(i)
            yield AudioIn(b"\0\0" * 1600)

    got = []
    with pytest.raises(LimitReached) as ended:
        async with contextlib.aclosing(StreamDriver(manager, error_drain_s=5.0).run(requests())) as events:
            async for ev in events:
                got.append(ev)
    assert ended.value.reason == "idle_timeout" and "no message for 0.1 s" in ended.value.message
    assert isinstance(got[-1], StreamEnded) and got[-1].audio_received_ms == 100
    assert read == [0, 1, 2]  # the status waited until the client stopped sending
    assert manager.open_streams == 0


async def test_a_translate_call_fails_whole_when_the_engine_refuses_a_segment_later(
    scripted: VadWorker, silence: bytes
) -> None:
    """A remote engine can refuse a segment after ``submit`` returned (its queue filled from another
    worker): Translate then fails RESOURCE_EXHAUSTED, as when ``submit`` itself refused."""
    from translate_svc.errors import Overloaded

    engine = FakeEngineClient()
    manager = SessionManager(engine, scripted, SegmenterConfig(), LimitsSettings())
    call = asyncio.create_task(ClipDriver(manager).translate(silence, FMT, TASK, SegmenterConfig()))
    await until(lambda: len(engine.jobs) >= 1)
    engine.jobs[0].future.set_exception(Overloaded("server busy (fake, from the engine)", retry_after_ms=1000))
    for job in engine.pending():
        engine.resolve(job)
    with pytest.raises(Overloaded, match="from the engine"):
        await asyncio.wait_for(call, 30)
    assert manager.sessions == 0


async def test_a_clip_goes_max_clip_segments_queued_deep_and_a_stream_max_unread_results() -> None:
    """A stream that nobody reads stops at ``max_unread_results`` segments in the engine; a
    Translate clip, whose results are taken as they come, is bounded by
    ``max_clip_segments_queued`` instead: with room for all, its every segment (both 30 s blocks)
    is in the engine at once, though ``max_unread_results`` is 1."""
    minute = bytes(2 * 16000 * 60)  # 60 s: two blocks of a clip
    regions = [(3 * k + 0.5, 3 * k + 2.0) for k in range(20)]  # ten a block, none across the blocks' seam
    vad = scripted_worker(regions)

    async def clip(limits: LimitsSettings, hold_until: Callable[[FakeEngineClient], bool]) -> int:
        engine = FakeEngineClient(max_queued=64)
        manager = SessionManager(engine, vad, SegmenterConfig(), limits)
        call = asyncio.create_task(ClipDriver(manager).translate(minute, FMT, TASK, SegmenterConfig()))
        await until(lambda: hold_until(engine), 30)  # nothing answered before
        while not call.done():
            for job in engine.pending():
                engine.resolve(job)
            await asyncio.sleep(0.005)
        return len(call.result().segments)

    total = await clip(LimitsSettings(), lambda e: True)
    assert total == len(regions)
    deep = LimitsSettings(max_unread_results=1, max_clip_segments_queued=64)
    assert await clip(deep, lambda e: len(e.pending()) == total) == total

    engine = FakeEngineClient(max_queued=64)
    manager = SessionManager(engine, vad, SegmenterConfig(), LimitsSettings(max_unread_results=1))
    stream = await manager.open_stream(FMT, TASK, SegmenterConfig())
    feeding = asyncio.create_task(feed_all(stream, minute))
    try:
        await until(lambda: len(engine.pending()) == 1)
        await asyncio.sleep(0.3)
        assert len(engine.pending()) == 1 and not feeding.done()  # its feed waits: flow control
    finally:
        feeding.cancel()
        stream.abort()
        stream.close()
        vad.close()


async def test_audio_a_feed_waited_with_while_the_stream_finished_is_not_ingested(
    scripted: VadWorker, silence: bytes
) -> None:
    """The engine died (or a limit ended the stream) while the reader's feed waited for room: the
    stream finishes (its resampler drained); when room comes, that feed ingests nothing, and the
    stream ends with the audio it had (it ended with INTERNAL: "StreamResampler already received
    its last chunk", seen in CI)."""
    engine = FakeEngineClient()
    manager = SessionManager(engine, scripted, SegmenterConfig(), LimitsSettings(max_unread_results=1))
    session = await manager.open_stream(FMT, TASK, SegmenterConfig())
    try:
        feeding = asyncio.create_task(feed_all(session, silence))
        await until(lambda: len(engine.pending()) == 1)
        await asyncio.sleep(0.1)
        assert not feeding.done()  # waiting for room
        received = session.audio_received_ms
        finishing = asyncio.create_task(session.finish())
        await asyncio.sleep(0.1)

        async def read() -> list[Any]:  # the reader takes results: the feed gets room again
            return [ev async for ev in session.events()]

        reader = asyncio.create_task(read())
        for _ in range(2000):
            if finishing.done() and feeding.done() and reader.done():
                break
            for job in engine.pending():
                engine.resolve(job)
            await asyncio.sleep(0.005)
        await feeding  # no error
        await finishing
        events = await reader
    finally:
        session.close()
    end = events[-1]
    assert isinstance(end, StreamEnded) and end.audio_received_ms == received
    assert all(r.error is None for r in events if isinstance(r, SegmentResult))


async def test_speech_a_drain_cuts_too_short_to_translate_is_where_the_resume_starts(
    vad: VadWorker, real_speech: bytes
) -> None:
    """A drain that ends a stream 150 ms into a speech region (shorter than min_speech: no segment)
    must not report that speech as translated: the resumed call starts at the region, or its next
    server hears only the region's tail (seen: a rolling restart lost a region this way)."""
    from tests.support.speech import vad_segments
    from translate_svc.errors import ShuttingDown
    from translate_svc.wire.pcm import pcm16_to_float

    regions = await vad_segments(pcm16_to_float(np.frombuffer(real_speech, np.int16)))
    region = regions[2]
    start_ms = region.start_sample // 16
    cut_ms = start_ms + 30 + 150  # 150 ms past its unpadded start
    engine = FakeEngineClient()
    manager = SessionManager(engine, vad, SegmenterConfig(), LimitsSettings(max_unread_results=64))
    session = await manager.open_stream(FMT, TASK, SegmenterConfig())
    try:
        await feed_all(session, real_speech[: cut_ms * 32])
        await session.finish(ShuttingDown("draining"))
        for job in engine.pending():
            engine.resolve(job)
        events: list[Any] = []
        with contextlib.suppress(ShuttingDown):
            async for ev in session.events():
                events.append(ev)
    finally:
        session.close()
    results = [ev for ev in events if isinstance(ev, SegmentResult)]
    end = events[-1]
    assert isinstance(end, StreamEnded) and end.audio_received_ms == cut_ms
    assert len(results) == 2 and results[-1].end_ms <= start_ms  # the cut region made no segment
    assert start_ms <= end.resume_offset_ms <= start_ms + 60 < cut_ms


@pytest.mark.parametrize(
    "drain_ms",
    [
        30_329,  # 57 ms after a cap's cut: the remainder is too short, the resume point is the cut
        13_449,  # 41 ms after a region's onset: too short, the resume point is the onset
    ],
)
async def test_a_call_resumed_with_the_sdks_lead_in_translates_the_speech_a_drain_cut(
    vad: VadWorker, shared_audio: Path, drain_ms: int
) -> None:
    """The rolling-restart test's clip 1 (the sample rolled by 5 s): a drain at these points left
    a region untranslated. The next server's VAD started fresh at the resume point, inside speech,
    and silero from a fresh state scores speech in progress far lower for about half a second
    (there: 0.25 where the running stream had 1.0). The SDK's lead-in (the 1000 ms before the
    resume point, sent again only to be listened to) brings it into the speech as the lost call's
    was, and the region is translated; nothing is translated twice."""
    from tests.support.speech import vad_segments
    from translate_svc.errors import ShuttingDown
    from translate_svc.session.events import Resume
    from translate_svc.wire.pcm import pcm16_to_float

    samples, _ = sf.read(shared_audio / "silero_test.wav", dtype="int16")
    clip = np.roll(samples, -16000 * 5)[: 16000 * 40]
    engine = FakeEngineClient()
    manager = SessionManager(engine, vad, SegmenterConfig(), LimitsSettings(max_unread_results=256))

    async def call(pcm: np.ndarray, resume: Resume | None) -> list[Any]:
        session = await manager.open_stream(FMT, TASK, SegmenterConfig(), resume=resume)
        try:
            await feed_all(session, pcm.tobytes())
            await session.finish(ShuttingDown("draining") if resume is None else None)
            for job in engine.pending():
                engine.resolve(job)
            events: list[Any] = []
            with contextlib.suppress(ShuttingDown):  # the drained call ends with it
                async for ev in session.events():
                    events.append(ev)
            return events
        finally:
            session.close()

    first = await call(clip[: drain_ms * 16], None)
    done = [ev for ev in first if isinstance(ev, SegmentResult)]
    resume_ms = first[-1].resume_offset_ms
    lead_ms = 1000
    later = await call(
        clip[(resume_ms - lead_ms) * 16 : (drain_ms + 4000) * 16],
        Resume("0" * 32, len(done), resume_ms - lead_ms, lead_ms),
    )
    segments = done + [ev for ev in later if isinstance(ev, SegmentResult)]
    assert all(p.end_ms <= q.start_ms for p, q in itertools.pairwise(segments))  # nothing twice
    assert min(s.start_ms for s in segments[len(done) :]) >= resume_ms  # the lead-in is not translated
    reference = await vad_segments(pcm16_to_float(clip))  # one uninterrupted stream
    cut = [r for r in reference if r.start_sample // 16 <= resume_ms < r.end_sample // 16 + 500]
    assert cut, "the drain point no longer cuts a region: pick one that does"
    for r in cut:
        assert any(s.start_ms < r.end_sample // 16 and r.start_sample // 16 < s.end_ms for s in segments), r
