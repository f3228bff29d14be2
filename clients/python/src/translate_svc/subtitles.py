"""Subtitles from timed text, without I/O: cues as ``(start_ms, end_ms, text)``, cues from timed words
(caption conventions: at most two lines of about 42 characters), and the SRT and WebVTT documents
(``srt``, ``webvtt-py``).

Shared by the client commands (``translate --word-cues``, ``client_cli/output.py``) and the server's
OpenAI audio endpoints (``timestamp_granularities[]=word`` with ``srt`` or ``vtt``), so both shape
word cues by one rule. It ships in the client distribution, which the server depends on; it imports
nothing of either side (a leaf: the import-linter contracts), only ``srt`` and ``webvtt-py`` (the
client's ``cli`` extra, and the server's own dependencies).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Final

import srt
import webvtt

Cue = tuple[int, int, str]  # start_ms, end_ms, text
TimedWord = tuple[int, int, str]  # start_ms, end_ms, word

#: caption conventions (BBC, Netflix's timed-text style guides): at most this many lines of about
#: this many characters per cue
CUE_LINES: Final = 2
CUE_LINE_CHARS: Final = 42


def word_cues(groups: Iterable[Sequence[TimedWord]]) -> list[Cue]:
    """Cues from timed words: each group (a segment's words) filled greedily into lines of at most
    ``CUE_LINE_CHARS`` characters (a longer word alone on its line: never cut), a new cue once a
    third line would be needed; a cue never spans two groups. Each cue runs from its first word's
    start to its last word's end, so its text is exactly the words inside its times.

    A word of no length (transcript words that share an encoder frame, words past the vocoder's
    cut) on a cue's edge would lie inside both cues' times, so no cue begins or ends next to one:
    it stays in a cue with both its neighbours (``_runs``). Only a run of such words longer than
    two lines is cut (at its lines)."""
    out: list[Cue] = []
    for group in groups:
        cue: list[TimedWord] = []
        for run in _runs([w for w in group if w[2].strip()]):
            if cue and len(_lines([*cue, *run])) > CUE_LINES:
                out.append(_word_cue(cue))
                cue = []
            cue.extend(run)
            while len(lines := _lines(cue)) > CUE_LINES:  # a run longer than a cue
                n = sum(len(line) for line in lines[:CUE_LINES])
                out.append(_word_cue(cue[:n]))
                cue = cue[n:]
        if cue:
            out.append(_word_cue(cue))
    return out


def _runs(words: Sequence[TimedWord]) -> list[list[TimedWord]]:
    """``words`` cut only between two words that both have a length."""
    runs: list[list[TimedWord]] = []
    for w in words:
        if runs and (runs[-1][-1][1] <= runs[-1][-1][0] or w[1] <= w[0]):
            runs[-1].append(w)
        else:
            runs.append([w])
    return runs


def _lines(words: Sequence[TimedWord]) -> list[list[str]]:
    """The words filled greedily into lines of at most ``CUE_LINE_CHARS`` (a longer word alone)."""
    lines: list[list[str]] = []
    for _, _, word in words:
        if lines and len(" ".join([*lines[-1], word])) <= CUE_LINE_CHARS:
            lines[-1].append(word)
        else:
            lines.append([word])
    return lines


def _word_cue(words: Sequence[TimedWord]) -> Cue:
    start, end = words[0][0], words[-1][1]
    return (start, max(end, start + 1), "\n".join(" ".join(line) for line in _lines(words)))


def cue_text(text: str) -> str:
    """``text`` as a cue's: its lines stripped, blank ones dropped (a blank line would end the cue)."""
    lines = [line.strip() for line in text.strip().splitlines()]
    return "\n".join(line for line in lines if line)


def srt_document(items: Sequence[Cue]) -> str:
    doc: str = srt.compose(
        [
            srt.Subtitle(i, timedelta(milliseconds=start), timedelta(milliseconds=end), cue_text(text))
            for i, (start, end, text) in enumerate(items, 1)
        ]
    )
    return doc


def _vtt_time(ms: int) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{milli:03d}"


def vtt_document(items: Sequence[Cue]) -> str:
    """WebVTT; cue text is escaped (``&``, ``<``, ``>``), so model text is never read as cue markup."""
    doc = webvtt.WebVTT(
        captions=[
            webvtt.Caption(_vtt_time(start), _vtt_time(end), html.escape(cue_text(text), quote=False))
            for start, end, text in items
        ]
    )
    return str(doc.content)
