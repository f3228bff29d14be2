"""Capture regions and their observers (model/regions.py, issue 88; its own test module since issue
89 item 4): what the sync guard and the host-cost benchmark count rests on a region telling every
observer it was entered and left, in order, and on host buffers being told from device tensors."""

from __future__ import annotations

import pytest
import torch

from translate_svc.model import regions

pytestmark = pytest.mark.unit


class Seen:
    def __init__(self, tag: str = "") -> None:
        self.tag = tag
        self.events: list[tuple[str, str]] = []

    def entered(self, name: str) -> None:
        self.events.append((f"{self.tag}in", name))

    def left(self, name: str) -> None:
        self.events.append((f"{self.tag}out", name))

    def read(self, what: str) -> None:
        self.events.append((f"{self.tag}read", what))


def test_a_region_without_observers_runs_its_block() -> None:
    ran = []
    with regions.region("encoder"):
        ran.append(1)
    assert ran == [1]


def test_every_observer_sees_nested_regions_entered_and_left_in_order() -> None:
    log: list[tuple[str, str]] = []
    a, b = Seen("a."), Seen("b.")
    a.events = b.events = log  # one timeline: the order between observers shows
    with regions.observing(a), regions.observing(b):
        with regions.region("t2u"):
            with regions.region("t2u.chars"):
                regions.note_read("host_read")
    assert log == [
        ("a.in", "t2u"),
        ("b.in", "t2u"),
        ("a.in", "t2u.chars"),
        ("b.in", "t2u.chars"),
        ("a.read", "host_read"),
        ("b.read", "host_read"),
        ("b.out", "t2u.chars"),  # left in reverse: the innermost observer first
        ("a.out", "t2u.chars"),
        ("b.out", "t2u"),
        ("a.out", "t2u"),
    ]


def test_a_region_that_raises_is_still_left_and_the_observer_removed_after_its_block() -> None:
    seen = Seen()
    with pytest.raises(ValueError), regions.observing(seen), regions.region("vocoder"):
        raise ValueError("stage failed")
    assert seen.events == [("in", "vocoder"), ("out", "vocoder")]
    with regions.region("vocoder"):
        regions.note_read("after")
    assert seen.events == [("in", "vocoder"), ("out", "vocoder")]  # no longer observing


def test_a_host_buffer_and_its_views_are_told_from_other_tensors() -> None:
    buf = regions.host_buffer(torch.zeros(8))
    assert regions.is_host_buffer(buf)
    assert regions.is_host_buffer(buf[2:5])  # a view of it: a read of the same memory
    assert not regions.is_host_buffer(torch.zeros(8))
    assert not regions.is_host_buffer(buf.clone())


def test_a_freed_host_buffer_is_forgotten() -> None:
    """Names are kept by id with a weak reference: once the buffer is gone, a new tensor that gets
    its id is not taken for a host buffer."""
    buf = regions.host_buffer(torch.zeros(4))
    key = id(buf)
    del buf
    assert key not in regions._host
