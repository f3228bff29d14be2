"""The profanity filter: listed words in a text, masked or removed, and the decoded
tokens that say them, for the speech to be made without them.

The lists: LDNOOBW ("List of Dirty, Naughty, Obscene, and Otherwise Bad Words", CC-BY-4.0), as
the npm package ``naughty-words`` 1.2.0 ships it, one file per model language code in
``profanity_lists/`` (its ``LICENSE`` beside them; docs/decisions.md). A language without a list
is not filtered.

A listed word matches as terms do (``translate_svc/words.py``: whole words, case folded), on a
text seen the way a reader sees it (``folded``; security finding J11: an invisible character inside a
word, a look-alike letter or decomposed accents let a listed word through): NFKC (fullwidth and
compatibility forms as their plain letters, a base letter and its combining marks composed),
Unicode's default-ignorable code points (zero-width spaces and joiners, soft hyphens, bidi and
variation marks, tags) dropped, the common Cyrillic and Greek look-alikes of Latin letters read as
those letters (``LOOKALIKES``, a table of our own: UTS #39's full confusables data is far wider
than a profanity list needs; docs/decisions.md), case folded, whitespace runs as one space. The
lists are folded the same way. Every compared character keeps where it came from in the text, so
a match is masked or removed in the text as it was written: ``spans``. ``MASK`` keeps a match's
first character and writes ``*`` for each of its other characters but spaces (its length kept:
``fuck`` -> ``f***``, ``f<ZWSP>uck`` -> ``f****``); ``REMOVE`` deletes it with one space beside
it. ``token_keep`` says which decoded tokens of a row to keep for its speech: those
whose text does not overlap a match, so that t2u (which re-reads the text decoder over the
sequence it is given) never says a listed word, in either mode.

Pure functions; the lists are read once (a bounded cache): thread-safe.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources

import regex

from translate_svc import words
from translate_svc.types import Profanity, WordTiming

#: where the lists are, in this package
LISTS = "translate_svc.model.finish.profanity_lists"

#: Cyrillic and Greek letters read as the Latin letter they look like (both cases: before case
#: folding, so that Greek capital eta is "H" and small eta "n"); from Unicode's confusables.txt
#: (UTS #39), those of its look-alikes that a word in Latin script can be spelt with
LOOKALIKES = str.maketrans(
    "АВЕЅІЈКМНОРСТХУԚԜаеѕіјһорсхуԁԛԝӏ"  # Cyrillic
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧαικνορυχγ",  # Greek
    "ABESIJKMHOPCTXYQWaesijhopcxydqwlABEZHIKMNOPTYXaikvopuxy",
)
_IGNORABLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")


@lru_cache(maxsize=256)
def listed(language: str) -> tuple[str, ...]:
    """The listed words and phrases of a model language code (empty: none shipped), longest
    first (a phrase wins over a word inside it)."""
    name = f"{language}.txt"
    path = resources.files(LISTS).joinpath(name)
    if not path.is_file():
        return ()
    found = {folded(line)[0].strip() for line in path.read_text("utf-8").splitlines()}
    return tuple(sorted((w for w in found if w), key=lambda w: (-len(w), w)))


def languages() -> tuple[str, ...]:
    """The model language codes with a list."""
    files = resources.files(LISTS).iterdir()
    return tuple(sorted(f.name[:-4] for f in files if f.name.endswith(".txt")))


@lru_cache(maxsize=4096)
def _kind(char: str) -> int:
    """``_IGNORED``, ``_MARK`` (a combining mark) or ``_BASE`` (anything else), for a non-ASCII
    character (a text holds few distinct ones: cached)."""
    if _IGNORABLE.match(char):
        return _IGNORED
    return _MARK if words.is_mark(char) else _BASE


_BASE, _MARK, _IGNORED = 0, 1, 2


def folded(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` as it is compared (the module's docstring), and for each of its characters where
    it came from in ``text``: ``[starts[k], ends[k])``, the whole of the letter (a base character
    with its combining marks and any default-ignorable ones that follow) it is part of. An ASCII
    letter with nothing after it that joins it is its own lower case (the common case, fast)."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    n, i = len(text), 0
    while i < n:
        c = text[i]
        j = i + 1
        ascii_ = c.isascii()
        if not ascii_ and _kind(c) == _IGNORED:
            i = j
            continue
        marks = None
        while j < n and not text[j].isascii() and _kind(text[j]) != _BASE:
            marks = marks or [c]
            if _kind(text[j]) == _MARK:
                marks.append(text[j])
            j += 1
        if c.isspace():
            if chars and chars[-1] == " ":
                ends[-1] = j  # (a run of whitespace is one space)
            elif chars:
                chars.append(" ")
                starts.append(i)
                ends.append(j)
        elif ascii_ and marks is None:
            chars.append(c.lower())
            starts.append(i)
            ends.append(j)
        else:
            letter = c if marks is None else "".join(marks)
            for f in unicodedata.normalize("NFKC", letter).translate(LOOKALIKES).casefold():
                chars.append(" " if f.isspace() else f)
                starts.append(i)
                ends.append(j)
        i = j
    return "".join(chars), starts, ends


def spans(text: str, language: str) -> list[tuple[int, int]]:
    """``[start, end)`` of each listed word or phrase ``text`` says (in ``language``), as offsets
    into ``text`` itself, sorted, not overlapping (where two overlap, the one starting first, then
    the longer, is kept). A phrase matches ``folded(text)`` by ``words.joins``' word rule."""
    if not text:
        return []
    phrases = listed(language)
    if not phrases:
        return []
    hay, starts, ends = folded(text)
    found: list[tuple[int, int]] = []
    for phrase in phrases:
        if phrase.split(" ")[0] not in hay:  # cheap refusal before the word rule
            continue
        first, last = phrase[0], phrase[-1]
        at = hay.find(phrase)
        while at >= 0:
            end = at + len(phrase)
            if (at == 0 or not words.joins(hay[at - 1], first)) and (
                end == len(hay) or not words.joins(last, hay[end])
            ):
                found.append((starts[at], ends[end - 1]))
                at = hay.find(phrase, end)
            else:
                at = hay.find(phrase, at + 1)
    kept: list[tuple[int, int]] = []
    for start, end in sorted(found, key=lambda s: (s[0], -s[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end))
    return kept


def _mask(word: str) -> str:
    return word[:1] + "".join(c if c.isspace() else "*" for c in word[1:])


def apply(text: str, language: str, mode: Profanity) -> str:
    """``text`` with its listed words masked or removed (``OFF``: as it is)."""
    if mode is Profanity.OFF:
        return text
    found = spans(text, language)
    if not found:
        return text
    out, at = [], 0
    for start, end in found:
        if mode is Profanity.MASK:
            out.append(text[at:start] + _mask(text[start:end]))
        else:
            before = text[at:start]
            if before.endswith(" "):
                before = before[:-1]
            elif text[end : end + 1] == " ":
                end += 1
            out.append(before)
        at = end
    out.append(text[at:])
    joined = "".join(out)
    return joined.strip() if mode is Profanity.REMOVE else joined


def words_of(timings: Sequence[WordTiming], language: str, mode: Profanity) -> tuple[WordTiming, ...]:
    """Word timings with each word filtered (``REMOVE``: a word that is all listed is left out)."""
    if mode is Profanity.OFF:
        return tuple(timings)
    out = []
    for w in timings:
        word = apply(w.word, language, mode)
        if word:
            out.append(dataclasses.replace(w, word=word) if word != w.word else w)
    return tuple(out)


def token_keep(tokens: Sequence[int], language: str, decode: Callable[[Sequence[int]], str]) -> list[bool]:
    """For each token of a decoded row's text (``tokens``: special tokens excluded), whether it is
    kept for the speech: False where its text overlaps a listed word of ``decode(tokens)``. Each
    token's text is where the decode of the tokens before it ends and the decode with it ends
    (computed only for a row that says a listed word)."""
    text = decode(tokens)
    found = spans(text, language)
    if not found:
        return [True] * len(tokens)
    keep = []
    prev = 0
    for i in range(len(tokens)):
        end = len(decode(tokens[: i + 1]))
        start, prev = min(prev, end), end
        keep.append(not any(start < e and s < end for s, e in found))
    return keep
