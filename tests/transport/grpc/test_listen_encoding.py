"""Issue 71: the gRPC door's encoding cache of room outputs. A room output is pushed to every
listener of its language; the door encodes its ``ListenResponse`` once, in a cache of its own keyed
by the output (the output itself carries no door state), and the entry goes with the output."""

from __future__ import annotations

import gc
from weakref import WeakKeyDictionary

import pytest

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.session.rooms.listener import OutputDropped, RoomOutput
from translate_svc.transport.grpc.servicer import _listen_bytes
from translate_svc.types import SegmentResult, Transcript, Translation

pytestmark = pytest.mark.unit


def test_a_room_output_is_encoded_once_per_door_and_let_go_with_the_output() -> None:
    encoded: WeakKeyDictionary[RoomOutput, bytes] = WeakKeyDictionary()  # the door's
    out = RoomOutput("mayor", SegmentResult(3, 1000, 2500, Transcript("eng", "hello"), (Translation("spa", "hola"),)))
    first = _listen_bytes(out, encoded)
    assert _listen_bytes(out, encoded) is first  # the next listener of the language: the same bytes
    parsed = pb.ListenEvent.FromString(first)
    assert parsed.speaker == "mayor" and parsed.segment.segment_id == 3
    assert len(encoded) == 1
    # another door (or server) keeps its own cache: nothing is shared through the output
    other: WeakKeyDictionary[RoomOutput, bytes] = WeakKeyDictionary()
    assert _listen_bytes(out, other) == first and len(other) == 1
    # notices are not cached (each is its listener's own)
    assert _listen_bytes(OutputDropped(2, 5), encoded) and len(encoded) == 1
    del out
    gc.collect()
    assert len(encoded) == 0 and len(other) == 0
