"""Engine and session behaviour on a fake runner: no checkpoint, no torch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.support.fake_runner import FakeRunner
from tests.support.fake_sessions import FMT, make_manager
from tests.support.lockstep import WatchedVad, settle
from tests.support.paths import REPO
from tests.support.waiting import until
from translate_svc.app import scheduler_config
from translate_svc.engine.engine import TranslationEngine
from translate_svc.errors import LimitReached, NotReady, Overloaded
from translate_svc.model_api.requests import ModelInput
from translate_svc.session import SegmentResult, SpeechEvent, StreamEnded
from translate_svc.session.calls.clip import ClipDriver
from translate_svc.session.task import checks
from translate_svc.settings import EngineSettings
from translate_svc.types import OutputOptions
from translate_svc.vad.worker import VadWorker

pytestmark = [pytest.mark.unit, pytest.mark.slow(15)]  # seconds, for the schedule (conftest.py)


def test_engine_and_session_load_no_torch() -> None:
    code = (
        "import sys, translate_svc.engine.engine, translate_svc.session, translate_svc.transport.grpc.servicer; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def item(seconds: float, *targets: str) -> ModelInput:
    return ModelInput(np.zeros(int(16000 * seconds), np.float32), targets or ("spa",), None, speech=False)


async def started_engine(runner: FakeRunner, **kw: float) -> TranslationEngine:
    engine = TranslationEngine(lambda: runner, scheduler_config(EngineSettings(**kw)))
    await engine.start(warmup=False)
    return engine


async def test_each_job_gets_its_own_result_and_jobs_share_batches() -> None:
    runner = FakeRunner()
    engine = await started_engine(runner, max_batch_size=8, max_wait_ms=200)
    try:
        futs = [engine.submit(f"s{i}", item(1 + i / 10, "spa", "fra")) for i in range(5)]
        results = await asyncio.gather(*futs)
        for i, r in enumerate(results):
            n = int(16000 * (1 + i / 10))
            assert r.output is not None and r.output.texts == {"spa": f"spa:{n}", "fra": f"fra:{n}"}
        assert runner.batches == [5] and {r.batch_size for r in results} == {5}
        assert engine.card.num_speakers == 2 and "cmn" not in engine.card.speech_codes
    finally:
        await engine.stop()


async def test_abort_drops_only_that_owners_queued_jobs() -> None:
    runner = FakeRunner()
    engine = await started_engine(runner, max_batch_size=1, max_wait_ms=0)
    try:
        runner.gate.clear()
        first = engine.submit("a", item(1.0))  # goes into the model and waits at the gate
        await asyncio.to_thread(runner.started.wait, 5)
        mine = [engine.submit("a", item(1.1)) for _ in range(3)]
        theirs = engine.submit("b", item(1.2))
        await until(lambda: engine.queued == 4)  # features computed, all queued
        assert engine.abort("a") == 3
        runner.gate.set()
        assert (await first).output is not None  # already in the model: it finishes
        assert all(f.cancelled() for f in mine)
        assert (await theirs).output is not None
        assert runner.batches == [1, 1]
    finally:
        runner.gate.set()
        await engine.stop()


async def test_a_full_queue_refuses_with_a_retry_hint_of_at_least_a_second() -> None:
    runner = FakeRunner()
    engine = await started_engine(runner, max_batch_size=1, max_wait_ms=500, max_queued_segments=2)
    try:
        runner.gate.clear()
        engine.submit("a", item(1.0))
        engine.submit("a", item(1.0))
        with pytest.raises(Overloaded) as e:
            engine.submit("a", item(1.0))
        assert e.value.retry_after_ms == 5000  # 10 batching waits
    finally:
        runner.gate.set()
        await engine.stop()


async def test_one_failing_segment_fails_alone() -> None:
    runner = FakeRunner()
    runner.fail_when = lambda i: len(i.audio) == 16000 * 2
    engine = await started_engine(runner, max_batch_size=8, max_wait_ms=100)
    try:
        good, bad = await asyncio.gather(engine.submit("s", item(1.0)), engine.submit("s", item(2.0)))
        assert good.output is not None and bad.output is None and bad.error is not None
        assert bad.error.code == "INTERNAL" and engine.healthy
    finally:
        await engine.stop()


async def test_a_dead_model_thread_fails_waiting_jobs_and_turns_unhealthy() -> None:
    runner = FakeRunner()
    failures: list[BaseException] = []
    engine = TranslationEngine(
        lambda: runner, scheduler_config(EngineSettings(max_batch_size=1, max_wait_ms=0)), on_failure=failures.append
    )
    await engine.start(warmup=False)
    try:
        runner.gate.clear()
        runner.die = True
        in_model = engine.submit("s", item(1.0))
        await asyncio.to_thread(runner.started.wait, 5)
        waiting = engine.submit("s", item(1.0))
        await until(lambda: engine.queued == 1)
        runner.gate.set()
        for fut in (in_model, waiting):
            with pytest.raises(NotReady):
                await fut
        assert not engine.healthy and len(failures) == 1
        with pytest.raises(NotReady):
            engine.submit("s", item(1.0))
        with pytest.raises(NotReady):
            engine.card  # noqa: B018
    finally:
        await engine.stop()


# -- sessions ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech_pcm(shared_audio: Path) -> bytes:
    """silero_test.wav: 60 s, 16 kHz mono PCM16, 19 speech regions."""
    audio, rate = sf.read(shared_audio / "silero_test.wav", dtype="int16")
    assert rate == 16000
    return bytes(audio.astype("<i2").tobytes())


async def test_results_come_in_order_then_ended(speech_pcm: bytes, vad_worker: VadWorker) -> None:
    m = await make_manager(FakeRunner(), vad_worker)
    task = checks.resolve_task(m.card, m.limits, "eng", ["spa"], OutputOptions(speech=False))
    session = await m.open_stream(FMT, task, m.vad_defaults)
    try:

        async def feed() -> None:
            for i in range(0, len(speech_pcm), 6400):
                await session.feed(speech_pcm[i : i + 6400])
            await session.finish()

        feeder = asyncio.create_task(feed())
        events = [ev async for ev in session.events()]
        await feeder
    finally:
        session.close()
        await m.engine.stop()
    results = [e for e in events if isinstance(e, SegmentResult)]
    assert [r.segment_id for r in results] == list(range(19))
    assert isinstance(events[-1], StreamEnded) and events[-1].segments_total == 19 and events[-1].limit is None
    speech = [e.started for e in events if isinstance(e, SpeechEvent)]
    assert speech == [True, False] * 19
    # VAD wait: the closing silence (min_silence 100 ms, in 32 ms windows, from where silero's
    # hysteresis saw speech end) up to the end of the 200 ms chunk that completed it
    waits = [r.timing.vad_wait_ms for r in results]
    assert all(0 <= w <= 100 + 2 * 32 + 200 for w in waits), waits
    assert sum(w >= 100 - 30 for w in waits) >= 15, waits
    assert m.open_streams == 0


async def test_a_client_that_does_not_read_gets_at_most_the_bound_computed(
    speech_pcm: bytes, vad_worker: VadWorker
) -> None:
    runner = FakeRunner()
    m = await make_manager(runner, vad_worker, max_unread_results=3)
    session = await m.open_stream(
        FMT, checks.resolve_task(m.card, m.limits, "", ["spa"], OutputOptions(speech=False)), m.vad_defaults
    )
    fed = 0

    async def feed() -> None:
        nonlocal fed
        for i in range(0, len(speech_pcm), 6400):
            await session.feed(speech_pcm[i : i + 6400])
            fed = i + 6400

    feeder = asyncio.create_task(feed())
    try:
        for _ in range(500):  # until feeding stalls (the reader never comes)
            before = fed
            await asyncio.sleep(0.01)
            if fed == before and sum(runner.batches) >= 3 and m.engine.queued == 0:
                break
        assert not feeder.done() and fed < len(speech_pcm)  # the client's audio is not taken any more
        assert sum(runner.batches) == 3 == session.unread  # nothing computed past the bound
        # the reader comes back: feeding resumes and every segment arrives
        got = []
        async for ev in session.events():
            if isinstance(ev, SegmentResult):
                got.append(ev.segment_id)
            if len(got) == 19:
                break
        await feeder
        assert got == list(range(19))
    finally:
        feeder.cancel()
        session.close()
        await m.engine.stop()


async def test_stream_admission_is_bounded_and_slots_come_back(vad_worker: VadWorker) -> None:
    m = await make_manager(FakeRunner(), vad_worker, max_streams=2)
    task = checks.resolve_task(m.card, m.limits, "", ["spa"], OutputOptions(speech=False))
    try:
        a, b = await m.open_stream(FMT, task, m.vad_defaults), await m.open_stream(FMT, task, m.vad_defaults)
        with pytest.raises(Overloaded) as e:
            await m.open_stream(FMT, task, m.vad_defaults)
        assert e.value.retry_after_ms and "capacity" in e.value.message
        a.close()
        a.close()  # idempotent
        c = await m.open_stream(FMT, task, m.vad_defaults)
        assert m.open_streams == 2
        b.close()
        c.close()
        assert m.open_streams == 0
    finally:
        await m.engine.stop()


async def test_max_stream_duration_translates_what_came_and_says_where_it_stopped(
    speech_pcm: bytes, vad_worker: VadWorker
) -> None:
    m = await make_manager(FakeRunner(), vad_worker, max_stream_seconds=5.0)
    session = await m.open_stream(
        FMT, checks.resolve_task(m.card, m.limits, "", ["spa"], OutputOptions(speech=False)), m.vad_defaults
    )
    try:
        with pytest.raises(LimitReached) as e:
            for i in range(0, len(speech_pcm), 16000):  # 0.5 s chunks
                await session.feed(speech_pcm[i : i + 16000])
        assert session.audio_received_ms == 5000 and "5000 ms" in e.value.message
        await session.finish(e.value)
        events = []
        with pytest.raises(LimitReached):
            async for ev in session.events():
                events.append(ev)
        assert isinstance(events[-1], StreamEnded) and events[-1].limit is e.value
        results = [ev for ev in events if isinstance(ev, SegmentResult)]
        assert results and all(r.end_ms <= 5000 for r in results)
    finally:
        session.close()
        await m.engine.stop()


async def test_translate_clip_with_more_regions_than_any_queue_returns_them_all(
    speech_pcm: bytes, vad_worker: VadWorker
) -> None:
    """Translate feeds the whole clip before its results are read: nothing may wait on that reader."""
    m = await make_manager(FakeRunner(), vad_worker)
    m.limits.max_clip_seconds = 700
    clip = speech_pcm * 9  # 540 s, 171 regions
    task = checks.resolve_task(m.card, m.limits, "", ["spa"], OutputOptions(speech=False))
    try:
        result = await asyncio.wait_for(ClipDriver(m).translate(clip, FMT, task, m.vad_defaults), 120)
    finally:
        await m.engine.stop()
    assert [r.segment_id for r in result.segments] == list(range(len(result.segments)))
    assert len(result.segments) >= 9 * 19 - 9  # a region may merge across the file's seam
    assert result.audio_duration_ms == 540_000


async def test_wait_idle_returns_only_once_nothing_can_still_run() -> None:
    runner = FakeRunner()
    engine = await started_engine(runner, max_batch_size=1, max_wait_ms=0)
    try:
        await asyncio.wait_for(engine.wait_idle(), 1)  # nothing submitted: idle at once
        runner.gate.clear()
        fut = engine.submit("a", item(1.0))
        idle = asyncio.create_task(engine.wait_idle())
        await asyncio.to_thread(runner.started.wait, 5)
        assert not idle.done()  # a job is in the model
        runner.gate.set()
        await asyncio.wait_for(idle, 5)
        assert fut.done() and runner.batches == [1]
    finally:
        runner.gate.set()
        await engine.stop()


async def test_droppable_work_is_refused_while_finals_wait_and_cancel_drops_it() -> None:
    runner = FakeRunner()
    engine = await started_engine(runner, max_batch_size=4, max_wait_ms=0)
    try:
        runner.gate.clear()
        busy = engine.submit("a", item(1.0))  # in the model, held at the gate
        await asyncio.to_thread(runner.started.wait, 5)
        caption = engine.submit_droppable("b", item(0.5))
        assert caption is not None  # nothing final waits: the caption may queue behind the batch
        final = engine.submit("c", item(1.0))
        assert engine.submit_droppable("d", item(0.5)) is None  # a final waits: skipped, not queued
        await until(lambda: engine.queued == 2)
        runner.gate.set()
        await asyncio.gather(busy, final, caption)
        assert runner.batches == [1, 1, 1]  # the final went before the older caption, alone
        # a cancelled caption is dropped before it reaches the model
        runner.gate.clear()
        busy = engine.submit("a", item(1.0))
        await until(lambda: len(runner.batches) == 3 and engine.queued == 0 and runner.started.is_set())
        caption = engine.submit_droppable("b", item(0.5))
        assert caption is not None
        await until(lambda: engine.queued == 1)
        caption.cancel()
        await until(lambda: engine.queued == 0)
        runner.gate.set()
        await busy
        await engine.wait_idle()
        assert runner.batches == [1, 1, 1, 1]
    finally:
        runner.gate.set()
        await engine.stop()


async def test_live_captions_come_before_their_final_and_never_after_it(
    speech_pcm: bytes, vad_worker: WatchedVad
) -> None:
    from translate_svc.types import InterimResult

    m = await make_manager(FakeRunner(), vad_worker)
    task = checks.resolve_task(m.card, m.limits, "eng", ["spa"], OutputOptions(speech=False))
    session = await m.open_stream(FMT, task, m.vad_defaults, interim_interval_ms=500)
    try:

        async def feed() -> None:
            for i in range(0, len(speech_pcm), 640):  # 20 ms messages
                await session.feed(speech_pcm[i : i + 640])
                await settle(vad_worker, m.engine)  # its caption comes back before more audio, whatever the load
            await session.finish()

        feeder = asyncio.create_task(feed())
        events = [ev async for ev in session.events()]
        await feeder
    finally:
        session.close()
        await m.engine.stop()
    finals = {e.segment_id: (i, e) for i, e in enumerate(events) if isinstance(e, SegmentResult)}
    interims = [(i, e) for i, e in enumerate(events) if isinstance(e, InterimResult)]
    assert len(finals) == 19 and len(interims) >= 10
    assert session.interims_skipped == 0  # in step with a model that keeps up, every caption due is computed
    for i, cap in interims:
        at, final = finals[cap.segment_id]
        assert i < at  # before its final: the final supersedes it
        # a caption covers the speech received so far, which may reach into the pause before the VAD
        # calls the end (min_silence 100 ms, 32 ms windows: the integration test's bound)
        assert cap.start_ms == final.start_ms and cap.end_ms <= final.end_ms + 100 + 32
        assert cap.end_ms - cap.start_ms >= 500
        n = (cap.end_ms - cap.start_ms) * 16
        assert cap.transcript is not None and cap.transcript.text == f"n={n}"  # the speech so far
        assert [t.text for t in cap.translations] == [f"spa:{n}"] and cap.translations[0].audio is None
    with pytest.raises(Exception, match="interim_interval_ms"):
        await m.open_stream(FMT, task, m.vad_defaults, interim_interval_ms=100)
