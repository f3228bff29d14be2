"""The engine's synchronous core (``BatchCore``) with plain values on the fake runner: no event loop,
no futures, no clock (times are passed in)."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref

import numpy as np
import pytest

from tests.support.fake_runner import FakeRunner
from translate_svc.engine.core import BatchCore, Core, Finished, Job, Unit
from translate_svc.engine.scheduler import BatchScheduler, SchedulerConfig
from translate_svc.errors import ErrorCode
from translate_svc.model_api.requests import ModelInput
from translate_svc.types import MODEL_SAMPLE_RATE

pytestmark = pytest.mark.unit

_ids = iter(range(1_000_000))


def make_core(runner: FakeRunner | None = None, **kw: float) -> BatchCore:
    config = SchedulerConfig(**{"max_batch_size": 4, "max_wait_s": 0.01, **kw})  # type: ignore[arg-type]
    return BatchCore(BatchScheduler(config), runner or FakeRunner())


def job(owner: str, seconds: float, at: float, *, droppable: bool = False, targets: tuple[str, ...] = ("spa",)) -> Job:
    audio = np.zeros(round(seconds * MODEL_SAMPLE_RATE), np.float32)
    return Job(next(_ids), owner, ModelInput(audio, targets, None), at, droppable)


def test_batch_core_is_a_core() -> None:
    core: Core = make_core()  # mypy checks that BatchCore implements the Protocol
    assert core.queued == 0 and core.running == ()


def test_a_unit_is_drawn_by_the_schedulers_rules_and_leaves_the_queue() -> None:
    core = make_core()
    a1, a2, b1 = job("a", 1.0, 0.0), job("a", 1.0, 0.001), job("b", 3.0, 0.002)
    for j in (a1, a2, b1):
        core.add(j)
    assert core.queued == 3 and core.finals == 3
    assert core.schedule(0.005) is None  # not full, the oldest has not waited max_wait_s
    assert core.next_deadline() == pytest.approx(0.01)
    unit = core.schedule(0.01)
    assert unit is not None
    assert [j.job_id for j in unit.jobs] == [a1.job_id, a2.job_id, b1.job_id]  # oldest first
    assert unit.jobs[0] is a1 and not unit.optional
    assert core.running == unit.jobs and core.queued == 0 and core.queued_jobs() == []
    assert core.schedule(1.0) is None and core.next_deadline() is None


def test_rounds_across_owners_take_every_owners_oldest_before_anyones_second() -> None:
    core = make_core(max_batch_size=2)
    flood = [job("a", 1.0, 0.001 * k) for k in range(3)]
    other = job("b", 1.0, 0.01)
    for j in (*flood, other):
        core.add(j)
    unit = core.schedule(0.0)  # full: goes at once
    assert unit is not None and [j.owner for j in unit.jobs] == ["a", "b"]
    assert [j.job_id for j in core.queued_jobs()] == [flood[1].job_id, flood[2].job_id]


def test_droppable_jobs_wait_for_finals_queued_or_coming() -> None:
    core = make_core()
    caption = job("a", 1.0, 0.0, droppable=True)
    core.add(caption)
    assert core.schedule(1.0, finals_coming=True) is None  # a final is computing its features
    assert core.next_deadline(finals_coming=True) is None
    final = job("b", 1.0, 0.5)
    core.add(final)
    unit = core.schedule(1.0)
    assert unit is not None and unit.jobs == (final,)  # never along with a final
    core.settle(unit, core.execute(unit), 1.0, 1.1)
    optional = core.schedule(1.2)
    assert optional is not None and optional.jobs == (caption,) and optional.optional


def test_fits_optional_reads_the_items_rows_and_length() -> None:
    core = make_core(optional_batch_audio_s=4.0)
    assert core.fits_optional(job("a", 2.0, 0.0, targets=("spa", "fra")).item)
    assert not core.fits_optional(job("a", 2.0, 0.0, targets=("spa", "fra", "eng")).item)


def test_execute_returns_what_finished_per_job_in_the_units_order() -> None:
    runner = FakeRunner()
    core = make_core(runner)
    jobs = [job("a", 0.5, 0.0), job("b", 1.0, 0.0, targets=("spa", "fra"))]
    for j in jobs:
        core.add(j)
    unit = core.schedule(1.0)
    assert unit is not None
    finished = core.execute(unit)
    assert [f.job_id for f in finished] == [j.job_id for j in jobs]
    assert all(isinstance(f, Finished) and f.error is None for f in finished)
    assert finished[0].output is not None and finished[0].output.texts == {"spa": "spa:8000"}
    assert finished[1].output is not None and finished[1].output.texts == {"spa": "spa:16000", "fra": "fra:16000"}
    assert runner.batches == [2]  # one batch for the unit
    assert core.running == unit.jobs  # in the model until it is settled


def test_one_failing_item_fails_alone_with_internal() -> None:
    runner = FakeRunner()
    bad = job("b", 0.75, 0.0)
    runner.fail_when = lambda item: len(item.audio) == len(bad.item.audio)
    core = make_core(runner)
    jobs = [job("a", 0.5, 0.0), bad, job("c", 1.0, 0.0)]
    for j in jobs:
        core.add(j)
    unit = core.schedule(1.0)
    assert unit is not None
    finished = core.execute(unit)
    assert runner.batches == [3, 1, 1, 1]  # the batch, then each segment alone
    by_id = {f.job_id: f for f in finished}
    assert by_id[bad.job_id].output is None
    error = by_id[bad.job_id].error
    assert error is not None and error.code == ErrorCode.INTERNAL.value
    for good in (jobs[0], jobs[2]):
        assert by_id[good.job_id].error is None and by_id[good.job_id].output is not None


def test_a_dead_model_thread_is_not_retried_and_leaves_the_unit_running() -> None:
    runner = FakeRunner()
    runner.die = True  # a BaseException: the owner's loop dies, and it fails the jobs
    core = make_core(runner)
    core.add(job("a", 1.0, 0.0))
    unit = core.schedule(1.0)
    assert unit is not None
    with pytest.raises(BaseException, match="crashed"):
        core.execute(unit)
    assert core.running == unit.jobs  # for the owner to fail
    core.clear()
    assert core.running == () and core.queued == 0


def test_settle_accounts_the_batch() -> None:
    core = make_core()
    jobs = [job("a", 1.0, 0.0, targets=("spa", "fra")), job("b", 2.0, 0.25)]
    for j in jobs:
        core.add(j)
    unit = core.schedule(0.5)
    assert unit is not None
    settled = core.settle(unit, core.execute(unit), started=0.5, ended=0.75)
    stats = settled.stats
    assert (stats.size, stats.padded_audio_s, stats.text_rows) == (2, 4.0, 3)
    assert stats.model_ms == pytest.approx(250.0)
    assert stats.queue_ms == pytest.approx((500.0, 250.0))
    assert [o.job_id for o in settled.outcomes] == [j.job_id for j in jobs]
    assert [o.queue_ms for o in settled.outcomes] == pytest.approx([500.0, 250.0])
    assert all(o.output is not None and o.error is None for o in settled.outcomes)
    assert not settled.optional and core.running == ()


def test_an_optional_batch_counts_against_every_final_waiting_and_only_finals() -> None:
    core = make_core()
    caption = job("a", 1.0, 0.0, droppable=True)
    core.add(caption)
    unit = core.schedule(1.0)
    assert unit is not None and unit.optional
    # while it ran: a final queued, a final and a caption computing their features (the owner's)
    queued_final = job("b", 1.0, 1.1)
    core.add(queued_final)
    preparing_final, preparing_caption = job("c", 1.0, 1.2), job("d", 1.0, 1.2, droppable=True)
    settled = core.settle(unit, core.execute(unit), 1.0, 1.5, preparing=[preparing_final, preparing_caption])
    assert settled.optional
    assert settled.outcomes[0].optional_ms == 0.0 and settled.outcomes[0].optional_batches == 0
    for final in (queued_final, preparing_final):
        assert final.optional_s == pytest.approx(0.5) and final.optional_batches == 1
    assert (preparing_caption.optional_s, preparing_caption.optional_batches) == (0.0, 0)
    # the final's own outcome says what it waited behind
    final_unit = core.schedule(2.0)
    assert final_unit is not None and final_unit.jobs == (queued_final,)
    outcome = core.settle(final_unit, core.execute(final_unit), 2.0, 2.1).outcomes[0]
    assert outcome.optional_ms == pytest.approx(500.0) and outcome.optional_batches == 1
    assert outcome.queue_ms == pytest.approx(900.0)


def test_a_final_batch_counts_against_nobody() -> None:
    core = make_core()
    core.add(job("a", 1.0, 0.0))
    waiting = job("b", 1.0, 0.5)
    unit = core.schedule(1.0)
    assert unit is not None
    core.add(waiting)
    core.settle(unit, core.execute(unit), 1.0, 2.0, preparing=[job("c", 1.0, 1.5)])
    assert (waiting.optional_s, waiting.optional_batches) == (0.0, 0)


def test_remove_and_remove_owner_drop_queued_jobs_only() -> None:
    core = make_core()
    a1, a2, b1 = job("a", 1.0, 0.0), job("a", 1.0, 0.1), job("b", 1.0, 0.2)
    for j in (a1, a2, b1):
        core.add(j)
    assert core.remove(b1.job_id) is b1 and core.remove(b1.job_id) is None
    assert core.remove_owner("a") == [a1, a2]
    assert core.queued == 0 and core.schedule(10.0) is None


def test_nothing_of_a_unit_stays_referenced_after_settle() -> None:
    runner = FakeRunner()
    core = make_core(runner)
    core.add(job("a", 1.0, 0.0))
    unit = core.schedule(1.0)
    assert unit is not None
    settled = core.settle(unit, core.execute(unit), 1.0, 1.1)
    assert settled.outcomes[0].output is not None
    seen = weakref.ref(unit.jobs[0]), weakref.ref(unit.jobs[0].item.audio), weakref.ref(unit)
    runner.ran.clear()  # the fake's own record of its inputs
    del unit, settled
    gc.collect()
    assert [ref() for ref in seen] == [None, None, None]
    assert core.running == () and core.queued_jobs() == []


def test_a_unit_not_settled_is_the_cores_until_cleared() -> None:
    """The check above can fail: a unit in the model is held (``running``) until settled."""
    core = make_core()
    core.add(job("a", 1.0, 0.0))
    unit: Unit | None = core.schedule(1.0)
    assert unit is not None
    seen = weakref.ref(unit.jobs[0])
    del unit
    gc.collect()
    assert seen() is not None
    core.clear()
    gc.collect()
    assert seen() is None


def test_the_core_loads_no_event_loop_and_no_futures() -> None:
    code = (
        "import sys, translate_svc.engine.core as c; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'concurrent', 'torch')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
