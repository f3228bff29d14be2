"""Issue 59: the node's shared counters table (``serve --workers N``) has a fixed number of columns,
and a node meets any number of tenants over its life. A column no call counts (and whose audio
budget is full again) is reused; a name that finds every column in use is refused with
RESOURCE_EXHAUSTED, never a crash; a worker that remembers a column another worker has since given
to another name never counts there."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from tests.support.fake_engine import FakeEngineClient
from translate_svc.errors import ErrorCode, Overloaded
from translate_svc.serving import admission
from translate_svc.serving.admission import SharedCounters
from translate_svc.session.manager import SessionManager
from translate_svc.session.quota import Tenant
from translate_svc.settings import LimitsSettings
from translate_svc.transport.tokens import parse_tokens
from translate_svc.vad.segmenter import SegmenterConfig

pytestmark = pytest.mark.unit

TENANTS = 2000


def tenants(count: int, prefix: str = "t") -> list[Tenant]:
    """``count`` tenants as a tokens file names them, each with caps of every kind the manager counts."""
    text = "".join(
        f"token-{prefix}{i:05d} * tenant={prefix}{i:05d} streams=2 translate_calls=1 unary_calls=2 "
        "audio_seconds_per_minute=60\n"
        for i in range(count)
    )
    return [grant.tenant for _, grant in parse_tokens(text, "tokens")]


def worker_manager(path: Path, slot: int, now: list[float]) -> SessionManager:
    return SessionManager(
        FakeEngineClient(),
        None,  # type: ignore[arg-type]  # no session is opened here
        SegmenterConfig(),
        LimitsSettings(max_streams=4000),
        counters=SharedCounters(path, slot, clock=lambda: now[0]),
    )


def test_2000_tenants_one_after_another_are_each_admitted_and_released(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    admission.create(path)
    now = [1000.0]
    m = worker_manager(path, 0, now)
    for tenant in tenants(TENANTS):
        stream = m.admit_stream(tenant)
        with m.admit_clip(tenant), m.receiving_clip(tenant), m.admit_unary(tenant, b"digest"):
            assert m.charge_audio(tenant, 2.0) is None  # 2 of its 60 s a minute: full again 2 s later
        stream.release()
        now[0] += 1.0
    counters = m.counters
    assert isinstance(counters, SharedCounters)
    assert counters.count("streams") == 0 and counters.count("translate") == 0
    last = tenants(TENANTS)[-1].name
    assert counters.count(f"{last}/streams") == 0
    assert counters.spend(f"{last}/audio", 0.0, 60.0) == 59.0  # its budget is still its own, 1 s later


def test_a_table_full_of_live_names_refuses_a_new_tenant_with_resource_exhausted(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    admission.create(path)
    now = [1000.0]
    m = worker_manager(path, 0, now)
    held = []
    refused = None
    for tenant in tenants(TENANTS):  # every admitted stream stays open: each holds a column
        try:
            held.append((tenant, m.admit_stream(tenant)))
        except Overloaded as e:
            refused = tenant, e
            break
    assert refused is not None, "the table is finite: some tenant must find it full"
    tenant, err = refused
    assert err.code == ErrorCode.RESOURCE_EXHAUSTED and err.retry_after_ms == 1000
    assert "tenant counters at once" in err.message and "retry shortly or on another server" in err.message
    assert len(held) >= 900  # room for a node's worth of tenants before that
    # a tenant already counted takes a second stream; the node's own counters never lack a column
    second = m.admit_stream(held[0][0])
    assert m.counters.try_acquire([("phone_audiosocket", 10)]) is None
    m.counters.release(["phone_audiosocket"])
    # one stream ends: its column is free, and the refused tenant gets in
    held[1][1].release()
    m.admit_stream(tenant).release()
    second.release()
    for _, stream in held:
        stream.release()
    counters = m.counters
    assert isinstance(counters, SharedCounters)
    assert counters.count("streams") == 0


def fill(counters: SharedCounters, prefix: str) -> list[str]:
    """Tenant names taken (and held) until the table refuses one with RESOURCE_EXHAUSTED."""
    taken = []
    for i in range(TENANTS):
        name = f"{prefix}{i:05d}/streams"
        try:
            full = counters.try_acquire([(name, 1)])
        except Overloaded as e:
            assert e.code == ErrorCode.RESOURCE_EXHAUSTED
            return taken
        assert full is None
        taken.append(name)
    pytest.fail("the table is finite: it must refuse a name at last")


def test_a_worker_never_counts_in_a_column_another_worker_gave_to_another_name(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    admission.create(path)
    w0, w1 = SharedCounters(path, 0), SharedCounters(path, 1)
    assert w0.try_acquire([("a/streams", 1)]) is None  # w0 now knows a/streams' column
    w0.release(["a/streams"])
    taken = fill(w1, "b")  # a/streams' column, counted by nobody, is given to one of w1's names
    with pytest.raises(Overloaded):  # not w1's call in a/streams' old column
        w0.try_acquire([("a/streams", 1)])
    w1.release([taken.pop()])
    assert w0.try_acquire([("a/streams", 1)]) is None
    assert w0.count("a/streams") == 1 and all(w0.count(name) == 1 for name in taken)
    w0.release(["a/streams"])
    w1.release(taken)
    assert w0.count("a/streams") == 0 and all(w1.count(name) == 0 for name in taken)
    w0.close()
    w1.close()


def test_two_new_names_taken_at_once_never_share_the_one_free_column(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    admission.create(path)
    w0 = SharedCounters(path, 0)
    taken = fill(w0, "b")
    w0.release([taken.pop()])  # one column free again: room for one new name, not two
    with pytest.raises(Overloaded):
        w0.try_acquire([("n1/streams", 5), ("n2/streams", 5)])
    assert w0.count("n1/streams") == 0 and w0.count("n2/streams") == 0
    assert w0.try_acquire([("n1/streams", 5)]) is None and w0.count("n1/streams") == 1
    assert all(w0.count(name) == 1 for name in taken)
    w0.close()


def _churn(path: Path, slot: int, reverse: bool) -> tuple[int, int]:
    """A worker's life: its own tenant's stream held throughout, and 2,000 tenants (the same ones as
    the other worker's, in the other order) each taking a stream and its budget, then letting go."""
    counters = SharedCounters(path, slot)
    own = f"own{slot}/streams"
    assert counters.try_acquire([("streams", 10_000), (own, 1)]) is None
    order = range(TENANTS - 1, -1, -1) if reverse else range(TENANTS)
    for i in order:
        name = f"t{i:05d}"
        assert counters.try_acquire([("streams", 10_000), (f"{name}/streams", 2)]) is None
        counters.spend(f"{name}/audio", 0.0, 60.0)
        counters.release(["streams", f"{name}/streams"])
    held = counters.count(own)
    counters.release(["streams", own])
    return held, counters.count(own)


def test_two_worker_processes_share_the_table_through_2000_tenants_each(tmp_path: Path) -> None:
    path = tmp_path / "counters"
    admission.create(path)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_churn, [(path, 0, False), (path, 1, True)])
    assert results == [(1, 0), (1, 0)]  # each worker's own stream counted once throughout, then freed
    node = SharedCounters(path, 2)
    assert node.count("streams") == 0
    assert all(node.count(f"t{i:05d}/streams") == 0 for i in range(0, TENANTS, 97))
    node.close()
