"""An eager end of turn's speculation in a stream's ordered output (issue 102 item 2), on an engine
the test answers: the paused segment goes to the engine as optional work behind live finals; if
the pause closes it there and the work is done, its result is the segment's (no second job); if
the work is not done, it is dropped and the segment goes as a final; if speech resumes, or the
segment closes with another span or under another task, the work is dropped and nothing of it
comes out; a clip (strict queue) never speculates."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from prometheus_client import REGISTRY

from tests.support.fake_engine import FakeEngineClient
from tests.support.waiting import until
from translate_svc.session.stream.segments import SegmentTracker
from translate_svc.session.work import OnExecutor
from translate_svc.types import OutputOptions, Segment, SegmentResult, TranslationTask

pytestmark = [pytest.mark.unit, pytest.mark.asyncio(loop_scope="session")]

TASK = TranslationTask("eng", ("spa",), OutputOptions(speech=False))
POOL = ThreadPoolExecutor(1, thread_name_prefix="test-encode")
OUTCOME = "translate_svc_eager_ends_total"


def segment(n: int, end_ms: int = 2000) -> Segment:
    return Segment(n, 0, end_ms, np.arange(end_ms * 16, dtype=np.float32))


def outcomes() -> dict[str, float]:
    names = ("kept", "unfinished", "resumed", "changed", "refused")
    return {o: REGISTRY.get_sample_value(OUTCOME, {"outcome": o}) or 0.0 for o in names}


def grown(before: dict[str, float]) -> dict[str, float]:
    return {k: v - before[k] for k, v in outcomes().items() if v != before[k]}


async def results(jobs: SegmentTracker, count: int) -> list[SegmentResult]:
    out: list[SegmentResult] = []
    events = jobs.events()
    while len(out) < count:
        ev = await asyncio.wait_for(anext(events), 10)
        if isinstance(ev, SegmentResult):
            out.append(ev)
    return out


async def test_a_pause_that_closes_the_segment_keeps_the_finished_speculation() -> None:
    engine = FakeEngineClient()
    jobs = SegmentTracker(engine, "s", TASK, encode=OnExecutor(POOL))
    before = outcomes()
    assert jobs.speculate(segment(0))
    (spec,) = engine.pending()
    assert spec.droppable  # optional work, behind every live final
    engine.resolve(spec)
    jobs.submit(segment(0), 0.0)
    assert engine.pending() == [] and len(engine.jobs) == 1  # no second job
    (result,) = await results(jobs, 1)
    assert (result.segment_id, result.start_ms, result.end_ms) == (0, 0, 2000)
    assert [(t.target_language, t.text) for t in result.translations] == [("spa", f"spa:{2000 * 16}")]
    assert grown(before) == {"kept": 1}
    jobs.abort()


async def test_a_speculation_not_done_when_the_pause_closes_goes_again_as_a_final() -> None:
    engine = FakeEngineClient()
    jobs = SegmentTracker(engine, "s", TASK, encode=OnExecutor(POOL))
    before = outcomes()
    assert jobs.speculate(segment(0))
    (spec,) = engine.pending()
    jobs.submit(segment(0), 0.0)
    assert spec.future.cancelled()
    (final,) = engine.pending()
    assert not final.droppable and np.array_equal(final.item.audio, spec.item.audio)
    engine.resolve(final)
    (result,) = await results(jobs, 1)
    assert result.segment_id == 0 and result.error is None
    assert grown(before) == {"unfinished": 1}
    jobs.abort()


async def test_resumed_speech_drops_the_speculation_and_the_longer_segment_is_translated() -> None:
    engine = FakeEngineClient()
    jobs = SegmentTracker(engine, "s", TASK, encode=OnExecutor(POOL))
    before = outcomes()
    assert jobs.speculate(segment(0))
    (spec,) = engine.pending()
    engine.resolve(spec)  # done, and still dropped: speech went on
    assert jobs.drop_speculation("resumed")
    jobs.submit(segment(0, end_ms=5000), 0.0)
    (final,) = engine.pending()
    engine.resolve(final)
    (result,) = await results(jobs, 1)
    assert (result.end_ms, result.translations[0].text) == (5000, f"spa:{5000 * 16}")
    assert grown(before) == {"resumed": 1}
    jobs.abort()


@pytest.mark.parametrize("change", ["span", "task"])
async def test_a_segment_closed_otherwise_drops_the_speculation(change: str) -> None:
    engine = FakeEngineClient()
    jobs = SegmentTracker(engine, "s", TASK, encode=OnExecutor(POOL))
    before = outcomes()
    assert jobs.speculate(segment(0))
    (spec,) = engine.pending()
    engine.resolve(spec)
    if change == "task":  # an Update while the pause lasted: the segment is translated as now asked
        jobs.retarget(TranslationTask("eng", ("fra",), OutputOptions(speech=False)))
    jobs.submit(segment(0, end_ms=1990 if change == "span" else 2000), 0.0)
    (final,) = engine.pending()
    assert not final.droppable
    engine.resolve(final)
    (result,) = await results(jobs, 1)
    assert [t.target_language for t in result.translations] == (["fra"] if change == "task" else ["spa"])
    assert grown(before) == {"changed": 1}
    jobs.abort()


async def test_a_clip_never_speculates_and_a_busy_engine_refuses_it() -> None:
    engine = FakeEngineClient()
    clip = SegmentTracker(engine, "c", TASK, encode=OnExecutor(POOL), strict_queue=True)
    assert not clip.speculate(segment(0)) and engine.jobs == []
    clip.abort()
    before = outcomes()
    engine.submit_droppable = lambda owner, item, behind_finals=False: None  # type: ignore[method-assign]
    live = SegmentTracker(engine, "s", TASK, encode=OnExecutor(POOL))
    assert not live.speculate(segment(0)) and engine.jobs == []
    assert grown(before) == {"refused": 1}
    live.abort()


async def test_an_aborted_stream_drops_its_speculation() -> None:
    engine = FakeEngineClient()
    jobs = SegmentTracker(engine, "s", TASK, encode=OnExecutor(POOL))
    assert jobs.speculate(segment(0))
    (spec,) = engine.pending()
    jobs.abort()
    await until(lambda: spec.future.cancelled())
