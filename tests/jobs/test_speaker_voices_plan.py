"""A voice per speaker's pure parts (issue 100 item 2): each label's voice (the job's for label 1,
the next ones after, skipping those a request named, wrapping past the model's last), what a
request may ask, and the kept units' file (a line a segment, a torn last line left out, a segment
stored again read as its last line)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from translate_svc.errors import InvalidInput
from translate_svc.jobs import revoice
from translate_svc.jobs.speaker_voices import SpeakerVoices, planned, voice_of
from translate_svc.types import SpokenUnits

pytestmark = pytest.mark.unit


def test_each_label_a_voice_of_its_own() -> None:
    assert [voice_of(label, 0, {}, 200) for label in range(5)] == [0, 0, 1, 2, 3]  # 0: no label
    assert [voice_of(label, 7, {}, 200) for label in (1, 2, 3)] == [7, 8, 9]
    assert [voice_of(label, 2, {}, 4) for label in (1, 2, 3, 4, 5)] == [2, 3, 0, 1, 2]  # past the last: wraps
    named = {2: 1}  # label 2 in voice 1: the others skip it
    assert [voice_of(label, 0, named, 200) for label in (1, 2, 3, 4)] == [0, 1, 2, 3]
    named = {1: 5, 3: 0}
    assert [voice_of(label, 0, named, 200) for label in (1, 2, 3, 4)] == [5, 1, 0, 2]
    assert len({voice_of(label, 0, {}, 200) for label in range(1, 9)}) == 8


def test_what_a_request_may_ask() -> None:
    def plan(asked: SpeakerVoices, speakers: int = 2, **kw: bool) -> tuple[tuple[int, int], ...] | None:
        args = {"speech": True, "conversation": False, "separate_channels": False, **kw}
        return planned(asked, speakers=speakers, num_speakers=4, **args)

    assert plan(SpeakerVoices()) == ()
    assert plan(SpeakerVoices(voices=((2, 3), (1, 1)))) == ((1, 1), (2, 3))
    assert plan(SpeakerVoices(one=True)) is None
    assert plan(SpeakerVoices(), speakers=1) is None and plan(SpeakerVoices(), speakers=0) is None
    assert plan(SpeakerVoices(), speech=False) is None
    assert plan(SpeakerVoices(), conversation=True) is None
    for asked, speakers, kw, says in (
        (SpeakerVoices(one=True, voices=((2, 1),)), 2, {}, "not both"),
        (SpeakerVoices(voices=((2, 1),)), 1, {}, "set speakers to 2 or more"),
        (SpeakerVoices(voices=((3, 1),)), 2, {}, "label 3 is not a speaker's: use 1..2"),
        (SpeakerVoices(voices=((2, 4),)), 2, {}, "speaker_voices[2] is 4: use a voice 0..3"),
        (SpeakerVoices(voices=((2, 1), (2, 3))), 2, {}, "each speaker label once"),
        (SpeakerVoices(voices=((2, 1),)), 2, {"conversation": True}, "conversation.voices"),
        (SpeakerVoices(voices=((2, 1),)), 2, {"separate_channels": True}, "separate channels"),
    ):
        with pytest.raises(InvalidInput, match=says.replace("[", r"\[").replace(".", r"\.")):
            plan(asked, speakers, **kw)


def _units(language: str, voice: int, n: int) -> SpokenUnits:
    return SpokenUnits(language, voice, np.arange(n, dtype=np.int64), np.array([n, 0], np.int64), (3, 9, 3), 1.25)


def test_the_kept_units_file(tmp_path: Path) -> None:
    path = tmp_path / revoice.FILE
    revoice.keep(path, 0, (_units("spa", 0, 5), _units("fra", 0, 3)))
    revoice.keep(path, 1, (_units("spa", 0, 4),))
    revoice.keep(path, 1, (_units("spa", 2, 6),))  # stored again by a resumed run: its last line counts
    with open(path, "a") as f:
        f.write('{"seq": 2, "spoken": [{"langu')  # a process killed mid-write
    kept = revoice.read(path)
    assert sorted(kept) == [0, 1]
    spa, fra = kept[0]
    assert (spa.language, spa.speaker_id, spa.rate, spa.tokens) == ("spa", 0, 1.25, (3, 9, 3))
    assert spa.units.tolist() == [0, 1, 2, 3, 4] and fra.units.tolist() == [0, 1, 2]
    assert spa.char_durations.tolist() == [5, 0] and spa.units.dtype == np.int64
    assert [(u.speaker_id, len(u.units)) for u in kept[1]] == [(2, 6)]
    assert revoice.read(tmp_path / "none.jsonl") == {}
