"""Issue 71: a room's output carries no door's state. It used to hold each door's encoding of it
(``RoomOutput.wire``, keyed by the door's name), so the session floor kept door state; now each door
keeps its own encoding cache keyed by the output (``transport/grpc/servicer.py``,
``transport/rooms/protocol.py``), which a weak key lets go with the output."""

from __future__ import annotations

import dataclasses
import gc
import weakref

import pytest

from translate_svc.session.rooms.listener import RoomOutput
from translate_svc.types import SegmentResult

pytestmark = pytest.mark.unit


def test_a_room_output_holds_its_speaker_its_event_and_whether_it_is_backlog_only() -> None:
    """(And, issue 99 item 5, whether its translation is the speaker's own voice: no door's state.)"""
    assert [f.name for f in dataclasses.fields(RoomOutput)] == ["speaker", "event", "backlog", "original"]


def test_a_room_output_is_a_key_by_identity_that_a_door_holds_weakly() -> None:
    event = SegmentResult(0, 0, 400)
    one, two = RoomOutput("s", event), RoomOutput("s", event)
    assert one != two and len({one, two}) == 2  # the same cut pushed to two languages' listeners is two keys
    gone = weakref.ref(one)
    del one
    gc.collect()
    assert gone() is None
