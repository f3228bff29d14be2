"""A row's glossary entries looked for all at once (issue 87 J3, ``model/stages/glossary_index.py``):
``row_glossary`` says exactly what asking ``said_in`` of each entry said (the rule stays
``words.occurrences``', on both its paths: each entry looked for, until the index is built, then
the index), its index is built once, off the asking thread, and shared by equal entries in another
tuple (another call naming the same stored glossary, a job off the engine's wire), and what is
kept is bounded."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.waiting import until
from translate_svc.model.stages import glossary_index
from translate_svc.model.stages.glossary_index import GlossaryIndexes
from translate_svc.model.stages.terms import row_glossary, said_in
from translate_svc.types import Term

pytestmark = pytest.mark.unit

ALPHABET = "acAC猫 -\u0301é"
PHRASE = st.text(ALPHABET, max_size=4)


def per_entry(terms: tuple[Term, ...], language: str, source: str) -> list[tuple[str, int]]:
    """What row_glossary said before it had an index: said_in asked of every entry, in order."""
    out = []
    for t in terms:
        times = said_in(t, source) if t.glossary and t.target_language == language else 0
        if times:
            out.append((t.translation, times))
    return out


TERM = st.one_of(
    st.builds(
        lambda p, tr, lang, fold: Term(p, glossary=True, translation=tr, target_language=lang, ignore_case=fold),
        PHRASE,
        st.text("xyz", min_size=1, max_size=3),
        st.sampled_from(["spa", "fra"]),
        st.booleans(),
    ),
    st.builds(lambda p: Term(p, keep=True), PHRASE),
    st.builds(lambda p: Term(p), PHRASE),
)


@given(terms=st.lists(TERM, max_size=10).map(tuple), source=st.text(ALPHABET, max_size=30))
def test_a_row_says_what_asking_each_entry_said(terms: tuple[Term, ...], source: str) -> None:
    for language in ("spa", "fra", "deu"):
        assert row_glossary(terms, language=language, source=source) == per_entry(terms, language, source)


def entries(n: int, target: str = "spa", chars: int = 0) -> tuple[Term, ...]:
    return tuple(
        Term(f"phrase {k}{'x' * chars}", glossary=True, translation=f"frase {k}", target_language=target)
        for k in range(n)
    )


@given(terms=st.lists(TERM, max_size=10).map(tuple), source=st.text(ALPHABET, max_size=30))
def test_an_index_says_what_asking_each_entry_said(terms: tuple[Term, ...], source: str) -> None:
    """The index's path itself (built at once here), beside the test above, which meets either."""
    indexes = GlossaryIndexes(background=False)
    for language in ("spa", "fra", "deu"):
        row = indexes.row(terms, language)
        said = {} if row.index is None else row.index.counts(source)
        assert [(row.entries[n].translation, t) for n, t in sorted(said.items())] == per_entry(terms, language, source)


def test_an_index_is_built_once_per_terms_and_shared_by_equal_ones() -> None:
    indexes = GlossaryIndexes(background=False)
    terms = (Term("boost me"), *entries(10), *entries(5, "fra"))
    first = indexes.row(terms, "spa")
    assert len(first.entries) == 10 and first.index is not None and first.index.size == 10
    assert indexes.row(terms, "spa").index is first.index
    rebuilt = tuple(Term(t.phrase, t.keep, t.weight, t.glossary, t.translation, t.target_language) for t in terms)
    other = indexes.row(rebuilt, "spa")  # equal entries, other objects (a job off the engine's wire)
    assert other.entries is not first.entries and other.index is first.index
    assert indexes.row(terms, "fra").index is not first.index


@pytest.mark.asyncio
async def test_an_index_is_built_off_the_asking_thread_and_used_once_built(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model thread never builds one: until the builder has, a row looks for each entry; a row
    asked for again meanwhile asks for no second build. (The build waits at a gate until the test
    has asked twice: a fast builder would otherwise finish between the two asks.)"""
    gate, builds, threads = threading.Event(), [], []
    real = glossary_index.PhraseIndex

    def gated(*args: Any) -> Any:
        threads.append(threading.current_thread().name)
        builds.append(1)
        gate.wait(30)
        return real(*args)

    monkeypatch.setattr(glossary_index, "PhraseIndex", gated)
    indexes = GlossaryIndexes()
    terms = entries(2000)
    assert indexes.row(terms, "spa").index is None
    assert indexes.row(terms, "spa").index is None
    gate.set()
    await until(lambda: indexes.row(terms, "spa").index is not None, timeout_s=30)
    assert len(builds) == 1 and threads[0].startswith("glossary-index")  # asked for once, off this thread
    assert indexes.row(terms, "spa").index is indexes.row(tuple(terms), "spa").index


def test_what_is_kept_is_bounded_by_characters() -> None:
    one = sum(len(t.phrase) for t in entries(10))
    indexes = GlossaryIndexes(most=int(2.5 * one), background=False)
    tuples = [entries(10, chars=k) for k in range(4)]  # about one's weight each: at most two kept
    first = [indexes.row(t, "spa").index for t in tuples]
    assert indexes.row(tuples[3], "spa").index is first[3]
    assert indexes.row(tuples[0], "spa").index is not first[0]  # dropped, built again
    huge = entries(100)  # over the bound alone: kept (the one just put stays), and the rest dropped
    big = indexes.row(huge, "spa").index
    assert indexes.row(huge, "spa").index is big
    assert indexes.row(tuples[3], "spa").index is not first[3]
