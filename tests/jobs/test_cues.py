"""Subtitles read as editors write them (jobs/cues.py): SRT's numbered blocks and WebVTT's header, ids,
short times, settings, NOTE and STYLE blocks; markup and entities dropped, a cue's lines one line of
speech, cues in time order; what cannot be read refused with its line number."""

from __future__ import annotations

import pytest

from translate_svc.errors import InvalidInput
from translate_svc.jobs.cues import MAX_TEXT_CHARS, Cue, parse

pytestmark = pytest.mark.unit

SRT = """\ufeff1
00:00:01,000 --> 00:00:02,500
<i>Hola,</i> ¿qué tal?

2
00:00:03.2 --> 00:00:05,040
Dos líneas
de texto &amp; más

3
01:00:00,000 --> 01:00:01,000
{\\an8}Arriba
"""

VTT = """WEBVTT - a studio's translation

NOTE written by hand
with two lines

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.000 align:start position:10%
<v Ana>Bonjour</v>

00:00:00.500 --> 00:00:00.900
Avant
"""


def test_srt_cues_as_written_by_editors() -> None:
    assert parse(SRT.replace("\n", "\r\n")) == [
        Cue(1000, 2500, "Hola, ¿qué tal?"),
        Cue(3200, 5040, "Dos líneas de texto & más"),
        Cue(3_600_000, 3_601_000, "Arriba"),
    ]


def test_webvtt_cues_in_time_order_its_notes_and_styles_left_out() -> None:
    assert parse(VTT) == [Cue(500, 900, "Avant"), Cue(1000, 2000, "Bonjour")]
    assert parse(VTT, "vtt") == parse(VTT)


@pytest.mark.parametrize(
    ("text", "fmt", "says"),
    [
        ("1\n00:00:01,000 -> 00:00:02,000\nhola\n", None, "subtitles line 1: a cue's first or second line is START"),
        ("1\n00:00:02,000 --> 00:00:01,000\nhola\n", None, "subtitles line 2: the cue ends before it starts"),
        ("1\n00:00:01,000 --> 00:00:02\nhola\n", None, "subtitles line 2: '00:00:01,000 --> 00:00:02' is not START"),
        ("1\n00:00:01,000 --> 00:00:02,000\n" + "a" * (MAX_TEXT_CHARS + 1), None, "at most 400 characters"),
        ("00:01.000 --> 00:02.000\nhola\n", "vtt", "a WebVTT file starts with WEBVTT (line 1)"),
        ("1\n00:00:01,000 --> 00:00:02,000\nhola\n", "ass", "subtitles.format: srt or vtt"),
        ("\n\n", None, "no cue found"),
        ("1\n00:00:01,000 --> 25:00:00,000\nhola\n", None, "a cue ends within 24 hours"),
    ],
)
def test_what_cannot_be_read_says_where(text: str, fmt: str | None, says: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse(text, fmt)
    assert says in refused.value.message, refused.value.message
