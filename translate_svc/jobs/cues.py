"""A studio's translation imported as subtitles (SRT or WebVTT) and voiced at its timings: the cues
parsed and checked as a job is created, kept in the job's folder (``cues.json``), then each said as
written (``SourceText.as_written``) and fitted into its time by the job's run
(``translation.py``: ``JobTranslation``), a segment per cue.

Parsing follows what editors write: SRT's numbered blocks (``HH:MM:SS,mmm --> HH:MM:SS,mmm``, a dot
taken for the comma), WebVTT's header, cue ids, ``MM:SS.mmm`` times and cue settings, ``NOTE``,
``STYLE`` and ``REGION`` blocks; a cue's lines are one line of speech, its markup (``<i>``,
``<v Name>``, ``{\\an8}``) and entities dropped. What cannot be read is refused with its line
number and what to fix. Pure."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from translate_svc.errors import InvalidInput

#: a line said as written (an edit's text, a cue's) at most, in characters: a subtitle's line is
#: under 100; the model says at most its generation bound in tokens (256 for SeamlessM4T v2)
MAX_TEXT_CHARS = 400
#: cues a file may hold (a feature film's subtitles hold about 1,500)
MAX_CUES = 20_000
#: the subtitles' text at most, in characters (a feature film's SRT is about 100 KB)
MAX_CHARS = 2 * 1024 * 1024
#: the latest time a cue may end (a day)
MAX_MS = 24 * 3600 * 1000
FILE = "cues.json"
FORMATS = ("srt", "vtt")

_TIME = r"(?:(\d+):)?([0-5]?\d):([0-5]\d)[,.](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")


@dataclass(frozen=True)
class Cue:
    """One cue: its time on the source's clock and its text, one line of speech."""

    start_ms: int
    end_ms: int
    text: str


@dataclass(frozen=True)
class Imported:
    """Subtitles a job voices (``JobRequest.subtitles``) as sent: their language, their format
    (None: read from the text) and the file's text, parsed by the desk off the event loop."""

    language: str
    format: str | None
    text: str

    def __post_init__(self) -> None:
        if len(self.text) > MAX_CHARS:
            raise InvalidInput(f"subtitles.text: at most {MAX_CHARS // (1024 * 1024)} MiB of subtitles")
        if self.format is not None and self.format not in FORMATS:
            raise InvalidInput("subtitles.format: srt or vtt (or leave it out: a file that starts WEBVTT is WebVTT)")

    def cues(self) -> list[Cue]:
        """Its cues (``parse``: a caller-sized CPU's work)."""
        return parse(self.text, self.format)


def parse(text: str, fmt: str | None = None) -> list[Cue]:
    """The cues of an SRT or WebVTT file (``fmt``; None: WebVTT when it starts with its header),
    in time order; InvalidInput saying which line is wrong and how."""
    if len(text) > MAX_CHARS:
        raise InvalidInput(f"subtitles.text: at most {MAX_CHARS // (1024 * 1024)} MiB of subtitles")
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    vtt = lines[0].startswith("WEBVTT") if fmt is None else fmt == "vtt"
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput("subtitles.format: srt or vtt (or leave it out: a file that starts WEBVTT is WebVTT)")
    if vtt and not lines[0].startswith("WEBVTT"):
        raise InvalidInput("subtitles: a WebVTT file starts with WEBVTT (line 1)")
    cues = list(_cues(lines[1:] if vtt else lines, 2 if vtt else 1))
    if not cues:
        raise InvalidInput("subtitles: no cue found (each is a line START --> END, then its text)")
    if len(cues) > MAX_CUES:
        raise InvalidInput(f"subtitles: at most {MAX_CUES} cues (split the file into jobs)")
    return sorted(cues, key=lambda c: (c.start_ms, c.end_ms))


def _cues(lines: list[str], first: int) -> Iterator[Cue]:
    """Each block's cue (a block: lines up to a blank one); ``first``: the first line's number."""
    block: list[tuple[int, str]] = []
    for n, line in enumerate([*lines, ""], first):
        if line.strip():
            block.append((n, line))
            continue
        if block:
            cue = _cue(block)
            if cue is not None:
                yield cue
        block = []


def _cue(block: list[tuple[int, str]]) -> Cue | None:
    head = block[0][1].strip()
    if head.startswith(("NOTE", "STYLE", "REGION")) and "-->" not in head:
        return None  # WebVTT's comments and styles
    at = next((k for k, (_, line) in enumerate(block[:2]) if "-->" in line), None)
    if at is None:
        raise InvalidInput(f"subtitles line {block[0][0]}: a cue's first or second line is START --> END")
    n, timing = block[at]
    m = _TIMING.match(timing)
    if m is None:
        raise InvalidInput(
            f"subtitles line {n}: {timing.strip()[:60]!r} is not START --> END (HH:MM:SS,mmm or MM:SS.mmm)"
        )
    start, end = _ms(m.groups()[:4]), _ms(m.groups()[4:])
    if end <= start:
        raise InvalidInput(f"subtitles line {n}: the cue ends before it starts")
    if end > MAX_MS:
        raise InvalidInput(f"subtitles line {n}: a cue ends within 24 hours")
    said = " ".join(html.unescape(_TAG.sub("", line)).strip() for _, line in block[at + 1 :])
    said = " ".join(said.split())
    if len(said) > MAX_TEXT_CHARS:
        raise InvalidInput(f"subtitles line {n}: a cue's text is at most {MAX_TEXT_CHARS} characters (split it)")
    return Cue(start, end, said) if said else None


def _ms(parts: tuple[str | None, ...]) -> int:
    hours, minutes, seconds, frac = (p or "0" for p in parts)
    return ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(frac.ljust(3, "0"))


def keep(folder: Path, cues: list[Cue]) -> None:
    """The cues written to the job's folder."""
    (folder / FILE).write_text(json.dumps([asdict(c) for c in cues], separators=(",", ":")), encoding="utf-8")


def kept(folder: Path) -> list[Cue]:
    """The cues a job's folder keeps."""
    return [Cue(**c) for c in json.loads((folder / FILE).read_text(encoding="utf-8"))]
