"""The CUDA code path, run on this CPU (issue 88: "the GPU does the work, not Python"): the runner
the server builds on CUDA (model/build.py ``build_runner(like="cuda")``: static decode pools read
one step behind, every stage's lengths and the encoder's rows on buckets, the batched vocoder),
warmed as the server warms it (``buckets``, through the steps core), then live segments of the
shared speech through the stepping decoder, counted by ``tests/support/dispatch_count.py``:

- it gives what the CPU plan gives (texts, transcripts, speech lengths): the static path's
  admission (known tokens fed by the steps), its read behind and the stages' parts are the same
  model;
- **the sync guard**: every stage runs inside a capture region (what CUDA graphs replay), and
  nothing inside one reads the device on the host or makes a tensor from host data (an ``item``,
  a blocking copy, a ``torch.tensor``): the rule that keeps every stage capturable;
- **no new shapes**: after the warm-up, live segments of varied lengths meet no convolution,
  matrix product or attention shape it did not run (on CUDA each is a kernel selection or a cuDNN
  plan on the request: 4.7x a warm segment on an H200), and the server's own count
  (``translate_svc_model_cold_shapes_total``) stays at 0.

Before issue 88 (9cd520c) neither held: buckets were off on CUDA (55.6 new shapes a segment,
shared/research/gpu-host-costs.md) and only the decode step was a capture region. Nothing here
asserts the random model's words: only equalities and counts.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.dispatch_count import SyncInRegion
from tests.support.host_path import counting, cuda_plan_runner, through_stepper, warm_as_served
from tests.support.speech import read_16k, vad_segments
from translate_svc.model_api.requests import ModelInput

#: the module's warm-up is the server's whole CUDA warm-up, eagerly on this CPU: 510 s of its setup
#: on a 2-core machine at load 6 (2026-11-29), near the suite's 600 s hang guard; this guard is the
#: module's own, for a hang, not a speed bound
pytestmark = [pytest.mark.integration, pytest.mark.slow(150), pytest.mark.timeout(1800)]

#: every stage's capture regions (model/regions.py), each a CUDA graph per bucket there
REGIONS = {"encoder", "decode.admit", "decode.step", "t2u.chars", "t2u.units", "vocoder.durations", "vocoder.hifigan"}


#: the segmenter's length cap here (``vad.max_segment_ms``; 15 s by default): silero_test.wav's one
#: long phrase (12.3 s) is cut in two (6.9 and 5.3 s), as a server set to 7 s cuts it. The warm-up
#: covers every bucket up to the longest segment, and its cost grows with that length (HiFi-GAN's
#: buckets, most of it under cProfile); the same 56.5 s of speech, its lengths spread over the buckets
MAX_SEGMENT_MS = 7_000


@pytest.fixture(scope="module")
def segments(shared_audio: Path) -> list[np.ndarray]:
    """The server's VAD segments of both shared files, cut at ``MAX_SEGMENT_MS``: varied lengths
    (0.5 to 7 s)."""
    from translate_svc.vad.segmenter import SegmenterConfig

    config = SegmenterConfig(max_segment_ms=MAX_SEGMENT_MS)
    out: list[np.ndarray] = []
    for name in ("jfk.flac", "silero_test.wav"):
        out += [e.samples for e in asyncio.run(vad_segments(read_16k(shared_audio / name), config))]
    assert max(len(s) for s in out) > (MAX_SEGMENT_MS - 500) * 16  # a segment at the cap: the top buckets run
    return out


def items_of(segments: list[np.ndarray]) -> list[ModelInput]:
    """Segments as live jobs: a target and a transcript each (two decode rows)."""
    return [ModelInput(s, ("spa",), "eng", speech=True) for s in segments]


@pytest.fixture(scope="module")
def warmed(test_model_dir: Path, segments: list[np.ndarray]) -> tuple[Any, set[Any]]:
    """The CUDA plan's runner after the server's CUDA warm-up (``buckets`` up to the longest
    segment, batches of up to 2 segments of up to 2 rows), and the shapes the warm-up met."""
    from translate_svc.engine.warmup import WarmupConfig, WarmupMode
    from translate_svc.model.stages.shapes import encoder_lengths_s

    runner = cuda_plan_runner(test_model_dir)
    longest_s = max(len(s) for s in segments) / 16000
    config = WarmupConfig(WarmupMode.BUCKETS, encoder_lengths_s(longest_s), None, longest_s, rows_per_segment=2)
    with counting() as costs:
        warm_as_served(runner, config, max_rows=2)
    return runner, costs.seen


@dataclass(frozen=True)
class Live:
    """Every segment through the warmed runner's stepping decoder, admitted one at a time, then two
    at a time, as live segments after the warm-up: what several tests read (none changes the
    runner), run once for them. ``costs``: the counts of both runs, its shapes new unless the
    warm-up met them; ``speech_batches``: the finish batches (``stages.speech`` calls);
    ``guess_missed``: HiFi-GAN width guesses that fell short."""

    twos: list[Any]  # the outputs admitted two at a time
    steps: tuple[int, int]  # the decode steps of each run
    costs: Any
    speech_batches: int
    guess_missed: int


@pytest.fixture(scope="module")
def live(warmed: tuple[Any, set[Any]], segments: list[np.ndarray]) -> Live:
    runner, seen = warmed
    stages = runner.stages
    batches: list[int] = []
    speech = stages.speech

    def counted(*args: Any, **kwargs: Any) -> Any:
        batches.append(1)
        return speech(*args, **kwargs)

    stages.speech = counted
    misses = stages._vocoder.guess.misses
    try:
        with counting() as costs:
            costs.seen = set(seen)
            costs.mark_warm()
            _, one_steps, _ = through_stepper(runner, items_of(segments), 1)
            twos, two_steps, _ = through_stepper(runner, items_of(segments), 2)
    finally:
        del stages.speech  # the class's again
    return Live(twos, (one_steps, two_steps), costs, len(batches), stages._vocoder.guess.misses - misses)


def test_the_cuda_plan_gives_what_the_cpu_plan_gives(
    warmed: tuple[Any, set[Any]], live: Live, test_model_dir: Path, segments: list[np.ndarray]
) -> None:
    from translate_svc.model.build import build_runner
    from translate_svc.settings import ModelSettings

    runner, _ = warmed
    cpu = build_runner(ModelSettings(path=test_model_dir, device="cpu", dtype="float32", lid_path=None))
    assert not cpu.loop.loop.static and runner.stepper().loop.static  # two paths compared
    items = items_of(segments)
    got = live.twos
    want = cpu.run(items)
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g.texts == w.texts and g.transcript == w.transcript, f"segment {k}"
        assert {lang: len(x) for lang, x in g.waveforms.items()} == {lang: len(x) for lang, x in w.waveforms.items()}


def test_every_stage_runs_in_a_capture_region_that_never_reads_the_device(
    warmed: tuple[Any, set[Any]], segments: list[np.ndarray]
) -> None:
    """The sync guard: a sync or an upload inside a region raises (``HostCosts(strict=True)``)."""
    runner, _ = warmed
    with counting(strict=True) as costs:
        through_stepper(runner, items_of(segments[:4]), 1)
        through_stepper(runner, items_of(segments[4:8]), 2)
    assert set(costs.regions_seen) == REGIONS
    assert costs.region_syncs == []
    inside, outside = costs.total().in_regions, costs.total().kernels
    assert inside > 20 * outside  # the eager glue around the regions is small beside them


def test_the_guard_catches_a_read_inside_a_region() -> None:
    """What the guard is for: the reads a stage must not make inside its region raise there."""
    import torch

    from translate_svc.model import regions

    x = torch.arange(4.0)
    for read in (lambda: x.max().item(), lambda: int(x.sum()), lambda: x.tolist(), lambda: torch.tensor([1.0])):
        with counting(strict=True), pytest.raises(SyncInRegion), regions.region("stage"):
            read()
    with counting(strict=True) as costs:  # outside a region: counted, allowed
        x.max().item()
    assert sum(costs.total().syncs.values()) == 1


def test_a_warmed_server_meets_no_new_shape(warmed: tuple[Any, set[Any]], live: Live) -> None:
    runner, _ = warmed
    assert live.costs.new_signatures == []  # every segment, one and two at a time
    assert runner.stages.shapes.cold == {}  # the server's own count (the metric) agrees
    # and every part of every stage replays a graph the warm-up captured: no call on a bucket it
    # never met, which CUDA would run eagerly (``translate_svc_model_graph_misses_total``)
    assert graph_misses(runner) == {}


def graph_misses(runner: Any) -> dict[str, int]:
    parts = [*runner.stages.graphed, runner.stepper().loop.admission]
    return {p.name: p.misses for p in parts if p.misses}


def test_a_batch_reads_the_device_at_most_twice(live: Live, segments: list[np.ndarray]) -> None:
    """Besides the decode's read behind (a host buffer), a finish batch reads the device twice:
    text-to-unit's unit totals, then the vocoder's results; HiFi-GAN's width is guessed on the
    host (``FrameGuess``), and a guess that fell short costs one more read (counted)."""
    costs, batches, missed = live.costs, live.speech_batches, live.guess_missed
    ones, twos = live.steps
    syncs = {stage: sum(c.syncs.values()) for stage, c in costs.by_stage.items() if sum(c.syncs.values())}
    assert batches >= len(segments)
    assert syncs == {"t2u": batches, "vocoder": batches + missed}
    assert missed <= batches // 8  # the guess learns the frames a unit takes
    # the waits the CPU never runs are counted where they are written (model/regions.py
    # ``note_wait``): the decode's read behind, one a step (but where the pool had emptied), and
    # no upload that waits for an earlier copy (model/capture.py ``HostStaging``: the ring)
    behind = costs.total().read_behind
    assert ones + twos - 2 * len(segments) <= behind <= ones + twos


def test_the_jobs_that_end_in_a_tick_are_finished_in_one_call(
    warmed: tuple[Any, set[Any]], segments: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs whose rows end at different steps of one tick are finished together at its end: one
    ``finish`` (text-to-unit and the vocoder batched), not one a step a job ended at (each with
    its graph launches, copies and reads). The same segment twice, the second a step behind: the
    same decode, so it ends a step after the first."""
    runner, _ = warmed
    calls: list[int] = []
    finish = runner.finish

    def counted(inputs: Any, *rest: Any) -> Any:
        calls.append(len(inputs))
        return finish(inputs, *rest)

    monkeypatch.setattr(runner, "finish", counted)
    stepper = runner.stepper()
    ending = []  # the steps some row ended at
    original = stepper.loop.step

    def step() -> Any:
        ended = original()
        ending.extend([1] if ended else [])
        return ended

    monkeypatch.setattr(stepper.loop, "step", step)
    item = items_of(segments[:1])[0]
    stepper.admit(0, item)
    assert stepper.tick(1) == []  # its prefill and first step: a row needs more
    stepper.admit(1, item)
    got = dict(stepper.tick(10_000))  # one tick: it runs until the pool is empty
    assert sorted(got) == [0, 1] and all(out is not None for out in got.values())
    assert len(ending) >= 2  # their rows ended at different steps
    assert calls == [2]
    assert got[0].texts == got[1].texts


def test_renditions_meet_no_new_shape(warmed: tuple[Any, set[Any]], segments: list[np.ndarray]) -> None:
    """A room's listeners' rates (issue 90: each segment's speech made again at 1.5 and 0.75, more
    vocoder rows than the batch's text rows) keep to the row buckets and row-seconds the warm-up
    captured: the vocoder's groups are no larger than the text rows' (``max_rows``)."""
    runner, seen = warmed
    items = [ModelInput(s, ("spa",), "eng", speech=True, renditions=(("spa", 1.5), ("spa", 0.75))) for s in segments]
    with counting() as costs:
        costs.seen = set(seen)
        costs.mark_warm()
        got, _, _ = through_stepper(runner, items, 2)
    assert all(len(o.renditions) == 2 for o in got if o.waveforms.get("spa") is not None and len(o.waveforms["spa"]))
    assert costs.new_signatures == []
    assert graph_misses(runner) == {}


def test_respeak_batches_meet_no_new_shape(warmed: tuple[Any, set[Any]], segments: list[np.ndarray]) -> None:
    """A room's listeners' rates made later from kept units (``ModelInput.respeak``: the vocoder
    alone, optional batches of the engine's size, each job a vocoder row per rate, so a batch can
    bring more vocoder rows than any batch of text rows the warm-up ran) keep to the row buckets
    and lengths the warm-up captured."""
    runner, seen = warmed
    kept = [ModelInput(s, ("spa",), "eng", speech=True, keep_units=True) for s in segments]
    units = [o.units for o in through_stepper(runner, kept, 2)[0] if o.units]
    rates = (("spa", 1.5), ("spa", 0.75), ("spa", 1.25))
    again = [ModelInput(np.zeros(0, np.float32), ("spa",), speech=True, renditions=rates, respeak=u) for u in units]
    assert len(again) >= 4
    with counting() as costs:
        costs.seen = set(seen)
        costs.mark_warm()
        for k in range(0, len(again), 2):  # the warm-up's batches: 2 jobs (``max_batch_size``)
            got = runner.run(again[k : k + 2])
            assert all(len(o.renditions) == len(rates) for o in got)
    assert costs.new_signatures == []
    assert graph_misses(runner) == {}
