"""What a word is, for terms: the one rule by which a KEEP phrase, a glossary phrase or a term's
tokens are found in text (issue 57: terms act on words, never inside one).

Normalisation (``normalise``): Unicode NFC (a composed and a decomposed "é" are one letter), every
run of whitespace one space, none at either end. Case: folded (``str.casefold``) where the term's
kind ignores it, on both sides.

A word boundary: a match may not split a word. Where the phrase starts, the text's character
before it may not *join* the phrase's first character; where it ends, the text's character after
it may not join the phrase's last one. ``joins(a, b)``: ``b`` continues what ``a`` ends when

- ``b`` is a combining mark (it belongs to the character before it, whatever that is), or
- both are letters, digits or marks of a script written with spaces between words.

Scripts written without spaces (``NO_SPACE_SCRIPTS``: Chinese, Japanese, Thai, Lao, Khmer,
Burmese) have no mark of a word's end in the text, so no boundary is asked for next to their
characters: "猫" is found in "我喜欢猫咪", and "AI" in "用AI翻译" (a change of script is a boundary
anyway). A phrase that starts or ends with punctuation or a symbol ("C++", ".NET") is bounded
there by that character itself. The rule is the same on every path: a segment's transcript, a
text input, a simultaneous step's transcript, every door's terms; the decoder's side applies it at
token seams (model/terms.py).

Pure functions, no state but a bounded cache of compiled checks: thread-safe.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

import regex

#: scripts whose writing puts no space between words (Unicode Script_Extensions, so marks and
#: signs shared by several of them, as Japanese's "ー", count for each)
NO_SPACE_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar")
_NO_SPACE = regex.compile("[" + "".join(rf"\p{{scx={s}}}" for s in NO_SPACE_SCRIPTS) + "]")
_SPACES = regex.compile(r"\s+")


def normalise(text: str) -> str:
    """NFC, whitespace runs as one space, stripped: how a phrase and a text are compared."""
    spaced: str = _SPACES.sub(" ", unicodedata.normalize("NFC", text))
    return spaced.strip()


@lru_cache(maxsize=1024)  # a transcript is compared with every term of its row: normalised once
def key(phrase: str, *, ignore_case: bool) -> str:
    """The phrase as it is compared: ``normalise``, folded where the case is ignored (two
    phrases with one key match the same words: a request may not list both)."""
    text = normalise(phrase)
    return text.casefold() if ignore_case else text


def is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


def spaced_word_char(char: str) -> bool:
    """A letter, digit or mark of a script written with spaces between words."""
    return unicodedata.category(char)[0] in "LNM" and not _NO_SPACE.match(char)


def joins(before: str, after: str) -> bool:
    """Whether ``after`` (one character) continues the word or character that ``before`` ends: a
    match may not end between them."""
    return is_mark(after) or (spaced_word_char(before) and spaced_word_char(after))


def occurrences(phrase: str, text: str, *, ignore_case: bool) -> int:
    """Times ``text`` says ``phrase`` as a whole word (or words), not overlapping, from the
    left; both normalised, and case-folded where ``ignore_case``. 0 for an empty phrase."""
    needle = key(phrase, ignore_case=ignore_case)
    if not needle:
        return 0
    hay = key(text, ignore_case=ignore_case)
    first, last = needle[0], needle[-1]
    count, at = 0, hay.find(needle)
    while at >= 0:
        end = at + len(needle)
        if (at == 0 or not joins(hay[at - 1], first)) and (end == len(hay) or not joins(last, hay[end])):
            count += 1
            at = hay.find(needle, end)
        else:
            at = hay.find(needle, at + 1)
    return count


def spans(phrase: str, text: str, *, ignore_case: bool) -> list[tuple[int, int]]:
    """Where ``text`` says ``phrase`` as a whole word (or words), by the rule ``occurrences``
    counts with: ``[start, end)`` character offsets into ``text`` itself (not normalised: each of
    its characters is compared as NFC where that keeps its length, folded where ``ignore_case``,
    any whitespace as a space), not overlapping, from the left. Empty for an empty phrase."""
    needle = key(phrase, ignore_case=ignore_case)
    if not needle:
        return []
    # the text compared, character by character, with where each compared character came from
    chars: list[str] = []
    origin: list[int] = []
    nfc = unicodedata.normalize("NFC", text)
    for i, c in enumerate(nfc if len(nfc) == len(text) else text):  # offsets must stay the text's
        c = " " if c.isspace() else c
        for f in c.casefold() if ignore_case else c:
            chars.append(f)
            origin.append(i)
    hay = "".join(chars)
    first, last = needle[0], needle[-1]
    found: list[tuple[int, int]] = []
    at = hay.find(needle)
    while at >= 0:
        end = at + len(needle)
        if (at == 0 or not joins(hay[at - 1], first)) and (end == len(hay) or not joins(last, hay[end])):
            found.append((origin[at], origin[end - 1] + 1))
            at = hay.find(needle, end)
        else:
            at = hay.find(needle, at + 1)
    return found


def ends_in_word(phrase: str) -> bool:
    """Whether the phrase's last character is one a following letter would continue (a spaced
    script's letter, digit or mark): then a written phrase counts only where the next token does
    not continue it (model/terms.py); otherwise only a combining mark does."""
    text = normalise(phrase)
    return bool(text) and spaced_word_char(text[-1])
