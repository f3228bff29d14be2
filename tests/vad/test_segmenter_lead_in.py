"""A resumed call's lead-in (``Segmenter(lead_in=...)``): the audio before the resume point is
sent again only so that the VAD enters the resume point in the state the lost call had. The
segmenter listens to it (silero's hysteresis) and emits nothing before its end; speech open across
it goes on from there. Given the same probabilities, a resumed call segments what follows the
resume point as the uninterrupted stream did."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tests.support.segmenter_probs import (
    DEFAULT,
    SIL,
    SPEECH,
    W,
    as_values,
    index_stream,
    prob_runs,
    random_config,
    random_probs,
    segment,
    segment_probs,
)
from translate_svc.vad.segmenter import EndReason, Segmenter, SpeechDiscarded, SpeechEnded, SpeechStarted

pytestmark = pytest.mark.unit

PAD = 480  # 30 ms


def test_speech_open_across_the_lead_in_goes_on_from_its_end() -> None:
    # speech in windows 10..69, a pause, speech in 100..149; the lead-in ends inside the first region
    probs = prob_runs((SIL, 10), (SPEECH, 60), (SIL, 30), (SPEECH, 50), (SIL, 20))
    full = segment_probs(probs)
    assert full == [
        SpeechStarted(10 * W - PAD),
        segment(10 * W - PAD, 70 * W + PAD),
        SpeechEnded(70 * W + PAD),
        SpeechStarted(100 * W - PAD),
        segment(100 * W - PAD, 150 * W + PAD),
        SpeechEnded(150 * W + PAD),
    ]
    lead = 40 * W + 100  # not on a window boundary
    assert (
        segment_probs(probs, lead_in=lead)
        == [
            SpeechStarted(lead),  # nothing before the lead-in's end: that call emitted it
            segment(lead, 70 * W + PAD),  # the same end: the hysteresis held as it did
            SpeechEnded(70 * W + PAD),
            *full[3:],  # the rest as on the uninterrupted stream
        ]
    )


def test_a_region_inside_the_lead_in_leaves_no_trace() -> None:
    probs = prob_runs((SIL, 10), (SPEECH, 30), (SIL, 30), (SPEECH, 50), (SIL, 20))
    full = segment_probs(probs)
    assert segment_probs(probs, lead_in=60 * W) == full[3:]  # the first region ended before the resume point


def test_a_region_whose_onset_window_crosses_the_lead_in_end_starts_there() -> None:
    probs = prob_runs((SIL, 10), (SPEECH, 50), (SIL, 20))
    lead = 10 * W + 200  # inside the onset window
    assert segment_probs(probs, lead_in=lead) == [
        SpeechStarted(lead),
        segment(lead, 60 * W + PAD),
        SpeechEnded(60 * W + PAD),
    ]


def test_a_short_remainder_after_the_lead_in_is_discarded_visibly() -> None:
    # the region goes on 4 windows (128 ms < min_speech) past the lead-in's end, as after a cap's cut
    probs = prob_runs((SIL, 10), (SPEECH, 40), (SIL, 20))
    lead = 46 * W
    assert segment_probs(probs, lead_in=lead) == [SpeechDiscarded(lead, 50 * W)]


def test_a_pause_under_way_at_the_lead_in_end_ends_the_region_without_a_trace() -> None:
    probs = prob_runs((SIL, 10), (SPEECH, 40), (SIL, 40))
    assert segment_probs(probs, lead_in=52 * W) == []


def test_held_at_neg_threshold_across_the_lead_in_as_the_lost_call_held_it() -> None:
    """The case seen in a rolling restart: speech that fell between neg_threshold and threshold
    just before the resume point is still speech after it (a fresh start needs threshold again)."""
    probs = prob_runs((SIL, 10), (SPEECH, 40), (0.4, 20), (SIL, 20))
    lead = 48 * W
    assert segment_probs(probs, lead_in=lead) == [
        SpeechStarted(lead),
        segment(lead, 70 * W + PAD),
        SpeechEnded(70 * W + PAD),
    ]
    assert segment_probs(probs[50:]) == []  # from a fresh start at the 0.4 stretch, nothing opens


def test_a_stream_ending_or_flushed_inside_its_lead_in_emits_nothing() -> None:
    probs = prob_runs((SIL, 10), (SPEECH, 40))
    assert segment_probs(probs, lead_in=60 * W) == []  # it ends 10 windows before the resume point
    seg = Segmenter(DEFAULT, lead_in=60 * W)
    x = np.zeros(50 * W, dtype=np.float32)
    assert seg.push(x, np.asarray(probs, dtype=np.float32)) == []
    assert not seg.holds_speech  # nothing a stall or a FLUSH could close
    assert seg.flush() == []
    # speech from window 50 on: open again in the lead-in, it goes on from the resume point
    assert seg.push(np.zeros(20 * W, np.float32), np.full(20, SPEECH, np.float32)) == [SpeechStarted(60 * W)]
    assert as_values(seg.finish(), np.zeros(70 * W, np.float32)) == [
        segment(60 * W, 70 * W, EndReason.END_OF_STREAM),
        SpeechEnded(70 * W),
    ]


def test_after_the_resume_point_a_resumed_call_segments_as_the_uninterrupted_stream() -> None:
    """Random speech-like probabilities and settings, a random resume point: every segment of the
    uninterrupted stream that starts after it comes out the same; the one open across it comes out
    from the resume point to the same end, or (a remainder not longer than min_speech) discarded;
    nothing else, nothing before the resume point."""
    rng = np.random.default_rng(7)
    spanning = 0
    for trial in range(300):
        config = dataclasses.replace(random_config(rng, pads=(0, 30), silences=(100, 300)), max_segment_ms=60_000)
        n = int(rng.integers(2, 1000))
        probs = list(random_probs(rng, trial, n))
        lead = int(rng.integers(1, n * W))
        full = [e for e in segment_probs(probs, config) if isinstance(e, tuple)]
        resumed = [e for e in segment_probs(probs, config, lead_in=lead) if isinstance(e, tuple)]
        after = [e for e in full if e[1] >= lead]
        across = [e for e in full if e[1] < lead < e[2]]
        assert all(e[1] >= lead for e in resumed), (trial, lead)
        if across and resumed[:1] == [("segment", lead, across[0][2], across[0][3])]:
            spanning += 1
            resumed = resumed[1:]
        assert resumed == after, (trial, config, lead)
    assert spanning > 30  # the region open across the resume point was exercised


def test_at_a_lead_in_ending_on_a_window_boundary_nothing_of_it_can_be_flushed() -> None:
    """All of the lead-in scored, the next window not yet: speech open in it is the earlier call's
    still; a FLUSH or a stalled sender then closes nothing (no segment of the lead-in's audio)."""
    seg = Segmenter(DEFAULT, lead_in=40 * W)
    probs = np.asarray(prob_runs((SIL, 10), (SPEECH, 30)), dtype=np.float32)
    assert seg.push(np.zeros(40 * W, np.float32), probs) == []
    assert not seg.holds_speech
    assert seg.flush() == []


def test_speech_in_a_long_lead_in_is_not_held() -> None:
    """Issue 91: a resumed job's lead-in is all of its audio before the resume point (hours). Speech
    that goes on through it was kept from its start (the open region's), unbounded; it is never
    emitted, so the segmenter holds no more of it than of silence, and what follows is the same."""
    probs = prob_runs((SIL, 4), (SPEECH, 3000), (SIL, 30), (SPEECH, 50), (SIL, 20))  # 96 s of speech
    lead = 2000 * W
    samples = index_stream(len(probs) * W)
    seg = Segmenter(DEFAULT, lead_in=lead)
    held = 0
    events = []
    for at in range(0, len(probs), 50):
        events += seg.push(samples[at * W : (at + 50) * W], probs[at : at + 50])
        if (at + 50) * W <= lead:
            held = max(held, seg.buffered_samples)
    events += seg.finish()
    assert held <= 60 * W  # at most a push's worth, where the whole region was held before
    assert as_values(events, samples) == segment_probs(probs, lead_in=lead)
