"""The ramp: for each mode and each stream count, that many streams at once (starts spread over
``STAGGER_S``), while the server's /metrics is read every ``SAMPLE_S`` for its CPU time and
resident memory (prometheus_client's process collector: ``process_cpu_seconds_total``,
``process_resident_memory_bytes``; a ``serve --workers N`` node reports its supervisor's only)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from translate_svc.cli.load.capacity import ServerUse, Step, summarize
from translate_svc.cli.load.clips import Clip, stream_clips
from translate_svc.cli.load.streams import Mode, StreamObs, grpc_stream, openai_stream

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


def parse_metrics(text: str) -> tuple[float | None, float | None]:
    """(CPU seconds, resident bytes) of a /metrics page (None: not on it)."""
    from prometheus_client.parser import text_string_to_metric_families

    cpu = rss = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "process_cpu_seconds_total":
                cpu = sample.value
            elif sample.name == "process_resident_memory_bytes":
                rss = sample.value
    return cpu, rss


class MetricsWatch:
    """Samples the server's /metrics while a step runs."""

    def __init__(self, http: Any, url: str | None) -> None:
        self.http, self.url = http, url

    async def read(self) -> tuple[float | None, float | None]:
        if self.url is None:
            return None, None
        import aiohttp

        try:
            async with self.http.get(self.url) as r:
                r.raise_for_status()
                return parse_metrics(await r.text())
        except (aiohttp.ClientError, OSError, ValueError) as e:  # the step goes on, unmeasured
            logger.warning("cannot read %s: %s", self.url, e)
            return None, None

    async def during(self, work: Awaitable[list[StreamObs]]) -> tuple[list[StreamObs], float, ServerUse]:
        cpu0, rss = await self.read()
        rss_max = rss
        t0 = time.perf_counter()
        task = asyncio.ensure_future(work)
        while self.url is not None and not task.done():
            await asyncio.wait([task], timeout=SAMPLE_S)
            _, rss = await self.read()
            if rss is not None:
                rss_max = max(rss_max or 0.0, rss)
        result = await task
        wall = time.perf_counter() - t0
        cpu1, rss = await self.read()
        if rss is not None:
            rss_max = max(rss_max or 0.0, rss)
        cores = round((cpu1 - cpu0) / wall, 2) if cpu0 is not None and cpu1 is not None and wall > 0 else None
        mb = round(rss_max / 2**20, 1) if rss_max is not None else None
        return result, wall, ServerUse(cores, mb)


async def _staggered(n: int, one: Callable[[int], Awaitable[StreamObs]]) -> list[StreamObs]:
    async def later(i: int) -> StreamObs:
        await asyncio.sleep(i * STAGGER_S / n)
        return await one(i)

    return list(await asyncio.gather(*(later(i) for i in range(n))))


async def run_ramp(plan: Plan, client: Any, on_step: Callable[[Step], None] = lambda _: None) -> list[Step]:
    """Every (mode, count) step in turn; ``on_step`` sees each as it is done."""
    import aiohttp

    steps: list[Step] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as http:
        watch = MetricsWatch(http, plan.metrics_url)
        for mode in plan.modes:
            for n in plan.ramp:
                clips = stream_clips(plan.clip, n, plan.seconds)

                def one(i: int, clips: Sequence[Clip] = clips, mode: Mode = mode) -> Awaitable[StreamObs]:
                    if mode is Mode.OPENAI:
                        assert plan.openai_url is not None
                        return openai_stream(http, plan.openai_url, plan.token, clips[i], plan.openai_language)
                    return grpc_stream(client, clips[i], plan.target, simultaneous=mode is Mode.SIMULTANEOUS)

                obs, wall, use = await watch.during(_staggered(n, one))
                for o in obs:
                    if o.error is not None:
                        logger.warning("%s x%d: a stream failed: %s", mode.value, n, o.error)
                step = summarize(mode.value, obs, wall, plan.p95_ms, use)
                steps.append(step)
                on_step(step)
    return steps
