"""Issue 52 F4 in the stream core, with the fake runner: an update's answer counts among the
events its client has not read, and a stream whose client reads none of them stops reading its
requests at ``max_unread_results`` of them, as it does for results; each answer taken lets one
more request in. Every update is answered, in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from tests.support.fake_runner import FakeRunner
from tests.support.fake_sessions import FMT, make_manager
from tests.support.waiting import until
from translate_svc.observability import metrics
from translate_svc.session.calls.stream import StreamDriver
from translate_svc.session.events import Draining, SpeechEvent, StreamConfig, StreamStarted, Update, Updated
from translate_svc.session.manager import SessionManager
from translate_svc.session.task import checks
from translate_svc.types import InterimResult, OutputOptions
from translate_svc.vad.segmenter import SegmenterConfig
from translate_svc.vad.worker import VadWorker

pytestmark = pytest.mark.unit

BOUND = 3


def held() -> float:
    return metrics.UNREAD_HELD._value.get()


async def test_a_client_that_reads_no_answer_has_its_updates_read_up_to_the_bound(
    vad_worker: VadWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "translate_svc.session.stream.session")
    m: SessionManager = await make_manager(FakeRunner(), vad_worker, max_unread_results=BOUND)
    held_before = held()
    pulled = 0

    async def requests() -> AsyncIterator[StreamConfig | Update]:
        nonlocal pulled
        yield StreamConfig(FMT, "eng", ("spa",), OutputOptions(speech=False), SegmenterConfig())
        while True:
            await asyncio.sleep(0)  # a client's next message comes in a later turn of the loop
            pulled += 1
            yield Update(("fra",) if pulled % 2 else ("spa",))

    try:
        async with contextlib.aclosing(StreamDriver(m).run(requests())) as events:
            assert isinstance(await anext(events), StreamStarted)
            await until(lambda: pulled >= BOUND)
            await asyncio.sleep(0.05)  # the reader would go on here if it were not held
            assert pulled == BOUND  # answered, BOUND answers unread: the next is not read
            assert held() == held_before + 1  # the server counts it, and says why
            said = [r for r in caplog.records if "events unread" in r.getMessage()]
            assert len(said) == 1 and "limits.max_unread_results" in said[0].getMessage()
            answers = []
            for k in range(5):  # each answer taken lets one more update in
                ev = await anext(events)
                assert isinstance(ev, Updated) and ev.error is None
                answers.append(ev.stream.task.target_languages)
                await until(lambda k=k: pulled == BOUND + 1 + k)  # type: ignore[misc]
            assert answers == [("fra",), ("spa",), ("fra",), ("spa",), ("fra",)]  # each, in order
            # held again after each answer taken (counted each time), said once a stream
            assert held() == held_before + 6
            assert len([r for r in caplog.records if "events unread" in r.getMessage()]) == 1
    finally:
        await m.engine.stop()


async def test_notices_and_captions_count_speech_events_do_not(vad_worker: VadWorker) -> None:
    """A drain notice and a caption are counted like an answer, and at the bound the stream has no
    room for more audio; speech events (two to a segment, which the results' bound holds) are not."""
    m: SessionManager = await make_manager(FakeRunner(), vad_worker, max_unread_results=BOUND)
    task = checks.resolve_task(m.card, m.limits, "eng", ["spa"], OutputOptions(speech=False))
    session = await m.open_stream(FMT, task, m.vad_defaults)
    try:
        jobs = session.jobs
        jobs.put(SpeechEvent(True, 0))
        jobs.put(Draining(0, 1000))
        jobs.put(InterimResult(0, 0, 500))
        assert (jobs.unread_events, jobs.backlog) == (2, 3)
        feeding = asyncio.create_task(session.feed(b"\0" * 320))  # room: fed at once
        await asyncio.wait_for(feeding, 5)
        jobs.put(InterimResult(0, 0, 1000))  # the bound: the next feed waits
        feeding = asyncio.create_task(session.feed(b"\0" * 320))
        await asyncio.sleep(0.05)
        assert not feeding.done() and jobs.unread_events == BOUND
        events = session.events()
        assert isinstance(await anext(events), SpeechEvent) and jobs.unread_events == BOUND
        assert isinstance(await anext(events), Draining) and jobs.unread_events == BOUND - 1
        await asyncio.wait_for(feeding, 5)  # one taken: room again
        assert isinstance(await anext(events), InterimResult) and jobs.unread_events == BOUND - 2
    finally:
        session.close()
        await m.engine.stop()
