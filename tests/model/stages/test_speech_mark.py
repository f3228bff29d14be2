"""The watermark where the vocoder's waves become a result's speech (model/stages/speech_mark.py),
on the test checkpoint: the finish (a segment's speech and its renditions, in one batch), a
respeak's renditions and a simultaneous step's chunks all carry the stages' marker's mark, and
``SeamlessStages.vocode`` itself stays the vocoder's own (unmarked) waves.

Nothing here asserts the random model's samples: only equalities, lengths and the detector's
reading of speech of 4 s and more. On this random-weight vocoder's output (not speech-like: it
saturates at +-1) the detector needs longer clips than on speech: measured, marked rows of 5.4 and
6.5 s read 0.967 and 1.0, of 1.2-2.7 s 0.003-0.51; unmarked 0.001 and under."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytest
import torch

from tests.support.speech import read_16k
from translate_svc.marking.watermarker import shared
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model.stages.speech_mark import SpeechMarker
from translate_svc.model_api.requests import ModelInput, ModelOutput

pytestmark = [pytest.mark.integration, pytest.mark.slow(40)]

T = TypeVar("T")


@pytest.fixture(scope="module")
def runner(test_model_dir: Path) -> Iterator[SeamlessRunner]:
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32")
    assert stages.marker is None and stages.card.speech_watermark == ""  # unmarked unless given one
    yield SeamlessRunner(stages)


@pytest.fixture(scope="module")
def marker() -> SpeechMarker:
    return SpeechMarker(shared())


def both(runner: SeamlessRunner, marker: SpeechMarker, run: Callable[[], T]) -> tuple[T, T]:
    """``run()`` on the stages unmarked, then with ``marker``."""
    plain = run()
    runner.stages.marker = marker
    try:
        return plain, run()
    finally:
        runner.stages.marker = None


def assert_marked(marker: SpeechMarker, plain: list[np.ndarray], marked: list[np.ndarray]) -> None:
    """``marked`` is ``plain`` marked as one batch; the waves of 4 s and more read as such."""
    want = marker.mark(plain, 16000)
    for p, m, w in zip(plain, marked, want, strict=True):
        assert m.shape == p.shape and not np.array_equal(m, p)
        np.testing.assert_array_equal(m, w)
    long = [(p, m) for p, m in zip(plain, marked, strict=True) if len(p) >= 4 * 16000]
    detector = shared()
    for p, m in long:
        assert detector.detect(m, 16000).probability > 0.8
        assert detector.detect(p, 16000).probability < 0.2
    return None


def spoken(outs: list[ModelOutput]) -> list[np.ndarray]:
    """A finish call's speech in the order it marks it (one batch): each output's targets', then
    each output's renditions."""
    return [*(w for out in outs for w in out.waveforms.values()), *(r.waveform for out in outs for r in out.renditions)]


def test_the_finish_marks_the_speech_and_renditions_and_a_respeak_its_own(
    runner: SeamlessRunner, marker: SpeechMarker, shared_audio: Path
) -> None:
    x = read_16k(shared_audio / "jfk.flac")
    item = ModelInput(x[int(0.3 * 16000) : int(4.4 * 16000)], ("spa", "fra"), "eng", keep_units=True)
    item_again = ModelInput(item.audio, ("spa", "fra"), "eng", renditions=(("spa", 0.75),))
    plain, marked = both(runner, marker, lambda: runner.run([item, item_again]))
    assert any(len(w) >= 4 * 16000 for w in spoken(plain))  # something long enough to read
    assert len(spoken(plain)) == 5
    assert_marked(marker, spoken(plain), spoken(marked))
    respeak = ModelInput(
        np.zeros(0, np.float32), ("spa",), speech=True, renditions=(("spa", 0.5),), respeak=plain[0].units[:1]
    )
    again, again_marked = both(runner, marker, lambda: runner.run([respeak]))
    assert_marked(marker, spoken(again), spoken(again_marked))


def test_a_simultaneous_chunk_is_marked_and_the_vocoder_alone_is_not(
    runner: SeamlessRunner, marker: SpeechMarker, shared_audio: Path
) -> None:
    x = read_16k(shared_audio / "jfk.flac")
    out = runner.run([ModelInput(x[int(5.4 * 16000) : int(10.6 * 16000)], ("spa",), "eng", keep_units=True)])[0]
    chunks = [np.asarray(out.units[0].units[:40]), np.asarray(out.units[0].units)]
    retranslator = runner.retranslator
    with torch.inference_mode():
        plain, marked = both(runner, marker, lambda: retranslator.vocode(chunks, ["spa", "spa"], [0, 1]).waves)
        stages = runner.stages
        units = torch.tensor(np.stack([np.pad(c, (0, len(chunks[1]) - len(c))) for c in chunks]), dtype=torch.long)
        raw, raw_marked = both(
            runner, marker, lambda: stages.vocode(units, [len(c) for c in chunks], ["spa"] * 2, [0, 1])
        )
    assert_marked(marker, plain, marked)
    for a, b in zip(raw.waves, raw_marked.waves, strict=True):
        np.testing.assert_array_equal(a, b)  # ``vocode`` alone: the vocoder's own waves
