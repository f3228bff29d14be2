"""A stored glossary's checks and its CSV form (issue 73): plain values, no server."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from translate_svc.errors import InvalidInput
from translate_svc.glossaries.model import GlossaryEntry, GlossaryLimits, check_entries, check_id, parse_csv, to_csv

pytestmark = pytest.mark.unit

LIMITS = GlossaryLimits(max_entries=5, max_glossaries=3, max_per_request=2, max_import_bytes=4096, max_term_chars=20)
LANGS = ("spa", "fra", "eng")


def test_csv_reads_its_columns_in_any_order_with_quotes_and_a_bom() -> None:
    data = '\ufeffTarget_Language,phrase,translation,ignore_case\nspa,"Acme, Inc.",Acme S.A.,true\n\nfra,Bob,Robert,\n'
    assert parse_csv(data.encode(), LIMITS) == [
        GlossaryEntry("Acme, Inc.", "Acme S.A.", "spa", True),
        GlossaryEntry("Bob", "Robert", "fra", False),
    ]


def test_csv_round_trips() -> None:
    entries = [GlossaryEntry('say "hi"', "di hola", "spa", True), GlossaryEntry("x,y", "z", "fra")]
    assert parse_csv(to_csv(entries).encode(), LIMITS) == entries


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "empty"),
        (b"phrase,translation\nA,B\n", "name the columns"),
        (b"phrase,translation,target_language,colour\nA,B,spa,red\n", "name the columns"),
        (b"phrase,translation,target_language\nA,B\n", "line 2 has 2 cells"),
        (b"phrase,translation,target_language,ignore_case\nA,B,spa,maybe\n", "ignore_case"),
        (b"phrase,translation,target_language\n\xff\xfe,B,spa\n", "not UTF-8"),
        (b"phrase,translation,target_language\n" + b"a,b,spa\n" * 6, "more than 5 entries"),
        (b"x" * 5000, "at most 4096"),
    ],
)
def test_a_bad_csv_says_what_to_fix(data: bytes, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_csv(data, LIMITS)


@pytest.mark.parametrize(
    "entries,words",
    [
        ([], "at least one entry"),
        ([GlossaryEntry("a", "b", "spa")] * 6, "at most 5"),
        ([GlossaryEntry(" ", "b", "spa")], r"entries\[0\].phrase is empty"),
        ([GlossaryEntry("a", "", "spa")], r"entries\[0\].translation is empty"),
        ([GlossaryEntry("a" * 21, "b", "spa")], "21 characters; at most 20"),
        ([GlossaryEntry("a\nb", "b", "spa")], "control characters"),
        ([GlossaryEntry("a", "b", "xxx")], "not a text language"),
        ([GlossaryEntry("Ann", "b", "spa"), GlossaryEntry("Ann", "c", "spa")], "repeats"),
    ],
)
def test_bad_entries_say_what_to_fix(entries: list[GlossaryEntry], words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        check_entries(entries, LIMITS, LANGS)


def test_one_phrase_for_two_targets_or_in_two_cases_is_two_entries() -> None:
    check_entries(
        [GlossaryEntry("Ann", "Ana", "spa"), GlossaryEntry("Ann", "Anne", "fra"), GlossaryEntry("ann", "x", "spa")],
        LIMITS,
        LANGS,
    )


@pytest.mark.parametrize("bad", ["", "A", "-x", "a b", "a/b", "x" * 65])
def test_ids_are_checked(bad: str) -> None:
    with pytest.raises(InvalidInput, match="is not one"):
        check_id(bad)
    assert check_id("team-1_glossary") == "team-1_glossary"


_TEXTS = st.text(alphabet=st.sampled_from("aAb \u00e9\n\u200b"), max_size=22)
_ENTRIES = st.lists(
    st.builds(GlossaryEntry, _TEXTS, _TEXTS, st.sampled_from(["spa", "fra", "xxx"]), st.booleans()), max_size=6
)


@given(_ENTRIES)
def test_the_whole_list_checks_refuse_what_the_entry_walk_refuses_naming_the_same_entry(
    entries: list[GlossaryEntry],
) -> None:
    """``check_entries`` checks a list at once (C-speed passes) and walks it entry by entry only
    when it fails: a fault the passes missed would be a glossary stored unchecked. The walk, on
    every list, refuses exactly the lists ``check_entries`` refuses, with the same words."""
    from translate_svc import words
    from translate_svc.glossaries.model import _first_at_fault

    keys = [f"{e.target_language}\0{words.uncached_key(e.phrase, ignore_case=e.ignore_case)}" for e in entries]

    def said(check: Callable[[], None]) -> str:
        try:
            check()
        except InvalidInput as e:
            return e.message
        return ""

    walked = said(lambda: _first_at_fault(entries, LIMITS, set(LANGS), keys)) if entries else ""
    checked = said(lambda: check_entries(entries, LIMITS, LANGS))
    if entries and len(entries) <= LIMITS.max_entries:
        assert checked == walked
    else:
        assert checked
