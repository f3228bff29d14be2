"""``StepCore``'s bookkeeping (engine/step_core.py) with plain values: a fake stepper in which a
job takes one decode step per second of audio. Jobs end in later units than the one that took
them, ``running`` lists every job in the decode, removals reach the decode in the next unit, and a
runner without a stepper runs every job as a whole batch."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.fake_runner import FakeRunner
from translate_svc.engine.core import Core, Finished, Job, Unit
from translate_svc.engine.scheduler import BatchScheduler, SchedulerConfig
from translate_svc.engine.step_core import StepCore, StepUnit
from translate_svc.model_api.requests import ModelInput, ModelOutput, SourceText
from translate_svc.model_api.runner import Stepper
from translate_svc.types import MODEL_SAMPLE_RATE

pytestmark = pytest.mark.unit

_ids = iter(range(1_000_000))


class FakeStepper:
    """A job needs ``input_seconds`` steps; a tick stops after the step at which one ended."""

    def __init__(self, slots: int = 64) -> None:
        self.slots = slots  # jobs (a job is one row here) that decode at once; ``room``: those free
        self.left: dict[int, int] = {}
        self.dropped: list[int] = []
        self.cleared = 0
        self.closed = 0
        self.woken = 0
        self.admitted: list[int] = []

    def takes(self, item: ModelInput) -> bool:
        return item.text is None

    def admit(self, key: int, item: ModelInput, *, priority: int = 0) -> None:
        self.left[key] = round(item.input_seconds)
        self.admitted.append(key)

    def tick(self, max_steps: int) -> list[tuple[int, ModelOutput | None]]:
        out: list[tuple[int, ModelOutput | None]] = []
        for _ in range(max_steps):
            if not self.left:
                break
            for key in list(self.left):
                self.left[key] -= 1
                if self.left[key] <= 0:
                    del self.left[key]
                    out.append((key, ModelOutput(None, {"spa": f"job{key}"}, {})))
            if out:
                break
        return out

    def drop(self, key: int) -> None:
        self.dropped.append(key)
        self.left.pop(key, None)

    def clear(self) -> None:
        self.cleared += 1
        self.left.clear()

    def close(self) -> None:
        self.closed += 1
        self.clear()

    def wake(self) -> None:
        self.woken += 1

    def room(self, *, live: bool = True) -> int:
        return self.slots - len(self.left)


class SteppingFake(FakeRunner):
    def __init__(self) -> None:
        super().__init__()
        self.fake = FakeStepper()

    def stepper(self) -> Stepper | None:
        return self.fake


def job(owner: str, seconds: float, at: float = 0.0, *, text: bool = False) -> Job:
    source = SourceText("x" * round(seconds * 15), "eng") if text else None
    audio = np.zeros(0 if text else round(seconds * MODEL_SAMPLE_RATE), np.float32)
    return Job(next(_ids), owner, ModelInput(audio, ("spa",), None, text=source), at)


def make(runner: FakeRunner) -> StepCore:
    return StepCore(BatchScheduler(SchedulerConfig(max_batch_size=4, max_wait_s=0.0)), runner, steps=2)


def turn(core: StepCore, now: float) -> tuple[Unit | None, list[int]]:
    unit = core.schedule(now)
    if unit is None:
        return None, []
    settled = core.settle(unit, core.execute(unit), now, now + 0.001)
    return unit, [o.job_id for o in settled.outcomes]


def test_step_core_is_a_core_and_jobs_end_in_later_units() -> None:
    runner = SteppingFake()
    core: Core = make(runner)  # mypy checks that StepCore implements the Protocol
    assert isinstance(core, StepCore)
    long, short, text = job("a", 6.0), job("b", 1.0), job("c", 1.0, text=True)
    core.add(long)
    unit, ended = turn(core, 0.0)
    assert unit is not None and unit.jobs == (long,) and ended == []
    assert list(core.running) == [long]  # still decoding after its unit settled
    core.add(short)
    core.add(text)
    unit, ended = turn(core, 1.0)  # the text runs whole; the short job ends at the first step
    assert unit is not None and set(unit.jobs) == {short, text}
    assert sorted(ended) == sorted([short.job_id, text.job_id])
    assert runner.batches == [1] and list(core.running) == [long]
    while core.running:
        unit, ended = turn(core, 2.0)
        assert unit is not None and unit.jobs == ()  # a unit to go on with, nothing new taken
    assert ended == [long.job_id]
    assert core.schedule(3.0) is None  # idle: nothing decoding, nothing queued


def test_removed_jobs_leave_the_decode_in_the_next_unit() -> None:
    runner = SteppingFake()
    core = make(runner)
    a, b, c = job("a", 9.0), job("b", 9.0), job("c", 9.0)
    for j in (a, b, c):
        core.add(j)
    turn(core, 0.0)
    assert core.remove(a.job_id) is a
    assert core.remove_owner("b") == [b]
    assert list(core.running) == [c]
    unit = core.schedule(1.0)
    assert isinstance(unit, StepUnit) and unit.drops == (a.job_id, b.job_id)
    finished = core.execute(unit)
    assert runner.fake.dropped == [a.job_id, b.job_id] and set(runner.fake.left) == {c.job_id}
    # a job removed while its unit was in the model is answered to nobody
    core.remove(c.job_id)
    settled = core.settle(unit, [*finished, Finished(c.job_id, None, None)], 1.0, 1.1)
    assert settled.outcomes == () and core.running == ()
    core.clear()
    unit = core.schedule(2.0)
    assert isinstance(unit, StepUnit) and unit.reset
    core.execute(unit)
    assert runner.fake.cleared == 1


def test_a_job_ending_later_gets_its_own_queue_wait_and_model_time() -> None:
    core = make(SteppingFake())
    long = job("a", 5.0, at=0.5)  # two steps a turn: it ends in the third
    core.add(long)
    turn(core, 1.0)
    turn(core, 2.0)
    unit = core.schedule(3.0)
    assert unit is not None
    settled = core.settle(unit, core.execute(unit), 3.0, 3.25)
    (outcome,) = settled.outcomes
    assert outcome.queue_ms == pytest.approx(500.0)  # until the unit that took it began
    assert outcome.model_ms == pytest.approx(2250.0)  # from then until it ended
    assert settled.stats.size == 1 and settled.stats.model_ms == pytest.approx(250.0)


def test_without_a_stepper_every_job_runs_as_a_whole_batch() -> None:
    runner = FakeRunner()
    core = make(runner)
    a, b = job("a", 5.0), job("b", 1.0)
    core.add(a)
    core.add(b)
    unit, ended = turn(core, 0.0)
    assert unit is not None and sorted(ended) == sorted([a.job_id, b.job_id])
    assert runner.batches == [2] and core.running == ()


def test_prepare_makes_the_stepper_once_before_the_first_unit() -> None:
    class Counted(SteppingFake):
        asked = 0

        def stepper(self) -> Stepper | None:
            self.asked += 1
            return super().stepper()

    runner = Counted()
    core = make(runner)
    core.prepare()
    assert runner.asked == 1
    core.add(job("a", 1.0))
    while core.running or core.queued:
        turn(core, 0.0)
    assert runner.asked == 1 and runner.fake.admitted  # the one made at prepare ran the job


def test_add_wakes_the_stepper_and_close_closes_it() -> None:
    runner = SteppingFake()
    core = make(runner)
    core.close()  # nothing made yet
    core.prepare()
    core.add(job("a", 1.0))  # a tick waiting for the finish stage is woken: new work
    assert runner.fake.woken == 1
    turn(core, 0.0)
    core.close()
    assert runner.fake.closed == 1 and runner.fake.left == {}


def test_a_full_pool_keeps_a_flood_in_the_queue_and_a_final_of_another_stream_takes_the_next_slot() -> None:
    runner = SteppingFake()
    runner.fake.slots = 4
    core = make(runner)
    flood = [job("flood", s) for s in (3.0, 4.0, 5.0, 6.0, 3.0, 3.0, 3.0, 3.0)]
    for j in flood:
        core.add(j)
    unit, _ = turn(core, 0.0)
    assert unit is not None and unit.jobs == tuple(flood[:4])  # the pool's four slots
    live = job("live", 1.0, at=0.5)
    core.add(live)
    unit, ended = turn(core, 1.0)  # the pool is full: nothing is taken, the rest waits in the queue
    assert unit is not None and unit.jobs == () and ended == [flood[0].job_id]
    assert core.queued == 5 and runner.fake.admitted == [j.job_id for j in flood[:4]]
    unit, _ = turn(core, 2.0)  # one slot free: the live final takes it, ahead of the flood's older four
    assert unit is not None and unit.jobs == (live,)
    while core.running or core.queued:
        turn(core, 3.0)
    assert sorted(runner.fake.admitted) == sorted(j.job_id for j in [*flood, live])  # all of them, in time


def test_an_idle_decode_takes_at_most_its_slots_and_a_removed_job_gives_its_slot_back_at_once() -> None:
    runner = SteppingFake()
    runner.fake.slots = 2
    core = make(runner)  # four jobs a unit at most
    core.prepare()  # as the engine's start does: the stepper's room is known before the first unit
    flood = [job("flood", 9.0) for _ in range(4)]
    for j in flood:
        core.add(j)
    unit, _ = turn(core, 0.0)  # nothing decodes: the pool's two slots bound the unit, not the batch size
    assert unit is not None and unit.jobs == tuple(flood[:2]) and core.queued == 2
    core.remove(flood[0].job_id)  # its slot is free as soon as the next unit drops it
    unit = core.schedule(1.0)
    assert isinstance(unit, StepUnit) and unit.drops == (flood[0].job_id,) and unit.jobs == (flood[2],)
    core.settle(unit, core.execute(unit), 1.0, 1.001)
    assert set(runner.fake.left) == {flood[1].job_id, flood[2].job_id}  # never more rows than slots
    core.clear()  # every job is forgotten and every slot comes back: the next unit takes two at once
    fresh = (job("x", 1.0), job("y", 1.0), job("z", 1.0))
    for j in fresh:
        core.add(j)
    unit = core.schedule(2.0)
    assert isinstance(unit, StepUnit) and unit.reset and unit.jobs == fresh[:2]
