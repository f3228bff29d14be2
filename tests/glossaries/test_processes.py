"""The glossaries' parse processes (issue 91's residual): a file parsed there gives what the parser
gives here, its refusal raised here as it was, at a lower priority than the server's threads, in
processes kept for the next file; a process that dies, or whose call is cancelled, fails only
that call, and the next call gets a new one."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.glossary_files import tbx
from translate_svc.errors import InvalidInput, NotReady
from translate_svc.glossaries.model import GlossaryLimits
from translate_svc.glossaries.parse_worker import NICENESS
from translate_svc.glossaries.processes import SLICE, ParseProcesses
from translate_svc.glossaries.tbx import parse_tbx

pytestmark = pytest.mark.unit

LIMITS = GlossaryLimits(
    max_entries=3000, max_glossaries=3, max_per_request=2, max_import_bytes=4 << 20, max_term_chars=64
)
LANGS = ["eng", "spa"]


async def on_a_thread(fn: Callable[[bytes], Any], payload: bytes) -> Any:
    return await asyncio.to_thread(fn, payload)


def spinning(seconds: float) -> int:
    """Busy for ``seconds`` (a parse that takes its time); its process's id."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return os.getpid()


def test_a_file_parsed_there_is_what_it_is_here_and_its_refusal_comes_back() -> None:
    data = tbx(2000)  # 1.8 MB: its bytes go beside the pickle, in slices
    assert len(data) > SLICE
    broken = data[: len(data) // 2]

    async def run() -> tuple[object, BaseException | None, int, set[int]]:
        pp = ParseProcesses(2, on_a_thread)
        try:
            there = await pp.run(parse_tbx, data, LIMITS, LANGS, "en")
            try:
                await pp.run(parse_tbx, broken, LIMITS, LANGS, "en")
                refusal = None
            except InvalidInput as e:
                refusal = e
            niceness = await pp.run(os.nice, 0)
            # four calls at once on two processes, kept: two process ids in all, none of this one's
            pids = set(await asyncio.gather(*(pp.run(spinning, 0.2) for _ in range(4))))
        finally:
            await pp.close()
        return there, refusal, niceness, pids

    there, refusal, niceness, pids = asyncio.run(run())
    assert there == parse_tbx(data, LIMITS, LANGS, "en") and len(there) == 2000  # type: ignore[arg-type]
    with pytest.raises(InvalidInput) as here:
        parse_tbx(broken, LIMITS, LANGS, "en")
    assert isinstance(refusal, InvalidInput) and refusal.message == here.value.message
    assert "not well-formed" in refusal.message
    # the kernel gives the server's own threads the cores first
    assert niceness == min(19, os.nice(0) + NICENESS)
    assert len(pids) == 2 and os.getpid() not in pids, pids


def test_a_process_that_dies_or_is_cancelled_fails_its_call_and_the_next_gets_a_new_one() -> None:
    async def run() -> tuple[BaseException | None, list[int], object]:
        pp = ParseProcesses(1, on_a_thread)
        try:
            first = await pp.run(os.getpid)
            try:
                await pp.run(os._exit, 3)  # as the kernel's OOM killer would end it
                died = None
            except NotReady as e:
                died = e
            second = await pp.run(os.getpid)
            slow = asyncio.create_task(pp.run(spinning, 30.0))  # a caller that goes away mid-parse
            await asyncio.sleep(0.5)
            slow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await slow
            third = await asyncio.wait_for(pp.run(os.getpid), 20)  # not behind the abandoned parse
            after = await pp.run(parse_tbx, tbx(3), LIMITS, LANGS, "en")
        finally:
            await pp.close()
        return died, [first, second, third], after

    died, pids, after = asyncio.run(run())
    assert isinstance(died, NotReady) and died.retry_after_ms, died
    assert "retry" in died.message
    assert len(set(pids)) == 3, pids
    assert isinstance(after, list) and len(after) == 3
