"""``ChannelOrder``: a stream of separate channels numbers its segments in the order they are named
and sends results in that order, each labelled with its channel; ids named for speech that was
then discarded never hold a result back; one end for the stream (issue 99 item 4)."""

from __future__ import annotations

import pytest

from translate_svc.errors import LimitReached
from translate_svc.session.calls.channels import ChannelOrder
from translate_svc.session.events import Draining, SpeechEvent, StreamEnded
from translate_svc.types import InterimResult, SegmentResult

pytestmark = pytest.mark.unit


def result(own: int, start_ms: int) -> SegmentResult:
    return SegmentResult(segment_id=own, start_ms=start_ms, end_ms=start_ms + 500)


def ids(events: list) -> list[tuple[str, int, int]]:  # type: ignore[type-arg]
    """(kind, the stream's id, channel) of what went out."""
    out = []
    for ev in events:
        if isinstance(ev, SegmentResult):
            out.append(("result", ev.segment_id, ev.channel))
        elif isinstance(ev, InterimResult):
            out.append(("interim", ev.segment_id, ev.channel))
        elif isinstance(ev, SpeechEvent):
            out.append(("started" if ev.started else "ended", ev.next_segment_id, ev.channel))
    return out


def test_ids_follow_the_order_speech_began_and_results_wait_for_earlier_ones() -> None:
    order = ChannelOrder(2)
    assert ids(order.take(1, SpeechEvent(True, 100, 0))) == [("started", 0, 1)]
    assert ids(order.take(2, SpeechEvent(True, 300, 0))) == [("started", 1, 2)]
    # channel 2's short turn ends first: its result waits for channel 1's, which began before it
    assert ids(order.take(2, SpeechEvent(False, 900, 1))) == [("ended", 2, 2)]
    assert order.take(2, result(0, 300)) == [] and order.held == 1
    assert ids(order.take(1, SpeechEvent(False, 2000, 1))) == [("ended", 2, 1)]
    out = order.take(1, result(0, 100))
    assert ids(out) == [("result", 0, 1), ("result", 1, 2)] and order.held == 0
    assert [r.speaker for r in out] == [1, 2] and [r.start_ms for r in out] == [100, 300]
    # each channel's own ids go on from its own count
    assert ids(order.take(2, SpeechEvent(True, 2500, 1))) == [("started", 2, 2)]
    assert ids(order.take(2, result(1, 2500))) == [("result", 2, 2)]


def test_a_caption_of_discarded_speech_holds_nothing_back() -> None:
    order = ChannelOrder(2)
    order.take(1, SpeechEvent(True, 0, 0))
    order.take(1, result(0, 0))  # the length cap closed channel 1's first segment
    # a caption of the rest, which is then discarded (shorter than min_speech): its region ends
    assert ids(order.take(1, InterimResult(1, 15000, 15200))) == [("interim", 1, 1)]
    order.take(2, SpeechEvent(True, 15100, 0))
    assert order.take(2, result(0, 15100)) == []  # waits for id 1 while it may still come
    out = order.take(1, SpeechEvent(False, 15200, 1))  # the region used its id 0 only
    assert ids(out) == [("ended", 3, 1), ("result", 2, 2)]
    # channel 1's next speech takes a new id; its own id 1 is that speech's
    assert ids(order.take(1, SpeechEvent(True, 20000, 1))) == [("started", 3, 1)]
    assert ids(order.take(1, result(1, 20000))) == [("result", 3, 1)]


def test_one_end_for_the_stream_after_every_result() -> None:
    order = ChannelOrder(2)
    order.take(1, SpeechEvent(True, 0, 0))
    order.take(2, SpeechEvent(True, 10, 0))
    assert order.take(2, result(0, 10)) == []
    assert order.take(2, StreamEnded(1, 4000, audio_filled_ms=0, resume_offset_ms=4000)) == []
    assert order.take(1, Draining(1, 1)) and order.take(2, Draining(1, 1)) == []  # said once
    limit = LimitReached("the stream's longest duration was reached", reason="max_stream_duration")
    out = order.take(1, result(0, 0)) + order.take(1, StreamEnded(1, 4000, limit, resume_offset_ms=3500))
    assert ids(out) == [("result", 0, 1), ("result", 1, 2)]
    end = out[-1]
    assert isinstance(end, StreamEnded)
    assert end.segments_total == 2 and end.limit is limit and end.resume_offset_ms == 3500
    assert end.audio_received_ms == 4000


def test_a_result_named_first_by_a_caption_keeps_its_id() -> None:
    order = ChannelOrder(2)
    order.take(1, SpeechEvent(True, 0, 0))
    order.take(1, result(0, 0))
    assert ids(order.take(1, InterimResult(1, 15000, 16000))) == [("interim", 1, 1)]
    assert ids(order.take(2, SpeechEvent(True, 15500, 0))) == [("started", 2, 2)]
    assert ids(order.take(1, result(1, 15000))) == [("result", 1, 1)]
    assert order.first_id([2, 0]) == 2  # channel 2's open segment is the first a change reaches
    assert order.first_id([2, 1]) == 3  # none open: the stream's next


def test_a_caption_before_the_speech_is_sure_is_not_sent() -> None:
    """A caption of a blip (before its channel's speech start, which comes once the speech is sure
    to be kept) names no id: the blip may be discarded, and nothing waits for it."""
    order = ChannelOrder(2)
    assert order.take(1, InterimResult(0, 100, 200)) == []
    order.take(2, SpeechEvent(True, 300, 0))
    assert ids(order.take(2, result(0, 300))) == [("result", 0, 2)]
    assert ids(order.take(1, SpeechEvent(True, 5000, 0))) == [("started", 1, 1)]
    assert ids(order.take(1, InterimResult(0, 5000, 5400))) == [("interim", 1, 1)]
