"""The stepping decoder (model/stepping.py, issue 70 item 2): segments admitted at different steps
of one running decode give what the whole-batch fast runner gives for them; a short job admitted
after a long one leaves first; a pool too small for every row queues the rest; a dropped job leaves
and the others go on; a job the pool refuses fails alone; jobs that end at the same step are
finished in one call (one that fails there is finished alone); a final takes a background job's
slots, and the background job still gives its own result. Test checkpoint, float32, CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.outputs import same
from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.forced import ForcedLengths
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stepping import SteppingDecoder
from translate_svc.model_api.requests import ModelInput, ModelOutput
from translate_svc.model_api.runner import BACKGROUND, FINAL
from translate_svc.observability import metrics
from translate_svc.types import Term

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fast(test_model_dir: Path) -> SeamlessRunner:
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32")
    return SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=8))


@pytest.fixture(scope="module")
def forced(test_model_dir: Path) -> SeamlessRunner:
    """Forced lengths: every row decodes 2 tokens a second of speech, so when a row ends is known."""
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32", forced=ForcedLengths(2.0))
    return SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=4))


@pytest.fixture(scope="module")
def spans(shared_audio: Path) -> list[np.ndarray]:
    x = read_16k(shared_audio / "jfk.flac")
    y = read_16k(shared_audio / "silero_test.wav")
    cuts = [(x, 0.3, 2.3), (x, 3.3, 4.4), (x, 5.4, 7.7), (x, 0.0, 5.0), (y, 0.0, 3.0), (y, 3.0, 4.2)]
    return [a[int(s * 16000) : int(e * 16000)] for a, s, e in cuts]


def items_of(spans: list[np.ndarray]) -> list[ModelInput]:
    return [ModelInput(a, ("spa", "fra"), "eng", words=k % 2 == 0) for k, a in enumerate(spans)]


def drain(stepper: SteppingDecoder, got: dict[int, ModelOutput | None], ticks: int = 200) -> int:
    """Tick until every job left; returns the ticks it took."""
    for n in range(ticks):
        if not len(stepper):
            return n
        got.update(stepper.tick(4))
    raise AssertionError("the stepping decoder never emptied")


@pytest.mark.parametrize("read_behind", [False, True])  # True: the flags read a step late, as on CUDA
def test_segments_admitted_at_different_steps_equal_the_whole_batch(
    fast: SeamlessRunner, spans: list[np.ndarray], read_behind: bool
) -> None:
    items = items_of(spans)
    want = fast.run(items)
    assert len({o.texts["spa"] for o in want}) >= 3  # the inputs matter
    stepper = SteppingDecoder(fast, slots=8, read_behind=read_behind)
    got: dict[int, ModelOutput | None] = {}
    for k, item in enumerate(items):  # one job joins every tick of two steps, the others decoding
        stepper.admit(k, item)
        got.update(stepper.tick(2))
    drain(stepper, got)
    assert sorted(got) == list(range(len(items)))
    for k, w in enumerate(want):
        same(w, got[k], items[k].words)
    assert len(stepper.loop) == 0 and stepper.backlog == 0


def test_a_pool_too_small_for_every_row_queues_the_rest(fast: SeamlessRunner, spans: list[np.ndarray]) -> None:
    items = items_of(spans[:4])  # 12 rows through 2 slots
    stepper = SteppingDecoder(fast, slots=2)
    for k, item in enumerate(items):
        stepper.admit(k, item, priority=k % 2)
    assert stepper.backlog == 12 and stepper.room() == 2 - 12  # the engine would take no more
    got: dict[int, ModelOutput | None] = dict(stepper.tick(1))
    assert len(stepper.loop) <= 2 and stepper.backlog >= 8  # the rest wait here
    assert stepper.room() == stepper.loop.free - stepper.backlog < 0
    drain(stepper, got)
    assert stepper.room() == stepper.room(live=False) == 2
    assert stepper.yielded == 0  # live rows never take each other's slots
    want = fast.run(items)
    for k, w in enumerate(want):
        same(w, got[k], items[k].words)


@pytest.mark.parametrize("read_behind", [False, True])
def test_a_dropped_job_leaves_and_the_others_go_on(
    fast: SeamlessRunner, spans: list[np.ndarray], read_behind: bool
) -> None:
    items = items_of(spans[:3])
    stepper = SteppingDecoder(fast, slots=9, read_behind=read_behind)
    for k, item in enumerate(items):
        stepper.admit(k, item)
    got: dict[int, ModelOutput | None] = dict(stepper.tick(2))
    assert not got and len(stepper.loop) == 9
    stepper.drop(1)
    assert len(stepper.loop) == 6
    drain(stepper, got)
    assert sorted(got) == [0, 2]
    want = fast.run([items[0], items[2]])
    same(want[0], got[0], items[0].words)
    same(want[1], got[2], items[2].words)
    stepper.drop(1)  # gone already: nothing happens


def test_a_job_the_pool_refuses_fails_alone(fast: SeamlessRunner, spans: list[np.ndarray]) -> None:
    stepper = SteppingDecoder(fast, slots=4, max_frames=20)  # about 3 s of speech a row
    stepper.admit(0, ModelInput(spans[3], ("spa",), "eng"))  # 5 s: too many frames
    stepper.admit(1, ModelInput(spans[1], ("spa",), "eng"))  # 1.1 s
    got: dict[int, ModelOutput | None] = {}
    drain(stepper, got)
    assert got[0] is None
    same(fast.run([ModelInput(spans[1], ("spa",), "eng")])[0], got[1])


def test_what_it_takes(fast: SeamlessRunner, spans: list[np.ndarray]) -> None:
    stepper = SteppingDecoder(fast, slots=2)
    assert stepper.takes(ModelInput(spans[0], ("spa",), "eng", terms=(Term("the", weight=3.0),)))
    assert not stepper.takes(ModelInput(spans[0], ("spa",), "eng", terms=(Term("the", keep=True),)))
    assert not stepper.takes(ModelInput(spans[0], (), None))  # no row at all
    with pytest.raises(ValueError, match="not work"):
        stepper.admit(0, ModelInput(spans[0], ("spa",), "eng", terms=(Term("the", keep=True),)))


def test_a_short_job_admitted_later_does_not_wait_for_a_long_one(forced: SeamlessRunner, shared_audio: Path) -> None:
    x = read_16k(shared_audio / "jfk.flac")
    stepper = SteppingDecoder(forced, slots=4)
    stepper.admit(0, ModelInput(x[: 7 * 16000], ("spa",), None))  # 14 tokens
    got: dict[int, ModelOutput | None] = dict(stepper.tick(3))
    stepper.admit(1, ModelInput(x[16000 : 2 * 16000], ("spa",), None))  # 2 tokens, 3 steps in
    steps = 0
    while 1 not in got:
        got.update(stepper.tick(1))
        steps += 1
    assert 0 not in got and len(stepper) == 1  # the long job still decodes
    short = steps
    while 0 not in got:
        got.update(stepper.tick(1))
        steps += 1
    assert short <= 3 < 10 <= steps  # the short job its own 3 steps; the long one its 14 (3 before)
    assert got[1] is not None and got[0] is not None


def pool_gauge(state: str) -> float:
    value: float = metrics.DECODE_POOL_ROWS.labels(state)._value.get()
    return value


class FinishCalls:
    """``SeamlessRunner.finish`` watched: the inputs of each call; ``fail_over``: a call with more
    inputs than that raises (as a bad batch would)."""

    def __init__(self, runner: SeamlessRunner, fail_over: int | None = None) -> None:
        self.runner, self.fail_over = runner, fail_over
        self.sizes: list[int] = []
        self.real = runner.finish

    def __call__(self, inputs, prefilled, decoded):  # type: ignore[no-untyped-def]
        self.sizes.append(len(inputs))
        if self.fail_over is not None and len(inputs) > self.fail_over:
            raise RuntimeError("a batch that fails")
        return self.real(inputs, prefilled, decoded)


@pytest.mark.parametrize("fail_together", [False, True])
def test_jobs_ending_at_the_same_step_are_finished_together(
    forced: SeamlessRunner, shared_audio: Path, monkeypatch: pytest.MonkeyPatch, fail_together: bool
) -> None:
    x = read_16k(shared_audio / "jfk.flac")
    y = read_16k(shared_audio / "silero_test.wav")
    # 4 tokens a row, and 3 tokens a row admitted a step later: they end at the same step, with
    # encoder outputs of different lengths from prefills of their own (padded together)
    items = [
        ModelInput(x[: 2 * 16000], ("spa",), "eng", words=True),
        ModelInput(y[16000 : 16000 + 22400], ("spa",), "eng"),
    ]
    want = forced.run(items)  # a whole batch: both finished in one call too
    calls = FinishCalls(forced, fail_over=1 if fail_together else None)
    monkeypatch.setattr(forced, "finish", calls)
    stepper = SteppingDecoder(forced, slots=4)
    stepper.admit(0, items[0])
    got: dict[int, ModelOutput | None] = dict(stepper.tick(1))
    stepper.admit(1, items[1])
    drain(stepper, got)
    assert calls.sizes == ([2, 1, 1] if fail_together else [2])
    same(want[0], got[0])
    same(want[1], got[1], words=not fail_together)  # alone, it is not timed (it did not ask)


def test_a_final_takes_a_background_jobs_slots(forced: SeamlessRunner, shared_audio: Path) -> None:
    x = read_16k(shared_audio / "jfk.flac")
    long = ModelInput(x[: 7 * 16000], ("spa", "fra"), "eng")  # 3 rows of 14 tokens: the pool full
    short = ModelInput(x[16000 : 2 * 16000], ("spa",), "eng")  # 2 rows of 2 tokens
    stepper = SteppingDecoder(forced, slots=3)
    yielded_before = metrics.DECODE_ROWS_YIELDED._value.get()
    stepper.admit(0, long, priority=BACKGROUND)
    got: dict[int, ModelOutput | None] = dict(stepper.tick(3))
    assert len(stepper.loop) == 3 and stepper.loop.free == 0
    assert pool_gauge("decoding") == 3 and pool_gauge("waiting") == 0
    # a live row has room (the background rows yield their slots); a background one has none
    assert stepper.room(live=True) == 3 and stepper.room(live=False) == 0
    stepper.admit(1, short, priority=FINAL)
    assert stepper.room(live=True) == 1  # its two rows are counted before their prefill
    steps = 0
    while 1 not in got:
        got.update(stepper.tick(1))
        steps += 1
    assert steps <= 3 and 0 not in got  # its own 2 tokens, not the background rows' 14
    assert stepper.yielded == 2  # two background rows left for it
    assert metrics.DECODE_ROWS_YIELDED._value.get() == yielded_before + 2
    drain(stepper, got)
    assert stepper.yielded == 2 and stepper.backlog == 0
    assert pool_gauge("decoding") == 0 and pool_gauge("waiting") == 0
    want = forced.run([long, short])
    same(want[1], got[1])
    same(want[0], got[0])  # the yielded row decoded again from its start: the same result


def test_a_forced_length_past_the_models_cap_decodes(forced: SeamlessRunner, shared_audio: Path) -> None:
    """Benchmark mode: 9 s forced to 18 tokens, past the test checkpoint's 16 (``generate`` lets
    forced lengths pass it): the pools make room, as the whole batch does."""
    item = ModelInput(read_16k(shared_audio / "jfk.flac")[: 9 * 16000], ("spa",), "eng")
    whole = forced.run([item])[0]
    stepper = SteppingDecoder(forced, slots=4)
    stepper.admit(0, item)
    got: dict[int, ModelOutput | None] = {}
    drain(stepper, got)
    same(whole, got[0])
    assert got[0] is not None and len(got[0].transcript_tokens) == 18  # every forced token, none cut


@pytest.mark.parametrize("static", [False, True])  # True: the CUDA path's admission (known tokens by steps)
def test_jobs_that_arrive_together_join_in_one_admission(
    fast: SeamlessRunner, spans: list[np.ndarray], static: bool
) -> None:
    """Issue 88: the rows of the jobs admitted since the last tick join the pool in one admission
    (on CUDA one graph launch), not one a job, and still give the whole batch's results."""
    items = items_of(spans[:3])
    want = fast.run(items)
    stepper = SteppingDecoder(fast, slots=16, static=static, read_behind=static)
    admissions: list[int] = []
    real = stepper.loop.admit

    def counted(rows, *args, **kw):  # type: ignore[no-untyped-def]
        admissions.append(len(rows))
        return real(rows, *args, **kw)

    stepper.loop.admit = counted  # type: ignore[method-assign]
    for key, item in enumerate(items):
        stepper.admit(key, item)
    got: dict[int, ModelOutput | None] = {}
    drain(stepper, got)
    assert admissions == [9]  # three jobs of three rows each (two targets and the transcript)
    for k, w in enumerate(want):
        same(w, got[k], items[k].words)


def test_one_pool_serves_the_running_decode_and_a_whole_batch(test_model_dir: Path, spans: list[np.ndarray]) -> None:
    """Issue 88: the runner's stepping decoder decodes in the runner's own pool (one pool, one set
    of graphs for every route); a whole batch (``Runner.run``: here segments with terms, which
    the stepper leaves to it) runs while the stepper's jobs hold rows there: those rows step on
    with it, the ones that finish come out at the stepper's next tick, and every job gives what it
    gives alone."""
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32")
    runner = SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=8))
    stepper = runner.stepper()
    assert stepper is not None and stepper.loop is runner.loop.loop  # type: ignore[union-attr,attr-defined]
    live = items_of(spans[:2])
    whole = [ModelInput(spans[3], ("spa",), "eng", terms=(Term("kwq", keep=True),))]
    assert not stepper.takes(whole[0])
    want_live, want_whole = runner.run(live), runner.run(whole)
    for key, item in enumerate(live):
        stepper.admit(key, item)
    got: dict[int, ModelOutput | None] = dict(stepper.tick(1))  # prefilled, admitted, one step
    assert len(stepper.loop) > 0  # rows in the pool while the whole batch runs
    got_whole = runner.run(whole)
    assert stepper._elsewhere  # some of the stepper's rows finished while the whole batch stepped
    drain(stepper, got)
    same(want_whole[0], got_whole[0], whole[0].words)
    for k, w in enumerate(want_live):
        same(w, got[k], live[k].words)
