"""The sandbox's processes (``translate_svc/sandbox/``): a call there gives what it gives here and
its refusal comes back as it was, at a lower priority, in processes kept for the next call; a
process past its address space or its call's CPU budget fails only that call, precisely
(``OverLimit``), and a process kept for the next call gets a fresh budget; a process that dies or
whose call is cancelled fails only that call; a tenant past its share is refused at once, a
request past the sandbox's processes after its wait; an answer may hold plain values only.

Before the sandbox (the glossaries' parse processes it generalises), a process had no bound on
its memory or CPU: the memory and CPU tests fail there (no ``OverLimit``, the call runs through)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np
import pytest

from tests.support import sandbox_calls as calls
from translate_svc.errors import InvalidInput, NotReady, Overloaded
from translate_svc.sandbox import answers
from translate_svc.sandbox.pool import OverLimit, Sandbox, SandboxLimits, SandboxStopped

pytestmark = pytest.mark.unit

T = TypeVar("T")


def limits(**kw: object) -> SandboxLimits:
    base: dict[str, object] = {"processes": 2, "per_tenant": 2, "memory_mb": 512, "niceness": 10, "wait_s": None}
    return SandboxLimits(**{**base, **kw})  # type: ignore[arg-type]


def run(body: Callable[[Sandbox], Awaitable[T]], **kw: object) -> T:
    async def go() -> T:
        sandbox = Sandbox(limits(**kw))
        try:
            return await body(sandbox)
        finally:
            await sandbox.close()

    return asyncio.run(go())


def test_a_call_there_gives_what_it_gives_here_in_processes_kept_at_a_lower_priority() -> None:
    async def body(sb: Sandbox) -> tuple[object, ...]:
        block = await sb.run("a", 5, calls.samples, 100_000)
        with pytest.raises(InvalidInput) as refused:
            await sb.run("a", 5, calls.refuse, "no such thing: send another")
        nice = await sb.run("a", 5, calls.niceness)
        # four calls at once on two processes, kept: two process ids in all, none of this one's
        pids = set(await asyncio.gather(*(sb.run(None, 5, calls.spin_cpu, 0.2) for _ in range(4))))
        return block, refused.value.message, nice, pids

    block, refusal, nice, pids = run(body)
    assert isinstance(block, np.ndarray) and np.array_equal(block, calls.samples(100_000))
    assert refusal == "no such thing: send another"
    assert nice == min(19, os.nice(0) + 10)  # the kernel gives the server's own threads the cores first
    assert len(pids) == 2 and os.getpid() not in pids, pids  # type: ignore[arg-type]


def test_a_call_past_its_memory_fails_alone_and_the_next_gets_a_new_process() -> None:
    async def body(sb: Sandbox) -> tuple[OverLimit, int, int, int]:
        first = await sb.run(None, 5, calls.pid)
        with pytest.raises(OverLimit) as over:
            await sb.run(None, 5, calls.allocate_mb, 600)  # past the 512 MB of address space
        second = await sb.run(None, 5, calls.pid)
        fits = await sb.run(None, 5, calls.allocate_mb, 64)
        return over.value, first, second, fits

    over, first, second, fits = run(body, processes=1)
    assert over.kind == "memory" and over.limit == 512 and "512 MB" in over.message, over.message
    assert first != second and fits == 64 << 20


def test_a_call_past_its_cpu_budget_fails_alone_and_a_kept_process_gets_a_fresh_budget_each_call() -> None:
    async def body(sb: Sandbox) -> tuple[OverLimit, set[int]]:
        # three calls of 1.2 s of CPU each on one process, each within its 2 s: 3.6 s in all
        pids = {await sb.run(None, 2, calls.spin_cpu, 1.2) for _ in range(3)}
        with pytest.raises(OverLimit) as over:
            await sb.run(None, 2, calls.spin_cpu, 30)
        return over.value, pids

    over, pids = run(body, processes=1)
    assert len(pids) == 1, pids
    assert over.kind == "cpu" and over.limit == 2


def test_a_process_that_dies_or_is_cancelled_fails_its_call_and_the_next_gets_a_new_one() -> None:
    async def body(sb: Sandbox) -> tuple[NotReady, list[int]]:
        first = await sb.run(None, 5, calls.pid)
        with pytest.raises(NotReady) as died:
            await sb.run(None, 5, calls.exit_now, 3)  # as the kernel's OOM killer would end it
        second = await sb.run(None, 5, calls.pid)
        slow = asyncio.create_task(sb.run(None, 60, calls.spin_cpu, 30.0))  # a caller that goes away
        await asyncio.sleep(0.5)
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await slow
        third = await asyncio.wait_for(sb.run(None, 5, calls.pid), 20)  # not behind the abandoned call
        return died.value, [first, second, third]

    died, pids = run(body, processes=1)
    assert died.retry_after_ms and "retry" in died.message
    assert len(set(pids)) == 3, pids


def test_a_tenant_past_its_share_is_refused_at_once_and_a_full_sandbox_after_its_wait() -> None:
    async def body(sb: Sandbox) -> tuple[Overloaded, Overloaded, int]:
        held = [asyncio.create_task(sb.run("a", 60, calls.spin_cpu, 1.5)) for _ in range(2)]
        await asyncio.sleep(0.2)
        with pytest.raises(Overloaded) as tenant:
            await sb.run("a", 5, calls.pid)  # its two are taken
        with pytest.raises(Overloaded) as full:
            await sb.run("b", 5, calls.pid)  # another tenant: the two processes are taken for 1.5 s of CPU
        await asyncio.gather(*held)
        after = await sb.run("b", 5, calls.pid)
        return tenant.value, full.value, after

    tenant, full, after = run(body, wait_s=0.5)
    assert tenant.retry_after_ms and "processes_per_tenant" in tenant.message, tenant.message
    assert full.retry_after_ms and "runs 2" in full.message, full.message
    assert after > 0


def test_stopping_ends_the_calls_in_progress_at_once_and_refuses_new_ones() -> None:
    async def body(sb: Sandbox) -> tuple[BaseException, BaseException, float]:
        loop = asyncio.get_running_loop()
        slow = asyncio.create_task(sb.run(None, 60, calls.spin_cpu, 30.0))
        await asyncio.sleep(0.5)
        started = loop.time()
        sb.stop_calls()
        ended = await asyncio.gather(slow, return_exceptions=True)
        took = loop.time() - started
        later = await asyncio.gather(sb.run(None, 5, calls.pid), return_exceptions=True)
        return ended[0], later[0], took

    ended, later, took = run(body, processes=1)
    assert isinstance(ended, SandboxStopped) and isinstance(later, SandboxStopped), (ended, later)
    assert took < 10


def test_an_answer_holds_plain_values_only() -> None:
    with pytest.raises(pickle.UnpicklingError, match=r"(os|posix)\.system"):
        answers.load(calls.evil_pickle())

    async def body(sb: Sandbox) -> BaseException:
        got = await asyncio.gather(sb.run(None, 5, calls.mutable), return_exceptions=True)
        return got[0]

    assert isinstance(run(body), pickle.UnpicklingError)
    assert answers.load(pickle.dumps(InvalidInput("x"))).message == "x"
