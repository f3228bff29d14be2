"""``jobs/dub.py``'s ``DubTrack`` (issue 91, point 7), on plain values: every segment's speech at its
start, overflow mixed (``overlap``) or cut at the next start (``cut``), the track exactly its length
(silence after the speech, or speech cut at the end), given out in bounded pieces while holding only
the speech still running. The track a real job serves: tests/jobs/test_dubbed_track.py."""

from __future__ import annotations

import numpy as np
import pytest

from translate_svc.jobs.dub import CHUNK_SAMPLES, DubTrack
from translate_svc.settings.jobs import DubOverflow

pytestmark = pytest.mark.unit


def made(length: int, overflow: DubOverflow, placed: list[tuple[int, list[int]]]) -> np.ndarray:
    track = DubTrack(length, overflow)
    out = [chunk for start, speech in placed for chunk in track.add(start, np.array(speech, np.int16))]
    out += list(track.finish())
    return np.frombuffer(b"".join(out), "<i2")


def test_each_speech_starts_at_its_segment_and_overflow_is_mixed() -> None:
    got = made(10, DubOverflow.OVERLAP, [(1, [1, 1, 1, 1]), (3, [10, 10]), (8, [5])])
    assert got.tolist() == [0, 1, 1, 11, 11, 0, 0, 0, 5, 0]


def test_cut_stops_a_speech_where_the_next_segment_starts() -> None:
    got = made(10, DubOverflow.CUT, [(1, [1, 1, 1, 1]), (3, [10, 10]), (8, [5])])
    assert got.tolist() == [0, 1, 1, 10, 10, 0, 0, 0, 5, 0]


@pytest.mark.parametrize("overflow", list(DubOverflow))
def test_the_track_is_its_length_whatever_the_speech(overflow: DubOverflow) -> None:
    assert made(6, overflow, [(4, [7, 7, 7, 7]), (9, [3])]).tolist() == [0, 0, 0, 0, 7, 7]
    assert made(6, overflow, []).tolist() == [0] * 6
    assert made(0, overflow, [(0, [1])]).tolist() == []


def test_a_mix_is_clipped_to_pcm16() -> None:
    placed = [(0, [30000, 30000]), (1, [30000, -30000]), (2, [-30000])]
    assert made(3, DubOverflow.OVERLAP, placed).tolist() == [30000, 32767, -32768]


def test_it_gives_out_bounded_pieces_and_holds_only_the_speech_still_running() -> None:
    track = DubTrack(3 * CHUNK_SAMPLES + 5, DubOverflow.OVERLAP)
    pieces = list(track.add(2 * CHUNK_SAMPLES + 1, np.ones(1000, np.int16)))
    assert [len(p) // 2 for p in pieces] == [CHUNK_SAMPLES, CHUNK_SAMPLES, 1]
    assert len(track._held) == 1000
    rest = list(track.finish())
    assert sum(len(p) for p in pieces + rest) == 2 * (3 * CHUNK_SAMPLES + 5)
