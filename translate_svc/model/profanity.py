"""The profanity filter (issue 72): listed words in a text, masked or removed, and the decoded
tokens that say them, for the speech to be made without them.

The lists: LDNOOBW ("List of Dirty, Naughty, Obscene, and Otherwise Bad Words", CC-BY-4.0), as
the npm package ``naughty-words`` 1.2.0 ships it, one file per model language code in
``profanity_lists/`` (its ``LICENSE`` beside them; docs/decisions.md). A language without a list
is not filtered.

A listed word matches as terms do (``translate_svc/words.py``: whole words, NFC, case folded):
``spans``. ``MASK`` keeps a match's first character and writes ``*`` for each of its other
characters but spaces (its length kept: ``fuck`` -> ``f***``); ``REMOVE`` deletes it with one
space beside it. ``token_keep`` says which decoded tokens of a row to keep for its speech: those
whose text does not overlap a match, so that t2u (which re-reads the text decoder over the
sequence it is given) never says a listed word, in either mode.

Pure functions; the lists are read once (a bounded cache): thread-safe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources

from translate_svc import words
from translate_svc.types import Profanity, WordTiming

#: where the lists are, in this package
LISTS = "translate_svc.model.profanity_lists"


@lru_cache(maxsize=256)
def listed(language: str) -> tuple[str, ...]:
    """The listed words and phrases of a model language code (empty: none shipped), longest
    first (a phrase wins over a word inside it)."""
    name = f"{language}.txt"
    path = resources.files(LISTS).joinpath(name)
    if not path.is_file():
        return ()
    found = {words.key(line, ignore_case=True) for line in path.read_text("utf-8").splitlines()}
    return tuple(sorted((w for w in found if w), key=lambda w: (-len(w), w)))


def languages() -> tuple[str, ...]:
    """The model language codes with a list."""
    files = resources.files(LISTS).iterdir()
    return tuple(sorted(f.name[:-4] for f in files if f.name.endswith(".txt")))


def spans(text: str, language: str) -> list[tuple[int, int]]:
    """``[start, end)`` of each listed word or phrase ``text`` says (in ``language``), sorted, not
    overlapping (where two overlap, the one starting first, then the longer, is kept)."""
    if not text:
        return []
    folded = text.casefold()
    found: list[tuple[int, int]] = []
    for phrase in listed(language):
        if phrase in folded or phrase.split(" ")[0] in folded:  # cheap refusal before the word rule
            found.extend(words.spans(phrase, text, ignore_case=True))
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
