"""The finish stage (model/finish/stage.py; ``model.finish_thread``): the stepping decoder hands the
jobs whose rows ended to a worker thread and goes on decoding the others. Through the real fast
runner on the test checkpoint (float32, CPU): what it returns equals the whole batch's; the decode
goes on while a job is finished (a finish held at a gate does not stop the other rows), the jobs
that end meanwhile are finished together; a job dropped while it is finished is not returned; a
finish that fails fails its job alone; ``close`` ends the worker. And the stage alone: a batch whose
run raises gives each of its jobs the failure, nothing lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.support.outputs import same
from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.finish.stage import FinishStage
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.forced import ForcedLengths
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stepping import SteppingDecoder
from translate_svc.model_api.requests import ModelInput, ModelOutput

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def forced(test_model_dir: Path) -> SeamlessRunner:
    """Every row decodes 2 forced tokens a second of speech, so when each job's rows end is known."""
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32", forced=ForcedLengths(2.0))
    return SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=8), finish_thread=True)


@pytest.fixture(scope="module")
def jfk(shared_audio: Path) -> np.ndarray:
    return read_16k(shared_audio / "jfk.flac")


class HeldFinisher:
    """The runner's own finisher for the stage's thread, recording each call's jobs and thread;
    ``hold``: the first call waits until ``open`` is set; ``fail``: a call with an input whose first
    sample is that value raises."""

    def __init__(self, runner: SeamlessRunner, *, hold: bool = False, fail: float | None = None) -> None:
        self.real = SeamlessRunner.finisher(runner)
        self.sizes: list[int] = []
        self.threads: list[threading.Thread] = []
        self.entered, self.open = threading.Event(), threading.Event()
        if not hold:
            self.open.set()
        self.fail = fail

    def __call__(self, inputs: Any, prefilled: Any, decoded: Any) -> list[ModelOutput]:
        self.sizes.append(len(inputs))
        self.threads.append(threading.current_thread())
        self.entered.set()
        assert self.open.wait(30), "the test never opened the finisher"
        if self.fail is not None and any(float(i.audio[0]) == self.fail for i in inputs):
            raise RuntimeError("a segment that fails after its decode")
        return self.real(inputs, prefilled, decoded)


def stepper_with(runner: SeamlessRunner, finisher: HeldFinisher, monkeypatch: pytest.MonkeyPatch) -> SteppingDecoder:
    monkeypatch.setattr(runner, "finisher", lambda: finisher)
    stepper = SteppingDecoder(runner, slots=8, finish_thread=True)
    assert stepper.stage is not None
    return stepper


def tick_until(stepper: SteppingDecoder, got: dict[int, ModelOutput | None], done: Any, ticks: int = 400) -> None:
    for _ in range(ticks):
        if done():
            return
        got.update(stepper.tick(1))
    raise AssertionError("never happened")


def test_the_decode_goes_on_while_a_job_is_finished_and_the_jobs_ended_meanwhile_finish_together(
    forced: SeamlessRunner, jfk: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [
        ModelInput(jfk[: 1 * 16000], ("spa",), "eng", words=True),  # 2 tokens: ends first
        ModelInput(jfk[16000 : 3 * 16000], ("spa", "fra"), "eng"),  # 4 tokens
        ModelInput(jfk[3 * 16000 : 6 * 16000], ("fra",), "eng", words=True),  # 6 tokens
    ]
    want = [forced.run([item])[0] for item in items]
    finisher = HeldFinisher(forced, hold=True)
    stepper = stepper_with(forced, finisher, monkeypatch)
    for key, item in enumerate(items):
        stepper.admit(key, item)
    got: dict[int, ModelOutput | None] = {}
    tick_until(stepper, got, finisher.entered.is_set)  # the first job is in the stage, held
    # the model thread goes on: the other jobs' rows decode to their end while it is held
    tick_until(stepper, got, lambda: len(stepper.loop) == 0)
    assert got == {} and len(stepper) == 3 and finisher.sizes == [1]
    finisher.open.set()
    tick_until(stepper, got, lambda: len(stepper) == 0)
    assert finisher.sizes == [1, 2]  # the two that ended while the first was finished: one call
    assert {t.name for t in finisher.threads} != {threading.current_thread().name}
    for k, item in enumerate(items):
        same(want[k], got[k], words=item.words)
    stepper.close()
    assert not any(t.is_alive() for t in finisher.threads)  # close ended the worker


def test_a_job_dropped_while_it_is_finished_is_not_returned(
    forced: SeamlessRunner, jfk: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    finisher = HeldFinisher(forced, hold=True)
    stepper = stepper_with(forced, finisher, monkeypatch)
    stepper.admit(0, ModelInput(jfk[:16000], ("spa",), None))
    stepper.admit(1, ModelInput(jfk[16000 : 3 * 16000], ("spa",), None))
    got: dict[int, ModelOutput | None] = {}
    tick_until(stepper, got, finisher.entered.is_set)
    stepper.drop(0)
    finisher.open.set()
    tick_until(stepper, got, lambda: len(stepper) == 0)
    assert list(got) == [1] and got[1] is not None
    stepper.close()


def test_a_finish_that_fails_on_the_stage_fails_its_job_alone(
    forced: SeamlessRunner, jfk: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = jfk[2 * 16000 : 3 * 16000].copy()
    bad[0] = 0.125  # the finisher fails every call with this input
    items = [ModelInput(jfk[:16000], ("spa",), "eng"), ModelInput(bad, ("spa",), "eng")]
    finisher = HeldFinisher(forced, fail=0.125)
    stepper = stepper_with(forced, finisher, monkeypatch)
    for key, item in enumerate(items):
        stepper.admit(key, item)  # both 2 tokens: they end at the same step, one call of 2
    got: dict[int, ModelOutput | None] = {}
    tick_until(stepper, got, lambda: len(stepper) == 0)
    assert finisher.sizes == [2, 1, 1]  # together, then one by one
    assert got[1] is None
    same(forced.run([items[0]])[0], got[0])
    stepper.close()


def test_the_stage_fails_each_job_of_a_batch_whose_run_raises() -> None:
    def run(jobs: list[int]) -> list[tuple[int, str]]:
        if 13 in jobs:
            raise RuntimeError("a bad batch")
        return [(j, "ok") for j in jobs]

    stage: FinishStage[int, tuple[int, str]] = FinishStage(
        run, lambda jobs: [(j, "failed") for j in jobs], torch.device("cpu")
    )
    stage.submit([1, 2])
    stage.submit([13])
    stage.close()  # runs what was handed over first
    assert len(stage) == 3
    got = dict(stage.collect())
    assert (got[13] == "failed" and got[1] == got[2] == "ok") or got == {1: "failed", 2: "failed", 13: "failed"}
    assert len(stage) == 0 and stage.jobs == 3
    stage.submit([4])  # a new worker after close
    assert stage.collect(wait_s=30) == [(4, "ok")]
    stage.close()


def test_wake_cuts_a_collects_wait_short() -> None:
    release = threading.Event()

    def run(jobs: list[int]) -> list[int]:
        assert release.wait(30)
        return jobs

    stage: FinishStage[int, int] = FinishStage(run, list, torch.device("cpu"))
    stage.submit([7])
    threading.Timer(0.05, stage.wake).start()
    t0 = time.monotonic()
    assert stage.collect(wait_s=30) == []  # woken, not by a result
    assert time.monotonic() - t0 < 25  # not the wait's end
    assert len(stage) == 1
    release.set()
    assert stage.collect(wait_s=30) == [7]
    stage.close()


def test_a_call_takes_the_oldest_hand_overs_up_to_its_job_cap() -> None:
    """Each job waits for its whole call's speech: a call takes the oldest hand-over and the next
    ones while they fit ``max_jobs`` (a hand-over larger than the cap still goes whole)."""
    release = threading.Event()
    calls: list[list[int]] = []

    def run(jobs: list[int]) -> list[int]:
        calls.append(jobs)
        assert release.wait(30)
        return jobs

    stage: FinishStage[int, int] = FinishStage(run, list, torch.device("cpu"), max_jobs=3)
    for part in ([1], [2], [3, 4], [5], [6, 7, 8, 9], [10]):
        stage.submit(part)  # the first call holds the worker until all are handed over
    release.set()
    got: list[int] = []
    while len(got) < 10:
        got += stage.collect(wait_s=30)
    stage.close()
    assert calls == [[1], [2, 3, 4], [5], [6, 7, 8, 9], [10]]
    assert sorted(got) == list(range(1, 11))
