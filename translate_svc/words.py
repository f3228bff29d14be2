"""What a word is, for terms: the one rule by which a KEEP phrase, a glossary phrase or a term's
tokens are found in text (terms act on words, never inside one).

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
token seams (model/stages/terms.py).

Many phrases at once (``PhraseIndex``, security finding J3): a stored glossary's thousands of phrases are
looked for in one pass of an Aho-Corasick automaton (pyahocorasick) over the text, by the same
rule ``occurrences`` applies to one phrase, instead of one ``find`` per phrase.

Pure functions, no state but a bounded cache of compiled checks: thread-safe. A ``PhraseIndex`` is
read-only once built: thread-safe too.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import ahocorasick
import regex

#: scripts whose writing puts no space between words (Unicode Script_Extensions, so marks and
#: signs shared by several of them, as Japanese's "ー", count for each)
NO_SPACE_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar")
_NO_SPACE = regex.compile("[" + "".join(rf"\p{{scx={s}}}" for s in NO_SPACE_SCRIPTS) + "]")
_SPACES = regex.compile(r"\s+")


def normalise(text: str) -> str:
    """NFC, whitespace runs as one space, stripped: how a phrase and a text are compared. A
    printable text's only whitespace is the ASCII space: without two in a row there is no run to
    make one (the common case, kept off the regular expression: a 10,000-entry glossary's keys)."""
    nfc = unicodedata.normalize("NFC", text)
    if nfc.isprintable() and "  " not in nfc:
        return nfc.strip()
    spaced: str = _SPACES.sub(" ", nfc)
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
    not continue it (model/stages/terms.py); otherwise only a combining mark does."""
    text = normalise(phrase)
    return bool(text) and spaced_word_char(text[-1])


def uncached_key(phrase: str, *, ignore_case: bool) -> str:
    """``key`` without its cache: for thousands of phrases keyed once (a stored glossary's, an
    index's), which would only push the transcripts' keys out of that cache."""
    text = normalise(phrase)
    return text.casefold() if ignore_case else text


class PhraseIndex:
    """Phrases (each with its own ``ignore_case``) looked for in a text at once: ``counts`` gives
    what ``occurrences`` gives for each (times said as a whole word, not overlapping, from the
    left), from one automaton pass over the text per case mode. Build once per set of phrases
    (a glossary's): building costs some µs a phrase (``make_automaton`` lets the GIL go) and
    about 50 bytes a character; a pass, a few µs per 100 characters. Read-only once built:
    thread-safe."""

    __slots__ = ("_automata", "chars", "size")

    def __init__(self, phrases: Iterable[tuple[str, bool]]) -> None:
        """``phrases``: (phrase, ignore_case), in the order ``counts`` numbers them."""
        tables: tuple[dict[str, list[int]], dict[str, list[int]]] = ({}, {})  # by key: the phrases' numbers
        size = chars = 0
        for n, (phrase, ignore_case) in enumerate(phrases):
            size = n + 1
            needle = uncached_key(phrase, ignore_case=ignore_case)
            if needle:  # an empty phrase is never said
                tables[ignore_case].setdefault(needle, []).append(n)
                chars += len(needle)
        automata: list[tuple[bool, ahocorasick.Automaton]] = []
        for fold, table in enumerate(tables):
            if table:
                automaton = ahocorasick.Automaton()
                for needle, numbers in table.items():
                    automaton.add_word(needle, (needle, tuple(numbers)))
                automaton.make_automaton()
                automata.append((bool(fold), automaton))
        self._automata = tuple(automata)
        #: how many phrases it was built from, and their characters (what it weighs: about 50 bytes
        #: a character)
        self.size = size
        self.chars = chars

    def counts(self, text: str) -> dict[int, int]:
        """Each phrase ``text`` says (by its number in the build's order): how many times, as
        ``occurrences`` counts them. Phrases it does not say are left out."""
        out: dict[int, int] = {}
        for fold, automaton in self._automata:
            hay = key(text, ignore_case=fold)
            if not hay:
                continue
            taken: dict[str, int] = {}  # by needle: where its last counted match ends
            for last, (needle, numbers) in automaton.iter(hay):
                at, end = last - len(needle) + 1, last + 1
                if at < taken.get(needle, 0):
                    continue  # overlaps the one counted before it
                if (at == 0 or not joins(hay[at - 1], needle[0])) and (
                    end == len(hay) or not joins(needle[-1], hay[end])
                ):
                    taken[needle] = end
                    for n in numbers:
                        out[n] = out.get(n, 0) + 1
        return out
