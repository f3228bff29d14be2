"""A text spoken as written (``SourceText.as_written``: a dub's edited line, a studio's subtitle):
its row's tokens are the text's own, forced, whatever the weights would choose, through the exact
runner and the fast one, alone and batched with other work; the others unchanged by it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import read_16k
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model.stages.seamless import SeamlessStages
from translate_svc.model_api.requests import ModelInput, SourceText

pytestmark = pytest.mark.integration

#: short: the test checkpoint's decode pool holds 16 new tokens, and its tokenizer knows few pieces
LINES = ("the cat sat", "a mat, then")


@pytest.fixture(scope="module")
def pair(test_model_dir: Path) -> tuple[SeamlessRunner, SeamlessRunner]:
    stages = SeamlessStages(test_model_dir, device="cpu", dtype="float32")
    return SeamlessRunner(stages), SeamlessRunner(stages, LoopDecoder(stages.decoder, stages.processor, slots=3))


def written(text: str, language: str = "spa", **kw: object) -> ModelInput:
    return ModelInput(np.zeros(0, np.float32), (language,), text=SourceText(text, language, as_written=True), **kw)  # type: ignore[arg-type]


def said(runner: SeamlessRunner, text: str, language: str) -> str:
    """What the text's own tokens decode to (the test tokenizer knows few pieces: the rest is unk)."""
    tok = runner.stages.processor.tokenizer  # type: ignore[attr-defined]
    ids = tok(text, src_lang=language, add_special_tokens=False)["input_ids"]
    return str(tok.decode(ids, skip_special_tokens=True)).strip()


@pytest.mark.parametrize("fast", [False, True])
def test_a_written_text_says_its_own_tokens_alone_and_batched(
    pair: tuple[SeamlessRunner, SeamlessRunner], shared_audio: Path, fast: bool
) -> None:
    runner = pair[int(fast)]
    audio = read_16k(shared_audio / "jfk.flac")[16000 : 3 * 16000]
    others = [
        ModelInput(np.zeros(0, np.float32), ("spa",), text=SourceText(LINES[0], "eng")),  # translated, not forced
        ModelInput(audio, ("fra",), "eng"),
    ]
    items = [written(LINES[0], words=True), others[0], written(LINES[1], "fra", speaker_id=2, speed=1.2), others[1]]
    got = runner.run(items)
    for k, (line, lang) in ((0, (LINES[0], "spa")), (2, (LINES[1], "fra"))):
        assert got[k].texts == {lang: said(runner, line, lang)}, k
        assert got[k].transcript is None and len(got[k].waveforms[lang]) > 0
    assert got[0].words["spa"], "word timings of the spoken line"
    # the random weights do not say the line by themselves: the forcing is what made it
    assert got[1].texts["spa"] != got[0].texts["spa"]
    for k, alone in ((1, others[0]), (3, others[1])):
        want = runner.run([alone])[0]
        assert got[k].texts == want.texts
        for lang, wave in want.waveforms.items():
            np.testing.assert_allclose(got[k].waveforms[lang], wave, atol=1e-4)
    again = runner.run([items[2]])[0]  # alone: the same speech as batched
    np.testing.assert_allclose(again.waveforms["fra"], got[2].waveforms["fra"], atol=1e-4)


def test_a_written_text_is_spoken_in_its_own_language_only() -> None:
    with pytest.raises(ValueError, match="its own language as its one target"):
        ModelInput(np.zeros(0, np.float32), ("fra",), text=SourceText("hola", "spa", as_written=True))
    with pytest.raises(ValueError, match="its own language as its one target"):
        ModelInput(np.zeros(0, np.float32), ("spa", "fra"), text=SourceText("hola", "spa", as_written=True))


def test_a_written_text_past_the_generation_bound_is_said_whole_or_refused(
    pair: tuple[SeamlessRunner, SeamlessRunner],
) -> None:
    """Past the generation config's bound (16 new tokens here): the exact runner says it whole; the
    fast runner's pool, sized to that bound, refuses it (the engine then fails that input alone)."""
    exact, fast = pair
    line = "the cat sat on the mat"  # 17 pieces
    assert exact.run([written(line)])[0].texts == {"spa": said(exact, line, "spa")}
    with pytest.raises(ValueError, match="the pool holds"):
        fast.run([written(line)])
