"""serving/collector.py: a warm server's long-lived objects leave the collector's sight, and a full
collection runs on a clock (issue 53)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from translate_svc.serving import collector

pytestmark = pytest.mark.unit


def test_freeze_moves_what_is_alive_out_of_later_collections() -> None:
    kept = [object() for _ in range(10)]
    try:
        collector.freeze()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()


async def test_a_full_collection_runs_every_period(monkeypatch: pytest.MonkeyPatch) -> None:
    generations: list[int] = []

    def collect(generation: int = 2) -> int:
        generations.append(generation)
        return 0

    monkeypatch.setattr(gc, "collect", collect)
    task = asyncio.create_task(collector.collect_every(0.01))
    await asyncio.sleep(0.1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(generations) >= 3 and set(generations) == {2}
