"""The ramp: for each mode and each stream count, that many streams at once (starts spread over
``STAGGER_S``), while the server's /metrics (metrics.py) is read every ``SAMPLE_S`` for its
resident memory, and before and after the step for its CPU time and simultaneous steps."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from translate_svc.client_cli.load.capacity import ServerUse, Step, summarize
from translate_svc.client_cli.load.clips import Clip, stream_clips
from translate_svc.client_cli.load.metrics import Reading, read_metrics
from translate_svc.client_cli.load.streams import Mode, StreamObs, grpc_stream, openai_stream

logger = logging.getLogger(__name__)

STAGGER_S = 1.0
SAMPLE_S = 0.5


@dataclass(frozen=True)
class Plan:
    clip: Clip
    modes: tuple[Mode, ...]
    ramp: tuple[int, ...]
    seconds: float
    target: str  # gRPC target language
    openai_language: str
    p95_ms: float
    headroom: float
    metrics_url: str | None
    openai_url: str | None
    token: str | None


def _growth(before: float | None, after: float | None) -> int | None:
    return None if before is None or after is None else round(after - before)


def server_use(before: Reading | None, after: Reading | None, rss_max: float | None, wall_s: float) -> ServerUse:
    """A step's ServerUse from the readings before and after it and the most memory seen."""
    b, a = before or Reading(), after or Reading()
    cpu = round((a.cpu_s - b.cpu_s) / wall_s, 2) if a.cpu_s is not None and b.cpu_s is not None and wall_s > 0 else None
    mb = round(rss_max / 2**20, 1) if rss_max is not None else None
    return ServerUse(cpu, mb, _growth(b.steps_run, a.steps_run), _growth(b.steps_skipped, a.steps_skipped))


class MetricsWatch:
    """Reads the server's /metrics while a step runs (none: ``url`` None)."""

    def __init__(self, url: str | None) -> None:
        self.url = url

    async def read(self) -> Reading | None:
        return None if self.url is None else await read_metrics(self.url)

    async def during(self, work: Awaitable[list[StreamObs]]) -> tuple[list[StreamObs], float, ServerUse]:
        rss_max: float | None = None

        def seen(r: Reading | None) -> None:
            nonlocal rss_max
            if r is not None and r.rss_bytes is not None:
                rss_max = max(rss_max or 0.0, r.rss_bytes)

        before = await self.read()
        seen(before)
        t0 = time.perf_counter()
        task = asyncio.ensure_future(work)
        while self.url is not None and not task.done():
            await asyncio.wait([task], timeout=SAMPLE_S)
            seen(await self.read())
        result = await task
        wall = time.perf_counter() - t0
        after = await self.read()
        seen(after)
        return result, wall, server_use(before, after, rss_max, wall)


async def _staggered(n: int, one: Callable[[int], Awaitable[StreamObs]]) -> list[StreamObs]:
    async def later(i: int) -> StreamObs:
        await asyncio.sleep(i * STAGGER_S / n)
        return await one(i)

    return list(await asyncio.gather(*(later(i) for i in range(n))))


async def run_ramp(plan: Plan, client: Any, on_step: Callable[[Step], None] = lambda _: None) -> list[Step]:
    """Every (mode, count) step in turn; ``on_step`` sees each as it is done."""
    steps: list[Step] = []
    watch = MetricsWatch(plan.metrics_url)
    for mode in plan.modes:
        for n in plan.ramp:
            clips = stream_clips(plan.clip, n, plan.seconds)

            def one(i: int, clips: Sequence[Clip] = clips, mode: Mode = mode) -> Awaitable[StreamObs]:
                if mode is Mode.OPENAI:
                    assert plan.openai_url is not None
                    return openai_stream(plan.openai_url, plan.token, clips[i], plan.openai_language)
                return grpc_stream(client, clips[i], plan.target, simultaneous=mode is Mode.SIMULTANEOUS)

            obs, wall, use = await watch.during(_staggered(n, one))
            for o in obs:
                if o.error is not None:
                    logger.warning("%s x%d: a stream failed: %s", mode.value, n, o.error)
            step = summarize(mode.value, obs, wall, plan.p95_ms, use)
            steps.append(step)
            on_step(step)
    return steps
