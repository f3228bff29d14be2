"""The profanity filter (issue 72) on the runner: a listed word that a glossary entry forces into
a translation (so it is there on random weights) is masked or removed in the text, and the tokens
t2u makes the speech from (spied at ``SeamlessStages.speech``) no longer say it; off leaves both.
The matching rule itself (whole words, case folded, as terms) on plain strings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.support.speech import shared_pcm
from tests.support.term_reference import source_phrase
from translate_svc.model.decode.batch import LoopDecoder
from translate_svc.model.finish import profanity
from translate_svc.model.runner import SeamlessRunner
from translate_svc.model_api.requests import ModelInput, SimulTarget, SourceText
from translate_svc.session.task import inputs
from translate_svc.types import OutputOptions, Profanity, SimultaneousOptions, Term, TranslationTask

pytestmark = pytest.mark.unit

WORD = "mierda"  # listed in spa.txt (LDNOOBW)
SOURCE = "hello world, hello"
MASK_OF = "m*****"


def test_the_test_languages_have_lists() -> None:
    for lang in ("eng", "spa", "fra", "deu", "ita", "por"):
        assert len(profanity.listed(lang)) >= 20, lang
    assert WORD in profanity.listed("spa")
    assert profanity.listed("xyz") == ()


@pytest.mark.parametrize(
    ("text", "mode", "want"),
    [
        ("Eres una Mierda, de verdad.", Profanity.MASK, "Eres una M*****, de verdad."),
        ("Eres una mierda de verdad", Profanity.REMOVE, "Eres una de verdad"),
        ("mierda", Profanity.REMOVE, ""),
        ("mierdas y desmierda", Profanity.MASK, "mierdas y desmierda"),  # whole words only
        ("Eres una mierda", Profanity.OFF, "Eres una mierda"),
    ],
)
def test_words_match_whole_and_in_any_case(text: str, mode: Profanity, want: str) -> None:
    assert profanity.apply(text, "spa", mode) == want


def test_english_mask_keeps_the_length() -> None:
    assert profanity.apply("what the FUCK, assert", "eng", Profanity.MASK) == "what the F***, assert"


ZWSP, SHY, ZWJ, LRM = "\u200b", "\u00ad", "\u200d", "\u200e"


@pytest.mark.parametrize(
    ("text", "language", "mask", "removed"),
    [
        # invisible characters inside the word, and before and after it
        (f"what the f{ZWSP}uck, assert", "eng", "what the f****, assert", "what the, assert"),
        (f"what the fu{SHY}ck", "eng", "what the f****", "what the"),
        (f"eres una mi{ZWJ}er{LRM}da", "spa", "eres una m*******", "eres una"),
        (f"{ZWSP}fuck off", "eng", f"{ZWSP}f*** off", f"{ZWSP}off"),
        # look-alike letters: Cyrillic es and ie, Greek omicron and capital eta
        ("what the fu\u0441k", "eng", "what the f***", "what the"),
        ("eres una mi\u0435rda", "spa", "eres una m*****", "eres una"),
        ("\u0397OLY SHIT", "eng", "\u0397OLY S***", "\u0397OLY"),
        ("a b\u03b9tch", "eng", "a b****", "a"),
        # decomposed accents, fullwidth letters
        ("un cabro\u0301n", "spa", "un c******", "un"),
        ("\uff46\uff55\uff43\uff4b this", "eng", "\uff46*** this", "this"),
    ],
)
def test_a_disguised_word_is_found_and_filtered_where_it_was_written(
    text: str, language: str, mask: str, removed: str
) -> None:
    """Issue 87, J11: an invisible character, a look-alike letter or a decomposed accent let a
    listed word through (each of these texts came back unfiltered). The match is found on the
    folded text and masked or removed in the text as written: its offsets are the text's own."""
    assert profanity.apply(text, language, Profanity.MASK) == mask
    assert profanity.apply(text, language, Profanity.REMOVE) == removed


def test_the_fold_keeps_words_whole_and_other_text_as_it_was() -> None:
    """What folding must not do: join words (a look-alike inside a longer word is still inside
    it), or change text that says no listed word."""
    for text, language in [
        ("mierdas y desmi\u0435rda", "spa"),
        ("Scunthorpe and cla\u0455sic", "eng"),
        (f"pla{ZWSP}nning a \u0441lass", "eng"),
        ("\u043c\u0438\u0440 \u0432\u0430\u043c", "eng"),  # Russian text in an English row
    ]:
        assert profanity.apply(text, language, Profanity.MASK) == text
    hay, starts, ends = profanity.folded(f"A{ZWSP}e\u0301  \u0421")
    assert hay == "a\u00e9 c"  # (e and its mark composed, the run of spaces one)
    assert [(s, e) for s, e in zip(starts, ends, strict=True)] == [(0, 2), (2, 4), (4, 6), (6, 7)]


def glossary_input(mode: Profanity) -> ModelInput:
    term = Term("hello", glossary=True, translation=WORD, target_language="spa")
    return ModelInput(
        np.zeros(0, np.float32),
        ("spa",),
        None,
        speech=True,
        terms=(term,),
        text=SourceText(SOURCE, "eng"),
        profanity=mode,
    )


def spoken(runner: SeamlessRunner, item: ModelInput, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str]]:
    """The runner's output for ``item`` and the text of each sequence t2u was given."""
    stages = runner.stages
    real = stages.speech
    seen: list[str] = []

    def spy(enc: torch.Tensor, mask: torch.Tensor, seqs: torch.Tensor, *a: Any, **kw: Any) -> Any:
        seen.extend(stages.processor.batch_decode(seqs, skip_special_tokens=True))
        return real(enc, mask, seqs, *a, **kw)

    monkeypatch.setattr(stages, "speech", spy)
    try:
        return runner.run([item])[0], seen
    finally:
        monkeypatch.undo()


def said(text: str) -> int:
    return len(profanity.words.spans(WORD, text, ignore_case=True))


def test_off_leaves_the_forced_word_in_text_and_speech(runner: SeamlessRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    out, seen = spoken(runner, glossary_input(Profanity.OFF), monkeypatch)
    times = said(out.texts["spa"])
    assert times >= 1  # the glossary forced it (as a whole word at least once)
    assert len(seen) == 1 and said(seen[0]) == times


@pytest.mark.parametrize("mode", [Profanity.MASK, Profanity.REMOVE])
def test_a_forced_listed_word_is_filtered_and_not_spoken(
    runner: SeamlessRunner, monkeypatch: pytest.MonkeyPatch, mode: Profanity
) -> None:
    plain, plain_seen = spoken(runner, glossary_input(Profanity.OFF), monkeypatch)
    out, seen = spoken(runner, glossary_input(mode), monkeypatch)
    text = out.texts["spa"]
    assert said(text) == 0
    if mode is Profanity.MASK:
        assert text.count("m*****") == said(plain.texts["spa"]) >= 1
        assert text == profanity.apply(plain.texts["spa"], "spa", Profanity.MASK)
    else:
        assert "*" not in text and text == profanity.apply(plain.texts["spa"], "spa", Profanity.REMOVE)
    # the speech is made from the sequence without the word: what t2u was given, and shorter speech
    assert len(seen) == 1 and said(seen[0]) == 0
    assert seen[0].split() == [w for w in plain_seen[0].split() if w.strip(",.").casefold() != WORD]
    assert 0 < len(out.waveforms["spa"]) < len(plain.waveforms["spa"])


@pytest.mark.parametrize("mode", [Profanity.OFF, Profanity.MASK])
def test_a_simultaneous_final_step_shows_and_speaks_the_filtered_text(
    runner: SeamlessRunner, shared_audio: Path, test_model_dir: Path, monkeypatch: pytest.MonkeyPatch, mode: Profanity
) -> None:
    """A final step of a segment whose transcript says the glossary phrase: its committed text is
    filtered, and t2u (``SeamlessStages.units``, spied) is given the committed tokens without the word."""
    _, samples = shared_pcm(shared_audio, "jfk.flac")
    span = samples[: 16000 * 4]
    phrase = source_phrase(test_model_dir, [span])
    term = Term(phrase, glossary=True, translation=WORD, target_language="spa")
    task = TranslationTask(
        "eng", ("spa",), OutputOptions(profanity=mode), terms=(term,), simultaneous=SimultaneousOptions()
    )
    item = inputs.step_input(task, span, (SimulTarget("spa"),), final=True)
    stages = runner.stages
    real = stages.units
    seen: list[str] = []

    def spy(enc: torch.Tensor, mask: torch.Tensor, seqs: torch.Tensor, *a: Any, **kw: Any) -> Any:
        seen.extend(stages.processor.batch_decode(seqs, skip_special_tokens=True))
        return real(enc, mask, seqs, *a, **kw)

    monkeypatch.setattr(stages, "units", spy)
    row = runner.run([item])[0].simul["spa"]  # type: ignore[index]
    monkeypatch.undo()
    raw = runner.retranslator.text(row.committed)
    assert said(raw) >= 1, "the glossary did not force the word into the step"
    assert len(seen) == 1 and row.chunk is not None
    if mode is Profanity.OFF:
        assert row.committed_text == raw and said(seen[0]) == said(raw)
    else:
        assert said(row.committed_text) == 0 and MASK_OF in row.committed_text
        assert said(seen[0]) == 0 and said(row.text) == 0


def test_the_fast_runner_speaks_the_cut_sequence_not_its_kept_states(
    runner: SeamlessRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast runner (model/decode/batch.py) hands t2u the decode's kept hidden states; those are of the
    uncut sequence, so a cut row's group gets none and t2u re-reads the text decoder over the cut one."""
    fast = SeamlessRunner(runner.stages, LoopDecoder(runner.stages.decoder, runner.stages.processor, slots=4))
    stages = runner.stages
    real = stages.speech
    calls: list[tuple[str, bool]] = []

    def spy(enc: torch.Tensor, mask: torch.Tensor, seqs: torch.Tensor, *a: Any, **kw: Any) -> Any:
        text = stages.processor.batch_decode(seqs, skip_special_tokens=True)[0]
        calls.append((text, kw.get("text_states") is not None))
        return real(enc, mask, seqs, *a, **kw)

    monkeypatch.setattr(stages, "speech", spy)
    plain = fast.run([glossary_input(Profanity.OFF)])[0]
    masked = fast.run([glossary_input(Profanity.MASK)])[0]
    monkeypatch.undo()
    assert said(plain.texts["spa"]) >= 1 and said(masked.texts["spa"]) == 0 and MASK_OF in masked.texts["spa"]
    (off_text, off_states), (cut_text, cut_states) = calls
    assert said(off_text) >= 1 and off_states  # the fast path as it is
    assert said(cut_text) == 0 and not cut_states
    exact = runner.run([glossary_input(Profanity.MASK)])[0]  # the exact runner's speech of the cut sequence
    assert masked.texts == exact.texts and masked.waveforms["spa"].shape == exact.waveforms["spa"].shape
    np.testing.assert_allclose(masked.waveforms["spa"], exact.waveforms["spa"], atol=1e-3)
