"""The pieces of ``serve --workers N`` that need no processes: the node's shared counters and the
port reservation."""

from __future__ import annotations

import multiprocessing
import socket
from pathlib import Path

import pytest

from translate_svc.serving import admission
from translate_svc.serving.admission import SharedCounters
from translate_svc.serving.supervisor import StartError, reserve_port
from translate_svc.session.quota import LocalCounters

pytestmark = pytest.mark.unit


def test_every_count_is_the_nodes_not_a_workers(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    admission.create(path)
    w0, w1 = SharedCounters(path, 0), SharedCounters(path, 1)
    streams = [("streams", 3)]
    assert w0.try_acquire(streams) is None and w0.try_acquire(streams) is None and w1.try_acquire(streams) is None
    assert w1.try_acquire(streams) == "streams" and w0.try_acquire(streams) == "streams"  # 3 open on the node
    w0.release(["streams"])
    assert w1.try_acquire(streams) is None and w1.count("streams") == 3
    w1.reset()  # w1 died with its two streams
    assert w0.count("streams") == 1
    # several counters are taken together or not at all; a tenant's counter is one more name
    both = [("streams", 10), ("acme/streams", 2)]
    assert w0.try_acquire(both) is None and w1.try_acquire(both) is None
    assert w0.try_acquire(both) == "acme/streams" and w0.count("streams") == 3  # nothing taken
    assert w1.try_acquire([("streams", 10), ("beta/streams", 2)]) is None  # another tenant is unaffected
    with pytest.raises(ValueError, match="slot"):
        SharedCounters(path, admission.SLOTS)
    w0.close()
    w1.close()


def test_a_tenants_audio_budget_is_shared_refills_and_may_be_overdrawn(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    admission.create(path)
    now = [100.0]
    w0, w1 = SharedCounters(path, 0, clock=lambda: now[0]), SharedCounters(path, 1, clock=lambda: now[0])
    assert w0.spend("acme/audio", 50.0, 60.0) == 10.0  # a full minute's worth (60 s) to start with
    assert w1.spend("acme/audio", 30.0, 60.0) == -20.0  # the other worker draws from the same budget
    now[0] += 30.0  # 30 s later: 30 s back (60 a minute)
    assert w0.spend("acme/audio", 0.0, 60.0) == 10.0
    now[0] += 600.0  # never more than a minute's worth banked
    assert w1.spend("acme/audio", 0.0, 60.0) == 60.0
    assert w1.spend("beta/audio", 1.0, 60.0) == 59.0
    local = LocalCounters(clock=lambda: now[0])
    assert local.spend("acme/audio", 50.0, 60.0) == 10.0 and local.spend("acme/audio", 30.0, 60.0) == -20.0


def _take(path: Path, slot: int, limit: int, tries: int) -> int:
    counter = SharedCounters(path, slot)
    return sum(counter.try_acquire([("streams", limit), (f"t{slot % 2}/streams", limit)]) is None for _ in range(tries))


def test_workers_racing_for_the_last_slots_never_take_more_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    admission.create(path)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        taken = pool.starmap(_take, [(path, slot, 1000, 400) for slot in range(4)])
    assert sum(taken) == 1000 and SharedCounters(path, 0).count("streams") == 1000


def test_a_busy_port_fails_the_start_with_what_to_do() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(StartError, match=rf"cannot listen on 127.0.0.1:{port}: .*--port"):
            reserve_port("127.0.0.1", port)
    free = reserve_port("127.0.0.1", 0)  # port 0: one port, resolved once for every worker
    try:
        port = free.getsockname()[1]
        assert port > 0
        again = reserve_port("127.0.0.1", port)  # a worker binds it beside the reservation
        again.close()
    finally:
        free.close()
