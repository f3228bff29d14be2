"""The cluster state's rules on a clock the test moves (translate_svc/cluster/state.py): holders
expire exactly at their lease time unless renewed, their groups' watchers are told, stream ids keep
increasing whatever the wall clock does, and a full budget is forgotten."""

from __future__ import annotations

import pytest

from translate_svc.cluster.state import ClusterState
from translate_svc.cluster.store import Full, Lease, id_key

pytestmark = pytest.mark.unit


class Clocks:
    def __init__(self) -> None:
        self.now = 1000.0
        self.wall = 1_700_000_000_000

    def mono(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        return self.wall


def state_at() -> tuple[ClusterState, Clocks]:
    clocks = Clocks()
    return ClusterState(clock=clocks.mono, wall_ms=clocks.wall_ms), clocks


def test_a_holder_that_stops_renewing_loses_everything_at_its_lease_time() -> None:
    state, clocks = state_at()
    told: list[bytes] = []
    state.holder("w0", 15.0)
    state.holder("w1", 15.0)
    state.watch("g", told.append)
    assert isinstance(state.acquire("w0", [("streams", 2)]), Lease)
    state.join("w0", "g", "m0", b"spa")
    told.clear()
    clocks.now += 10
    state.renew("w1")
    clocks.now += 4.9  # 14.9 s after w0's last renewal
    assert state.count("streams") == 1
    clocks.now += 0.1  # 15 s
    state.sweep()
    assert state.count("streams") == 0
    assert state.members("g") == {}
    assert told == [b"g"]
    assert state.holds("w1") and not state.holds("w0")
    assert isinstance(state.acquire("w1", [("streams", 1)]), Lease)


def test_a_renewing_holder_keeps_its_leases_for_ever() -> None:
    state, clocks = state_at()
    state.holder("w0", 15.0)
    lease = state.acquire("w0", [("streams", 1)])
    assert isinstance(lease, Lease)
    for _ in range(100):
        clocks.now += 5
        state.renew("w0")
        state.sweep()
    assert state.count("streams") == 1
    assert state.acquire("w0", [("streams", 1)]) == Full("streams", 1)


def test_a_holder_without_a_lease_time_never_expires() -> None:
    state, clocks = state_at()
    state.holder("local", None)
    assert isinstance(state.acquire("local", [("streams", 1)]), Lease)
    clocks.now += 10**9
    state.sweep()
    assert state.count("streams") == 1


def test_stream_ids_increase_when_the_wall_clock_stands_still_or_goes_back() -> None:
    state, clocks = state_at()
    ids = [state.append("s", b"a", keep_s=3600, max_len=100)]
    ids.append(state.append("s", b"b", keep_s=3600, max_len=100))  # the same millisecond
    clocks.wall -= 5000  # the wall clock stepped back
    ids.append(state.append("s", b"c", keep_s=3600, max_len=100))
    clocks.wall += 10_000
    ids.append(state.append("s", b"d", keep_s=3600, max_len=100))
    keys = [id_key(i) for i in ids]
    assert keys == sorted(keys) and len(set(keys)) == 4
    assert ids[:2] == ["1700000000000-0", "1700000000000-1"]


def test_a_stream_drops_what_is_older_than_its_keep_time_by_the_wall_clock() -> None:
    state, clocks = state_at()
    state.append("s", b"old", keep_s=30, max_len=100)
    clocks.wall += 20_000
    state.append("s", b"new", keep_s=30, max_len=100)
    clocks.wall += 10_001
    assert [e.data for e in state.range("s", "0-0", within_s=None, count=10)] == [b"new"]
    assert [e.data for e in state.range("s", "0-0", within_s=5, count=10)] == []
    clocks.wall += 20_000
    assert state.range("s", "0-0", within_s=None, count=10) == []
    assert state.stream_len("s") == 0


def test_a_budget_refills_and_a_full_one_is_forgotten() -> None:
    state, clocks = state_at()
    assert state.spend("acme/audio", 90, 60) == -30  # full (60) when new, may go below zero
    clocks.now += 30
    assert state.spend("acme/audio", 0, 60) == 0  # 1 a second
    clocks.now += 120
    assert state.spend("acme/audio", 0, 60) == 60  # at most a minute banked
    state.sweep()
    assert state.spend("acme/audio", 6, 60) == 54  # forgotten when full: the same as new
