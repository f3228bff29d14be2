"""The speaking rate (issue 90 item 1, ``ModelInput.speed``) on every route that speaks, on the test
checkpoint in float32 on CPU: the exact runner and the fast runner agree at 1.5 (segments, a text,
a simultaneous final step), the stepping decoder (with and without its finish thread) speaks
each job of a running decode at its own rate, word timings follow the scaled durations and stay
inside the speech, and a simultaneous chunk at 1.5 is 1/1.5 as long as at 1 (its units the
same). Lengths are counted in vocoder frames: speech at a rate is round(frames at 1 / rate)
frames; nothing asserts the random model's words.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest

from tests.support.outputs import same as same_stepped
from tests.support.runner_inputs import commit_first, rows_of, step_input, text_input
from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stepping import SteppingDecoder
from translate_svc.model_api.requests import ModelInput, ModelOutput, SimulTarget
from translate_svc.types import WordTiming

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]


@pytest.fixture(scope="module")
def pair(test_model_dir: Path) -> tuple[SeamlessRunner, SeamlessRunner]:
    """The exact runner (``generate``) and the fast one (our own loop) on one set of stages."""
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32")
    return SeamlessRunner(stages), SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=5))


@pytest.fixture(scope="module")
def spans(shared_audio: Path) -> list[np.ndarray]:
    x = read_16k(shared_audio / "jfk.flac")
    y = read_16k(shared_audio / "silero_test.wav")
    cuts = [(x, 0.3, 2.3), (x, 3.3, 4.4), (x, 5.4, 7.7), (x, 0.0, 5.0), (y, 0.0, 3.0)]
    return [a[int(s * 16000) : int(e * 16000)] for a, s, e in cuts]


def hop(runner: SeamlessRunner) -> int:
    """Samples per vocoder frame (each HiFi-GAN stage's kernel - 2 x padding is its stride)."""
    out = 1
    for stride, pad, kernel in runner.stages.vocoder_stages:
        assert kernel - 2 * pad == stride
        out *= stride
    return out


def at_speed(item: ModelInput, speed: float) -> ModelInput:
    return dataclasses.replace(item, speed=speed)


def scaled_length(wave_at_one: np.ndarray, speed: float, samples: int) -> int:
    """The samples speech at ``speed`` has: round(its frames at speed 1 / speed) frames."""
    frames = len(wave_at_one) // samples
    assert frames > 0 and len(wave_at_one) == frames * samples
    return samples * max(1, round(frames / speed))


def same(exact: ModelOutput, fast: ModelOutput) -> None:
    """tests/model/test_fast_runner.py's tolerances: the same texts, speech of the same length
    within 1e-3, the same words."""
    assert fast.texts == exact.texts and fast.transcript == exact.transcript
    assert fast.waveforms.keys() == exact.waveforms.keys()
    for lang, wave in exact.waveforms.items():
        assert fast.waveforms[lang].shape == wave.shape, lang
        np.testing.assert_allclose(fast.waveforms[lang], wave, atol=1e-3)
    assert fast.words == exact.words and fast.transcript_words == exact.transcript_words


def inside(words: tuple[WordTiming, ...], wave: np.ndarray) -> None:
    """Words ordered, each within the waveform (ms at 16 kHz)."""
    end_ms = round(len(wave) / 16)
    for a, b in itertools.pairwise(words):
        assert a.start_ms <= b.start_ms and a.end_ms <= b.start_ms, (a, b)
    assert all(0 <= w.start_ms <= w.end_ms <= end_ms for w in words), (words, end_ms)


def test_the_fast_runner_equals_the_exact_runner_at_rate_1_5(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    """Segments (some with word timings; one at 0.75 beside them), a text and a simultaneous final
    step at 1.5: the fast runner gives what the exact runner gives, and the speech is the rate's
    length against the same inputs at 1."""
    exact, fast = pair
    samples = hop(exact)
    items = [ModelInput(a, ("spa", "fra"), "eng", words=k % 2 == 0) for k, a in enumerate(spans)]
    items += [
        text_input("Hello world, how are you today?", "eng", ("spa",)),
        step_input(spans[3], SimulTarget("spa"), final=True),
    ]
    speeds = [1.5] * len(items)
    speeds[1] = 0.75
    base = exact.run(items)
    want = exact.run([at_speed(i, s) for i, s in zip(items, speeds, strict=True)])
    got = fast.run([at_speed(i, s) for i, s in zip(items, speeds, strict=True)])
    spoken = 0
    for b, w, g, speed in zip(base, want, got, speeds, strict=True):
        same(w, g)
        for lang, wave in b.waveforms.items():
            assert len(w.waveforms[lang]) == scaled_length(wave, speed, samples), (lang, speed)
            spoken += 1
        if w.simul is not None:
            assert g.simul is not None and b.simul is not None
            for lang, row in w.simul.items():
                assert (g.simul[lang].token_ids, g.simul[lang].chunk_units) == (row.token_ids, row.chunk_units)
                assert row.chunk is not None and g.simul[lang].chunk is not None
                np.testing.assert_allclose(g.simul[lang].chunk, row.chunk, atol=1e-3)
                one = b.simul[lang].chunk
                assert one is not None and len(row.chunk) == scaled_length(one, speed, samples)
                spoken += 1
    assert spoken >= 2 * len(spans) + 2


def test_word_timings_follow_the_rate_and_stay_inside_the_speech(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    """At 1.5 every word lies inside the (shorter) speech, in order, and starts and ends where
    its start and end at 1 fall divided by 1.5, within half a frame (cumulative rounding) and
    the milliseconds' rounding."""
    _, fast = pair
    samples = hop(fast)
    bound = samples / 16 / 2 + 1.5  # half a frame, in ms, and rounding to ms on both sides
    items = [ModelInput(a, ("spa", "fra"), "eng", words=True) for a in spans]
    one = fast.run(items)
    rated = fast.run([at_speed(i, 1.5) for i in items])
    checked = moved = 0
    for a, b in zip(one, rated, strict=True):
        for lang, words in a.words.items():
            got = b.words[lang]
            inside(got, b.waveforms[lang])
            assert [w.word for w in got] == [w.word for w in words]
            for w1, w15 in zip(words, got, strict=True):
                assert abs(w15.start_ms - w1.start_ms / 1.5) <= bound, (w1, w15)
                assert abs(w15.end_ms - w1.end_ms / 1.5) <= bound, (w1, w15)
                moved += w1.end_ms / 3 > bound  # at 1 it would be outside the bound: the test can fail
                checked += 1
    assert checked > 0 and moved > 0


def stepped(runner: SeamlessRunner, items: list[ModelInput], finish_thread: bool) -> dict[int, ModelOutput | None]:
    """Each item joining one running decode of the stepping decoder (two steps apart), to the end."""
    stepper = SteppingDecoder(runner, slots=8, finish_thread=finish_thread)
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
    return got


@pytest.mark.parametrize("finish_thread", [False, True])
def test_the_stepping_decoder_speaks_each_job_at_its_rate(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray], finish_thread: bool
) -> None:
    """Jobs at 1.0, 1.5, 0.75, 2.0 and 0.5 joining one running decode (finished together where
    they end together): each as the whole batch gives it, its speech the rate's length."""
    _, fast = pair
    samples = hop(fast)
    speeds = [1.0, 1.5, 0.75, 2.0, 0.5]
    base = fast.run([ModelInput(a, ("spa", "fra"), "eng") for a in spans])
    items = [
        ModelInput(a, ("spa", "fra"), "eng", words=k % 2 == 0, speed=s)
        for k, (a, s) in enumerate(zip(spans, speeds, strict=True))
    ]
    whole = fast.run(items)
    got = stepped(fast, items, finish_thread)
    assert sorted(got) == list(range(len(items)))
    for k, speed in enumerate(speeds):
        same_stepped(whole[k], got[k], items[k].words)
        for lang in ("spa", "fra"):
            assert len(whole[k].waveforms[lang]) == scaled_length(base[k].waveforms[lang], speed, samples)


def test_simultaneous_chunks_are_spoken_at_their_steps_rate(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    """An open step's committed chunk and a final step's chunk at 1.5 beside the same steps at 1,
    in one batch: the same units, each chunk round(frames / 1.5) frames and saying its rate, its
    words inside it; each row what it gets alone."""
    exact, _ = pair
    samples = hop(exact)
    r = exact.retranslator
    audio = spans[3]
    (plain,) = rows_of(r.retranslate([step_input(audio, SimulTarget("spa"))])[0])
    k = next(i for i in plain.word_starts if i > 0)
    steps = [
        step_input(audio, SimulTarget("spa"), min_units=1),  # an open step: commits its first word
        step_input(audio, SimulTarget("spa"), final=True),
    ]
    steps = [dataclasses.replace(s, words=True) for s in steps]
    batch = [*steps, *(at_speed(s, 1.5) for s in steps)]
    outs = r.retranslate(batch, commit=commit_first(k))
    for n in range(2):
        (one,) = rows_of(outs[n])
        (rated,) = rows_of(outs[n + 2])
        assert one.chunk is not None and rated.chunk is not None
        assert rated.chunk_units == one.chunk_units and rated.committed == one.committed
        assert (one.chunk_rate, rated.chunk_rate) == (1.0, 1.5)  # what the final's speech_rate reports
        assert len(rated.chunk) == scaled_length(one.chunk, 1.5, samples) < len(one.chunk)
        inside(rated.chunk_words, rated.chunk)
        assert [w.word for w in rated.chunk_words] == [w.word for w in one.chunk_words]
        (alone,) = rows_of(r.retranslate([batch[n + 2]], commit=commit_first(k))[0])
        assert alone.chunk is not None and alone.chunk.shape == rated.chunk.shape
        np.testing.assert_allclose(alone.chunk, rated.chunk, atol=1e-4)


def test_renditions_speak_a_target_again_at_other_rates_from_one_pass(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    """A segment with renditions (a room's listeners at other rates, issue 90) gives each
    (target, rate) the speech and words the same segment gives at that rate, beside its own at
    its speed, without a decoder row more; the exact runner and the fast runner agree; the
    stepping decoder gives what the batch gives."""
    exact, fast = pair
    asked = (("spa", 1.5), ("spa", 0.75), ("fra", 2.0))
    items = [
        ModelInput(a, ("spa", "fra"), "eng", words=k % 2 == 0, renditions=asked if k != 1 else (("fra", 1.5),))
        for k, a in enumerate(spans)
    ]
    alone = {
        rate: fast.run([dataclasses.replace(i, renditions=(), speed=rate) for i in items])
        for rate in (1.0, 1.5, 0.75, 2.0)
    }
    got_exact, got_fast = exact.run(items), fast.run(items)
    by_steps = stepped(fast, items, finish_thread=False)
    checked = timed = 0
    for k, item in enumerate(items):
        e, f, s = got_exact[k], got_fast[k], by_steps[k]
        assert s is not None
        same(e, f)
        same_stepped(f, s, item.words)
        same(alone[1.0][k], f)  # its own speech as without renditions
        for out in (e, f, s):
            assert [(r.language, r.rate) for r in out.renditions] == [
                (lang, rate) for lang in ("spa", "fra") for lang2, rate in item.renditions if lang2 == lang
            ]
            for r in out.renditions:
                at = alone[r.rate][k]
                assert r.waveform.shape == at.waveforms[r.language].shape, (k, r.language, r.rate)
                np.testing.assert_allclose(r.waveform, at.waveforms[r.language], atol=1e-3)
                if item.words:  # (a row that asked for none may get words its batch made)
                    assert r.words == at.words.get(r.language, ()), (k, r.language, r.rate)
                    inside(r.words, r.waveform)
                    timed += len(r.words)
                checked += 1
    assert checked == 3 * (len(asked) * 4 + 1) and timed > 0  # three runs: four segments with three, one with one


def test_a_rendition_is_refused_where_it_means_nothing() -> None:
    audio = np.zeros(1600, np.float32)
    for bad in ((("deu", 1.5),), (("spa", 1.0),), (("spa", 2.5),), (("spa", 1.5), ("spa", 1.5))):
        with pytest.raises(ValueError, match="rendition"):
            ModelInput(audio, ("spa",), "eng", renditions=bad)
