"""What a word is for terms (issue 57, translate_svc/words.py): a KEEP phrase or a glossary phrase
is found in the source only as a whole word, after the same normalisation on every path; in
scripts written without spaces no boundary is asked for. ``model/stages/terms.py``'s ``said_in`` (what
row_terms and row_glossary ask) is the entry point every path uses."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from translate_svc.model.stages.terms import KEEP_WEIGHT, row_glossary, row_terms, said_in
from translate_svc.types import Term
from translate_svc.words import PhraseIndex, joins, key, occurrences

pytestmark = pytest.mark.unit


def entry(phrase: str, **kw: object) -> Term:
    return Term(phrase, glossary=True, translation="nube acme", target_language="spa", **kw)  # type: ignore[arg-type]


def test_a_kept_phrase_inside_a_longer_word_is_not_said() -> None:
    """The issue's case: KEEP "Ann" acted on "planning" (a substring, case-insensitive)."""
    ann = Term("Ann", keep=True)
    assert row_terms((ann,), transcript_row=False, transcript="We are planning it.") == []
    assert said_in(ann, "We are planning it.") == 0
    assert said_in(ann, "Ann and ann met; ANN's plan.") == 3
    assert row_terms((ann,), transcript_row=False, transcript="ask Ann about planning") == [("Ann", KEEP_WEIGHT, 1)]


def test_a_glossary_phrase_inside_a_longer_word_is_not_said() -> None:
    """The issue's case: the entry "cat" acted on "category" and forced its translation in."""
    cat = entry("cat")
    assert row_glossary((cat,), language="spa", source="The category is new.") == []
    assert said_in(cat, "The category is new.") == 0
    assert row_glossary((cat,), language="spa", source="The cat, the cats and the cat.") == [("nube acme", 2)]
    assert said_in(entry("Cat"), "a cat") == 0 and said_in(entry("Cat", ignore_case=True), "a cat") == 1


@pytest.mark.parametrize(
    ("phrase", "text", "times"),
    [
        ("猫", "我喜欢猫咪。", 1),  # Chinese: no spaces, no boundary asked for
        ("猫咪", "我的猫咪和你的猫咪", 2),
        ("東京", "東京都に住んでいます", 1),  # Japanese: kanji inside a longer run
        ("コーヒー", "アイスコーヒーを飲む", 1),  # katakana with its long-vowel mark
        ("แมว", "ฉันรักแมวมาก", 1),  # Thai
        ("AI", "我们用AI翻译", 1),  # Latin between Han characters: a word of its own
        ("AI", "我们用AIM翻译", 0),  # ... but not the start of a longer Latin word
        ("Acme", "用Acme的云", 1),
    ],
)
def test_scripts_written_without_spaces_need_no_boundary(phrase: str, text: str, times: int) -> None:
    assert occurrences(phrase, text, ignore_case=False) == times


@pytest.mark.parametrize(
    ("phrase", "text", "times"),
    [
        ("cafe", "un café", 0),  # é is not e
        ("cafe", "un cafe\u0301", 0),  # nor is e followed by a combining acute
        ("cafe\u0301", "un café noir", 1),  # NFC: the decomposed phrase is the composed word
        ("Acme  Cloud", "on acme\u00a0cloud\ttoday", 1),  # whitespace runs are one space
        ("GPT", "GPT4 and GPT-4", 1),  # a digit continues a word; a hyphen does not
        ("C++", "I write C++.", 1),  # a phrase ending in a symbol is bounded by it
        ("Müller", "Herr Müllers Haus, Herr Müller.", 1),
        ("straße", "STRASSE", 1),  # case folded (KEEP): ß folds to ss
        ("a a", "a a a", 1),  # not overlapping, from the left
        ("", "anything", 0),
    ],
)
def test_normalisation_and_boundaries(phrase: str, text: str, times: int) -> None:
    assert occurrences(phrase, text, ignore_case=True) == times


def test_the_keys_that_refuse_a_phrase_twice_are_the_matchers() -> None:
    assert key(" Acme\u00a0 Cloud ", ignore_case=True) == key("acme cloud", ignore_case=True) == "acme cloud"
    assert key("café", ignore_case=False) == key("cafe\u0301", ignore_case=False)
    assert key("Acme", ignore_case=False) != key("acme", ignore_case=False)
    assert joins("a", "b") and joins("猫", "\u0301") and not joins("猫", "咪") and not joins("a", "-")


# -- properties ---------------------------------------------------------------------------------

# letters and digits of scripts written with spaces, each its own NFC form and case fold
SPACED = string.ascii_letters + string.digits + "αβγδεζηθλμπσω" + "абвгдежзиклмн"
WORD = st.text(SPACED, min_size=1, max_size=6)
SEPARATOR = st.sampled_from([" ", ", ", ". ", " - ", " (", ") ", "! ", "\n", " / "])


@given(
    phrase=st.lists(st.text(string.ascii_lowercase, min_size=1, max_size=5), min_size=1, max_size=3).map(" ".join),
    others=st.lists(st.text("αβγδεζηθλμπσω0123456789", min_size=1, max_size=5), max_size=6),
    where=st.lists(st.integers(0, 6), max_size=4),
    seps=st.lists(SEPARATOR, min_size=12, max_size=12),
    upper=st.booleans(),
)
def test_a_phrase_is_found_wherever_it_stands_as_a_whole_word(
    phrase: str, others: list[str], where: list[int], seps: list[str], upper: bool
) -> None:
    """A phrase put between other words (of another alphabet, so they never say it), separated
    by spaces or punctuation, is found once per place it was put, in any case where the case is
    ignored."""
    words = list(others)
    for at in sorted(where, reverse=True):
        words.insert(min(at, len(words)), phrase.upper() if upper else phrase)
    text = "".join(w + seps[i % len(seps)] for i, w in enumerate(words))
    assert occurrences(phrase, text, ignore_case=True) == len(where)
    assert occurrences(phrase, text, ignore_case=False) == (0 if upper and phrase != phrase.upper() else len(where))


@given(phrase=WORD, before=st.text(SPACED, max_size=4), after=st.text(SPACED, max_size=4), left=SEPARATOR)
def test_a_phrase_is_never_found_inside_a_longer_word(phrase: str, before: str, after: str, left: str) -> None:
    """Letters or digits (of a spaced script) on either side make it another word; so does a
    combining mark after it."""
    if before or after:
        assert occurrences(phrase, f"{left}{before}{phrase}{after}{left}", ignore_case=True) == 0
    assert occurrences(phrase, f"{before}{phrase}\u0301!", ignore_case=False) == 0


@given(
    phrase=st.text("猫咪我你喜欢東京都にをアイスコーヒー", min_size=1, max_size=3),
    before=st.text("猫咪我你喜欢東京都にをアイスコーヒー", max_size=4),
    after=st.text("猫咪我你喜欢東京都にをアイスコーヒー", max_size=4),
)
def test_in_a_script_without_spaces_a_phrase_is_found_inside_any_run(phrase: str, before: str, after: str) -> None:
    assert occurrences(phrase, before + phrase + after, ignore_case=False) >= 1


# -- many phrases at once (issue 87 J3) -----------------------------------------------------------

# a small alphabet, so that phrases overlap, repeat, nest and touch: letters of a spaced script in
# both cases, a no-space script, marks, a character NFC composes, a non-BMP one, separators
MIXED = "abAB猫咪 ,-\u0301e\u00e9\U0001f600\u00df"


@given(
    phrases=st.lists(st.tuples(st.text(MIXED, max_size=4), st.booleans()), max_size=12),
    text=st.text(MIXED, max_size=40),
)
def test_an_index_counts_every_phrase_as_occurrences_does(phrases: list[tuple[str, bool]], text: str) -> None:
    """``PhraseIndex`` (one automaton pass for a stored glossary's phrases) says for each phrase
    exactly what ``occurrences`` says for it alone: the same words, boundaries, normalisation,
    case folding and no overlaps, whatever the phrases share."""
    said = PhraseIndex(phrases).counts(text)
    expected = {n: occurrences(p, text, ignore_case=fold) for n, (p, fold) in enumerate(phrases)}
    assert said == {n: times for n, times in expected.items() if times}


def test_an_index_of_phrases_that_overlap_counts_each_on_its_own() -> None:
    index = PhraseIndex([("aa", False), ("a a", False), ("AA", True), ("", False), ("猫", False)])
    assert index.size == 5
    text = "aaa aa a a AA 猫猫"
    assert index.counts(text) == {0: 1, 1: 1, 2: 2, 4: 2}  # "a a" inside "aa a a" joins the "a" before it
    assert [occurrences(p, text, ignore_case=f) for p, f in (("aa", False), ("a a", False), ("AA", True))] == [1, 1, 2]


#: whitespace of every kind Python and the regular expression know (tabs, the separators
#: \x1c-\x1f, NBSP, the ideographic space, line and paragraph separators) among letters and marks
_SPACED = st.text(alphabet=st.sampled_from(" \t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u2028\u2029\u3000\u200bab\u0301é水"))


@given(_SPACED)
@example("two  spaces")
@example(" a\u3000b\x1c")
def test_normalise_s_plain_text_path_says_what_the_regular_expression_says(text: str) -> None:
    """``normalise`` skips its regular expression for printable text without two spaces in a row
    (a glossary's keys, 10,000 at a time): it must give what the expression gives, for any text."""
    import unicodedata

    from translate_svc.words import _SPACES, normalise

    assert normalise(text) == _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()
