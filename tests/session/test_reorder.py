"""The reorder window (session/stream/reorder.py): packets back in timeline order, duplicates and late
packets dropped and counted, in-order packets never held."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from translate_svc.session.stream.reorder import MAX_HELD, Reorder

pytestmark = pytest.mark.unit

N = 960  # a 20 ms Opus packet at 48 kHz


def packets(*indices: int) -> list[tuple[bytes, int]]:
    return [(bytes([i % 256]), i * N) for i in indices]


def run(order: list[int], window_packets: int = 5) -> tuple[list[int], Reorder]:
    r = Reorder(window_packets * N, lambda _: N)
    out = []
    for data, ts in packets(*order):
        out += [t // N for _, t in r.push(data, ts)]
    out += [t // N for _, t in r.flush()]
    return out, r


def test_packets_in_order_pass_straight_through() -> None:
    r = Reorder(5 * N, lambda _: N)
    for data, ts in packets(*range(10)):
        assert r.push(data, ts) == [(data, ts)]
    assert r.counts.reordered == r.counts.duplicate == r.counts.late == 0


def test_a_swapped_pair_is_put_back_in_order() -> None:
    out, r = run([0, 2, 1, 3, 4])
    assert out == [0, 1, 2, 3, 4] and r.counts.reordered == 1


def test_the_first_packets_swapped_are_put_back_in_order_too() -> None:
    out, r = run([1, 0, 2])  # the timeline starts at 0: packet 1 waits for it
    assert out == [0, 1, 2] and r.counts.reordered == 1 and r.counts.late == 0


def test_duplicates_are_dropped_and_counted() -> None:
    out, r = run([0, 1, 1, 2, 0, 3])
    assert out == [0, 1, 2, 3] and r.counts.duplicate == 2


def test_a_lost_packet_is_given_up_after_the_window_and_a_late_one_dropped() -> None:
    out, r = run([0, 2, 3, 4, 5, 6, 7, 1, 8], window_packets=5)
    assert out == [0, 2, 3, 4, 5, 6, 7, 8]  # 1 was given up on when 7 came (7 - 2 >= 5)
    assert r.counts.late == 1 and r.counts.reordered == 0  # dropped, not put back


def test_a_packet_ahead_is_held_only_until_the_window_passes_it() -> None:
    r = Reorder(5 * N, lambda _: N)
    assert r.push(b"0", 0) == [(b"0", 0)]
    assert r.push(b"2", 2 * N) == []  # 1 may still come
    assert [ts for _, ts in r.push(b"7", 7 * N)] == [2 * N]  # the window (5 packets) passed 2
    assert r.flush() == [(b"7", 7 * N)]


def test_the_held_packets_are_bounded_whatever_their_timestamps() -> None:
    r = Reorder(10**9, lambda _: 1)
    r.push(b"x", 0)
    for ts in range(2, 2 + 10 * MAX_HELD):  # every one ahead of a missing sample 1
        r.push(b"x", ts)
        assert len(r._held) <= MAX_HELD


@given(st.permutations(list(range(30))), st.integers(1, 8))
def test_whatever_the_order_the_output_is_increasing_and_nothing_is_lost_or_repeated(
    order: list[int], window: int
) -> None:
    out, r = run(order, window)
    assert out == sorted(out) and len(set(out)) == len(out)
    assert len(out) + r.counts.late == 30 and r.counts.duplicate == 0
