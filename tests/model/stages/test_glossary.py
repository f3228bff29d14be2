"""Glossary entries' pure parts (issue 45): which rows they act on and how often, the forcing
step by step, the wire's kind, and every refusal's message."""

from __future__ import annotations

import pytest
import torch

from tests.support.fake_vocab import SEAMS
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.errors import InvalidInput
from translate_svc.model.stages.terms import GLOSSARY_WEIGHT, GlossaryForce, next_forced, row_glossary, row_terms
from translate_svc.session.task.checks import resolve_task
from translate_svc.settings import LimitsSettings
from translate_svc.transport.grpc import convert
from translate_svc.types import Language, ModelCard, ModelInfo, OutputOptions, Term

pytestmark = pytest.mark.unit

LIMITS = LimitsSettings()
CARD = ModelCard(
    info=ModelInfo(name="m", revision="r", is_test_model=True),
    languages=tuple(
        Language(c, c, speech_input=True, text_output=True, speech_output=True) for c in ("eng", "spa", "fra")
    ),
    num_speakers=1,
)


def entry(phrase: str = "Acme Cloud", translation: str = "Nube Acme", target: str = "spa", **kw: object) -> Term:
    return Term(phrase, glossary=True, translation=translation, target_language=target, **kw)  # type: ignore[arg-type]


def test_an_entry_acts_on_its_target_row_where_the_source_says_it_in_its_case() -> None:
    terms = (entry(), entry(translation="Nuage Acme", target="fra"), entry("gRPC", "gRPC-es", ignore_case=True))
    source = "Acme Cloud runs GRPC; acme cloud too. Acme Cloud!"
    assert row_glossary(terms, language="spa", source=source) == [("Nube Acme", 2), ("gRPC-es", 1)]
    assert row_glossary(terms, language="fra", source=source) == [("Nuage Acme", 2)]
    assert row_glossary(terms, language="deu", source=source) == []
    assert row_glossary(terms, language="spa", source=None) == []  # a transcript row: none
    # never a bias of its own in any row: not a BOOST term
    assert row_terms(terms, transcript_row=True, transcript=None) == []
    assert row_terms(terms, transcript_row=False, transcript=source) == []


def test_the_first_token_is_biased_then_the_rest_forced_until_written_as_often_as_said() -> None:
    processor = GlossaryForce([(((5, 6, 7), 1, "x"),), (), (((5, 6, 7), 1, "x"), ((5, 8), 2, "x"))], SEAMS)
    ids = torch.tensor([[0, 1], [0, 1], [0, 1]])
    out = processor(ids, torch.zeros(3, 10))  # type: ignore[arg-type]
    assert out[0, 5] == GLOSSARY_WEIGHT and out[0].abs().sum() == GLOSSARY_WEIGHT  # the first token alone
    assert out[1].abs().sum() == 0  # no entry
    assert out[2, 5] == GLOSSARY_WEIGHT  # shared first token: biased once
    scores = torch.arange(30.0).reshape(3, 10)
    out = processor(torch.tensor([[0, 5], [0, 5], [0, 5]]), scores.clone())  # type: ignore[arg-type]
    assert out[0, 6] == scores[0, 6] and torch.isinf(out[0]).sum() == 9  # only the next token stays
    assert torch.equal(out[1], scores[1])
    # row 2: (5, 6, 7) and (5, 8) both started; the first listed wins a tie of the same length
    assert torch.isfinite(out[2]).nonzero().flatten().tolist() == [6]
    done = torch.tensor([[0, 5, 6, 7, 5], [0, 1, 1, 1, 1], [0, 5, 6, 7, 5]])
    out = processor(done, torch.zeros(3, 10))  # type: ignore[arg-type]
    assert out[0].abs().sum() == 0  # written once, as often as said: left alone
    assert torch.isfinite(out[2]).nonzero().flatten().tolist() == [8]  # (5, 8) is still due twice


def test_a_forced_translation_ends_a_word_and_one_written_inside_a_word_is_not_written() -> None:
    """A translation of four tokens, two words (in ``Vocab``'s ids: the word starts 11 and 12,
    each followed by a piece that goes on a word, 110 and 111). Once written while due, the next
    step may not go on its last word (every piece that would, -inf; word starts, punctuation and
    the end stay); written with a letter after it, it was not written, and is due again."""
    nube = (11, 110, 12, 111)
    processor = GlossaryForce([((nube, 1, "e"),)], SEAMS)
    scores = torch.zeros(1, 202)
    out = processor(torch.tensor([[0, *nube]]), scores.clone())  # type: ignore[arg-type]
    assert torch.isinf(out[0, 100:200]).all() and torch.isinf(out[0, 201])  # pieces and the mark
    assert torch.isfinite(out[0, :100]).all() and torch.isfinite(out[0, 200])  # word starts and "."
    after = processor(torch.tensor([[0, *nube, 114]]), scores.clone())  # type: ignore[arg-type]
    assert after[0, 11] == GLOSSARY_WEIGHT and torch.isfinite(after[0]).all()  # due again: first token
    done = processor(torch.tensor([[0, *nube, 5]]), scores.clone())  # type: ignore[arg-type]
    assert done.abs().sum() == 0  # written as a word, as often as said: left alone


def test_the_longest_started_translation_is_continued() -> None:
    assert next_forced([1, 2, 3], [(3, 4), (2, 3, 9)]) == 9
    assert next_forced([1, 2], [(3, 4)]) is None
    assert next_forced([3], [(3,)]) is None  # one token: nothing to force after it


def test_the_wire_kind_converts_both_ways_and_foreign_fields_are_refused() -> None:
    msg = pb.Term(phrase="Acme", kind=pb.Term.TRANSLATE, translation="Nube", target_language="spa", ignore_case=True)
    (term,) = convert.terms([msg])
    assert term == entry("Acme", "Nube", ignore_case=True)
    assert convert.terms_to_pb([term]) == [msg]
    with pytest.raises(InvalidInput, match=r"terms\[0\]\.translation is set on a KEEP term: .* set kind TRANSLATE"):
        convert.terms([pb.Term(phrase="Acme", kind=pb.Term.KEEP, translation="Nube")])
    with pytest.raises(InvalidInput, match=r"terms\[0\]\.weight is 2: a TRANSLATE term takes no weight"):
        convert.terms(
            [pb.Term(phrase="Acme", kind=pb.Term.TRANSLATE, translation="N", target_language="spa", weight=2)]
        )


def test_counts_go_to_their_own_limits_before_conversion() -> None:
    glossary = [pb.Term(phrase=f"w{k}", kind=pb.Term.TRANSLATE) for k in range(LIMITS.max_glossary_entries)]
    convert.check_lists(pb.TranslateRequest(terms=[*glossary, *[pb.Term(phrase="b")] * 32]), LIMITS)
    with pytest.raises(InvalidInput, match=rf"^{LIMITS.max_glossary_entries + 1} glossary entries .* at most 128"):
        convert.check_lists(pb.TranslateRequest(terms=[*glossary, glossary[0]]), LIMITS)
    with pytest.raises(InvalidInput, match=r"^33 terms sent; this server allows at most 32"):
        convert.check_lists(pb.TranslateRequest(terms=[*glossary[:5], *[pb.Term(phrase="b")] * 33]), LIMITS)


def resolve(*terms: Term, source: str = "eng", targets: tuple[str, ...] = ("spa",)) -> None:
    resolve_task(CARD, LIMITS, source, list(targets), OutputOptions(), None, terms)


@pytest.mark.parametrize(
    ("term", "message"),
    [
        (entry(translation=" "), r"terms\[0\]\.translation is empty: a TRANSLATE term needs the target phrase"),
        (entry(translation="x" * 65), r"terms\[0\]\.translation is 65 characters; at most 64"),
        (entry(translation="a\nb"), r"terms\[0\]\.translation 'a\\nb' holds control characters"),
        (entry(phrase=""), r"terms\[0\]\.phrase is empty: give the source words"),
        (entry(target=""), r"terms\[0\]\.target_language is empty: a TRANSLATE term is for one target language"),
        (entry(target="xyz"), r"terms\[0\]\.target_language 'xyz' is not a language of this server"),
        (entry(target="fra"), r"terms\[0\]\.target_language is 'fra', not among target_languages \('spa'\)"),
        (entry(keep=True), r"terms\[0\] is both KEEP and TRANSLATE"),
    ],
)
def test_a_bad_entry_is_refused_saying_what_to_fix(term: Term, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        resolve(term)


def test_an_entry_for_the_source_language_or_twice_is_refused_and_one_per_target_is_fine() -> None:
    with pytest.raises(InvalidInput, match=r"terms\[0\]\.target_language 'eng' is the source language"):
        resolve(entry(target="eng"), targets=("eng", "spa"))
    with pytest.raises(InvalidInput, match=r"terms lists 'acme cloud' more than once for target 'spa'"):
        resolve(entry(ignore_case=True), entry("acme cloud", ignore_case=True))
    resolve(entry(), entry("acme cloud"), entry(target="fra"), Term("Acme Cloud"), targets=("spa", "fra"))


def test_without_a_source_language_an_entry_needs_the_identifier() -> None:
    with pytest.raises(
        InvalidInput, match=r"terms\[0\] is TRANSLATE and source_language is empty: .* set source_language"
    ):
        resolve(entry(), source="")


def test_a_stream_update_may_not_drop_a_language_an_entry_is_for() -> None:
    from translate_svc.session.task.change import TaskChange, change

    task = resolve_task(CARD, LIMITS, "eng", ["spa", "fra"], OutputOptions(), None, [entry()])
    assert change(CARD, LIMITS, task, TaskChange(("spa",))).target_languages == ("spa",)
    with pytest.raises(InvalidInput, match=r"terms\[0\]\.target_language is 'spa', not among .* may not drop"):
        change(CARD, LIMITS, task, TaskChange(("fra",)))
