"""The fast runner (issue 70: the exact runner's stages with our own decode loop, model/decode/batch.py)
held to the exact runner by stated tolerances on the test checkpoint in float32: every row's text
identical (a difference would have to be a near-tie of the top two logits; none is seen), the
speech of the same length and within 1e-3, word timings, text inputs, terms and simultaneous steps
the same. The exact runner's own parity tests (tests/model/test_runner.py) are untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput, ModelOutput, SimulRequest, SimulTarget, SourceText
from translate_svc.types import Term

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pair(test_model_dir: Path) -> tuple[SeamlessRunner, SeamlessRunner]:
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32")
    return SeamlessRunner(stages), SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=5))


@pytest.fixture(scope="module")
def spans(shared_audio: Path) -> list[np.ndarray]:
    x = read_16k(shared_audio / "jfk.flac")
    y = read_16k(shared_audio / "silero_test.wav")
    cuts = [(x, 0.3, 2.3), (x, 3.3, 4.4), (x, 5.4, 7.7), (x, 0.0, 5.0), (y, 0.0, 3.0), (y, 3.0, 4.2)]
    return [a[int(s * 16000) : int(e * 16000)] for a, s, e in cuts]


def same(exact: ModelOutput, fast: ModelOutput) -> None:
    assert fast.texts == exact.texts and fast.transcript == exact.transcript
    assert fast.waveforms.keys() == exact.waveforms.keys()
    for lang, wave in exact.waveforms.items():
        assert fast.waveforms[lang].shape == wave.shape, lang
        np.testing.assert_allclose(fast.waveforms[lang], wave, atol=1e-3)
    assert fast.words == exact.words and fast.transcript_words == exact.transcript_words


def test_segments_through_the_loop_equal_the_exact_runner(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    exact, fast = pair
    items = [ModelInput(a, ("spa", "fra"), "eng", words=k % 2 == 0) for k, a in enumerate(spans)]
    want, got = exact.run(items), fast.run(items)  # 18 rows through a pool of 5: rows join as others leave
    assert len({o.texts["spa"] for o in want}) >= 3  # the inputs matter
    for w, g in zip(want, got, strict=True):
        same(w, g)


def test_texts_terms_and_steps_through_the_loop_equal_the_exact_runner(
    pair: tuple[SeamlessRunner, SeamlessRunner], spans: list[np.ndarray]
) -> None:
    exact, fast = pair
    keep = (Term("the", keep=True), Term("and", weight=6.0))
    items = [
        ModelInput(np.zeros(0, np.float32), ("spa", "fra"), text=SourceText("hello there my friend", "eng")),
        ModelInput(spans[0], ("spa", "deu"), "eng", terms=keep),  # transcript first, then its translations
        ModelInput(spans[3], ("spa",), "eng", simul=SimulRequest((SimulTarget("spa"),))),
        ModelInput(spans[3], ("spa",), "eng", simul=SimulRequest((SimulTarget("spa"),), final=True)),
    ]
    for w, g in zip(exact.run(items), fast.run(items), strict=True):
        same(w, g)
        if w.simul is not None:
            assert g.simul is not None and g.simul.keys() == w.simul.keys()
            for lang, row in w.simul.items():
                assert (g.simul[lang].token_ids, g.simul[lang].committed) == (row.token_ids, row.committed)
                assert g.simul[lang].units_total == row.units_total


@pytest.mark.parametrize(
    ("choice", "dtype", "slots", "fast"),
    [
        ("exact", "float32", 3, False),
        ("fast", "float32", 3, True),
        ("auto", "float32", None, True),  # on CPU in float32 the fast runner (on CUDA too: tests/gpu)
        ("auto", "auto", 3, True),  # auto is float32 on CPU
        ("auto", "bfloat16", None, False),  # reduced precision on CPU: each row alone, as generate
    ],
)
def test_the_settings_pick_the_runner(
    test_model_dir: Path, choice: str, dtype: str, slots: int | None, fast: bool
) -> None:
    """``model.runner``: ``auto`` is the fast runner on CPU in float32, the exact one in a reduced
    precision; ``model.decode_slots`` sizes the fast runner's pool (None: 16 on CPU)."""
    from translate_svc.app import seamless_runner_factory
    from translate_svc.settings import ModelSettings

    settings = ModelSettings(path=test_model_dir, device="cpu", dtype=dtype, runner=choice, decode_slots=slots)
    runner = seamless_runner_factory(settings)()
    assert isinstance(runner, SeamlessRunner)
    assert (runner.loop is not None) == fast
    if runner.loop is not None:
        assert runner.loop.loop.slots == (slots or 16)
        # model.decode_graphs is on by default, and means nothing off CUDA: the eager step
        assert settings.decode_graphs and not runner.loop.loop.static and runner.loop.loop.replay is None
