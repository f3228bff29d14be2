"""Kept units spoken again (``ModelInput.keep_units``, ``ModelInput.respeak``): how a room's listeners'
speaking rates are made, as optional work after the speaker's own result, on the test checkpoint in
float32 on CPU.

A segment that keeps its units gives the output it gives without (its units beside it), on the
exact runner, the fast one and the stepping decoder (with its finish thread); a respeak of those
units at a rate (the vocoder alone) gives the speech, sample for sample within the runners'
tolerance, and the words the same segment gives at that rate: the same vocoder rows from the same
units, with no decoder row and no second text-to-unit pass. Several segments' units at several
rates go in one respeak batch. A respeak that means nothing is refused. Nothing asserts the random
model's words.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stepping import SteppingDecoder
from translate_svc.model_api.requests import ModelInput, ModelOutput, WorkKind
from translate_svc.types import SpokenUnits, WordTiming

pytestmark = [pytest.mark.integration, pytest.mark.slow(30)]

RATES = (1.5, 0.75)


@pytest.fixture(scope="module")
def pair(test_model_dir: Path) -> tuple[SeamlessRunner, SeamlessRunner]:
    """The exact runner (``generate``) and the fast one (our own loop) on one set of stages."""
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32")
    return SeamlessRunner(stages), SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=5))


@pytest.fixture(scope="module")
def spans(shared_audio: Path) -> list[np.ndarray]:
    x = read_16k(shared_audio / "jfk.flac")
    return [x[int(s * 16000) : int(e * 16000)] for s, e in ((0.3, 2.3), (3.3, 4.4), (5.4, 7.7))]


def stepped(runner: SeamlessRunner, items: list[ModelInput]) -> list[ModelOutput]:
    """Each item joining one running decode of the stepping decoder, finished on its own thread."""
    stepper = SteppingDecoder(runner, slots=8, finish_thread=True)
    got: dict[int, ModelOutput | None] = {}
    try:
        for k, item in enumerate(items):
            stepper.admit(k, item)
            got.update(stepper.tick(2))
        for _ in range(400):
            if not len(stepper):
                break
            got.update(stepper.tick(4))
    finally:
        if stepper.stage is not None:
            stepper.stage.close()
    outs = [got[k] for k in range(len(items))]
    assert all(out is not None for out in outs)
    return [out for out in outs if out is not None]


def timed(words: tuple[WordTiming, ...]) -> list[tuple[str, int, int]]:
    """Words as said and placed (a respeak's have no confidence: the session copies the speaker's)."""
    return [(w.word, w.start_ms, w.end_ms) for w in words]


def respeak_of(units: tuple[SpokenUnits, ...], words: bool) -> ModelInput:
    return ModelInput(
        np.zeros(0, np.float32),
        tuple(u.language for u in units),
        speech=True,
        words=words,
        renditions=tuple((u.language, rate) for u in units for rate in RATES),
        respeak=units,
    )


def test_kept_units_spoken_again_are_the_segments_speech_at_that_rate(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    exact, fast = pair
    items = [ModelInput(a, ("spa", "fra"), "eng", words=k != 1, keep_units=True) for k, a in enumerate(spans)]
    plain = [dataclasses.replace(i, keep_units=False) for i in items]
    at = {rate: fast.run([dataclasses.replace(i, speed=rate) for i in plain]) for rate in RATES}
    without = fast.run(plain)
    assert all(not out.units for out in without)
    kept = fast.run(items)
    for route in (exact.run(items), kept, stepped(fast, items)):
        for k, out in enumerate(route):
            # its own output is as without keeping (the texts, the speech's length and words)
            assert out.texts == without[k].texts
            assert {lang: len(w) for lang, w in out.waveforms.items()} == {
                lang: len(w) for lang, w in without[k].waveforms.items()
            }
            spoken = {lang for lang, w in out.waveforms.items() if len(w)}
            assert {u.language for u in out.units} == spoken and spoken, k
            for u in out.units:
                assert u.rate == 1.0 and len(u.units) > 0 and u.units.dtype == np.int64
                assert int(u.char_durations.sum()) == len(u.units)  # t2u's durations add up to its units
    jobs = [respeak_of(out.units, items[k].words) for k, out in enumerate(kept)]
    assert all(job.kind is WorkKind.RESPEAK and job.text_rows == 2 * len(job.respeak) for job in jobs)
    checked = words = 0
    for k, again in enumerate(fast.run(jobs)):  # every segment's units at every rate: one batch
        assert not again.texts and not again.waveforms
        assert [(r.language, r.rate) for r in again.renditions] == list(jobs[k].renditions)
        for r in again.renditions:
            made = at[r.rate][k]
            assert r.waveform.shape == made.waveforms[r.language].shape, (k, r.language, r.rate)
            np.testing.assert_allclose(r.waveform, made.waveforms[r.language], atol=1e-3)
            if items[k].words:
                assert timed(r.words) == timed(made.words[r.language]), (k, r.language, r.rate)
                words += len(r.words)
            checked += 1
    assert checked == sum(2 * len(job.respeak) for job in jobs) and words > 0


def test_a_respeak_that_means_nothing_is_refused() -> None:
    units = SpokenUnits("spa", 0, np.arange(5, dtype=np.int64), np.array([5], np.int64), (3, 9, 3))
    empty = np.zeros(0, np.float32)
    for bad in (
        {"renditions": ()},  # nothing to make
        {"renditions": (("spa", 1.0), ("spa", 1.0))},  # one rendition twice
        {"renditions": (("spa", 3.0),)},  # past the fastest rate
        {"renditions": (("fra", 1.5),)},  # no units of that language
        {"renditions": (("spa", 1.5),), "transcript_language": "eng"},  # a transcript of nothing
    ):
        with pytest.raises(ValueError, match="respeak"):
            ModelInput(empty, ("spa",), speech=True, respeak=(units,), **bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="respeak"):
        ModelInput(np.ones(160, np.float32), ("spa",), speech=True, renditions=(("spa", 1.5),), respeak=(units,))
