"""A holder in another process (tests/support/cluster_holder.py) that stops renewing or dies: what it
held is free again within the lease time, its groups' watchers are told, and while it lived every
other holder saw its counts (the node's hub on a real Unix socket, a real redis-server)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.support.cluster_holder import CAP, GROUP
from tests.support.cluster_stores import Backend, backend
from tests.support.paths import REPO
from translate_svc.cluster.store import ClusterStore, Inbox

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow(15)]

LEASE_S = 2.0
#: what the measurement may take beyond the lease time: the hub's sweep (at most 0.5 s here) or the
#: poll below, on a loaded 2-core machine
SLACK_S = 1.0


async def far_holder(shared: Backend, leases: int) -> asyncio.subprocess.Process:
    assert shared.address is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.cluster_holder",
        shared.kind,
        shared.address,
        str(LEASE_S),
        str(leases),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert json.loads(line) == {"ready": True, "count": leases}
    return proc


async def freed_after(here: ClusterStore, since: float, timeout_s: float = 10.0) -> float:
    """Seconds from ``since`` until nothing is counted on the cap and the group is empty."""
    while await here.count(CAP) or await here.members(GROUP):
        if time.monotonic() - since > timeout_s:
            raise AssertionError(f"the holder's leases were not freed within {timeout_s} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - since


async def notices(watch: Inbox) -> int:
    await asyncio.sleep(0)
    n = 0
    while watch.get_nowait() is not None:
        n += 1
    return n


@pytest_asyncio.fixture(loop_scope="module")
async def ended() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    procs: list[asyncio.subprocess.Process] = []
    yield procs
    for proc in procs:
        if proc.returncode is None:
            proc.kill()  # SIGKILL ends a stopped process too (no SIGCONT: it may be reaped already)
            await proc.wait()


@pytest.mark.parametrize("kind", ["hub", "redis"])
async def test_a_stopped_holder_frees_its_leases_and_memberships_within_the_lease_time(
    kind: str, ended: list[asyncio.subprocess.Process]
) -> None:
    async with backend(kind, lease_s=LEASE_S) as shared:
        here = await shared.client()
        watch = await here.watch(GROUP)
        proc = await far_holder(shared, 3)
        ended.append(proc)
        assert await here.count(CAP) == 3  # another process's leases count here
        assert await here.members(GROUP) == {"far": b"spa"}
        await asyncio.sleep(1.5 * LEASE_S)  # past its lease time: alive because it renews
        assert await here.count(CAP) == 3
        assert await here.members(GROUP) == {"far": b"spa"}
        await notices(watch)
        os.kill(proc.pid, signal.SIGSTOP)  # it stops renewing (its connection stays open)
        took = await freed_after(here, time.monotonic())
        assert took <= LEASE_S + SLACK_S, f"freed {took:.2f} s after the holder stopped (lease {LEASE_S} s)"
        assert took >= LEASE_S / 3, f"freed {took:.2f} s after the holder stopped: sooner than any lease allows"
        async with asyncio.timeout(5):
            assert await watch.get() == GROUP.encode()  # the watcher is told the member went
        full = await here.acquire([(CAP, 1)])
        assert not hasattr(full, "limit"), "the stopped holder's leases still count"


#: how soon a killed holder's leases are free: a hub sees its connection close at once; Redis waits
#: for the lease time
KILLED_FREED_WITHIN_S = {"hub": LEASE_S / 2, "redis": LEASE_S + SLACK_S}


@pytest.mark.parametrize("kind", ["hub", "redis"])
async def test_a_killed_holder_frees_its_leases(kind: str, ended: list[asyncio.subprocess.Process]) -> None:
    async with backend(kind, lease_s=LEASE_S) as shared:
        here = await shared.client()
        proc = await far_holder(shared, 2)
        ended.append(proc)
        assert await here.count(CAP) == 2
        killed = time.monotonic()
        proc.kill()
        took = await freed_after(here, killed)
        assert took <= KILLED_FREED_WITHIN_S[kind], f"freed {took:.2f} s after the holder was killed"
