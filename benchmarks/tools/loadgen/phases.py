"""The load's shapes: a phase of N streams (real time, starts staggered, flood streams beside
them; or unpaced, for saturation), and one config measured as its real-time phase then its
saturation phase, summarised with the CPU each side used."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from benchmarks.tools import report
from benchmarks.tools.loadgen.clips import OPUS_FRAME_MS, Clip
from benchmarks.tools.loadgen.cpu import cpu_snapshot, own_cpu, read_proc_cpu
from benchmarks.tools.loadgen.options import RunOptions
from benchmarks.tools.loadgen.render import num
from benchmarks.tools.loadgen.stream import StreamParams, drive_stream
from benchmarks.tools.report import BatchObs, ProcCpu, StreamObs

logger = logging.getLogger(__name__)

#: how often the CPU of the server (--server-pid) and of this process is sampled during a phase


#: how often the CPU of the server (--server-pid) and of this process is sampled during a phase
CPU_SAMPLE_S = 0.5


@dataclass
class PhaseResult:
    streams: list[StreamObs]
    flood: list[StreamObs]
    batches: list[BatchObs] | None
    machine: tuple[report.CpuSnapshot | None, report.CpuSnapshot | None]
    client: list[ProcCpu]  # samples of this process; first and last bracket the phase
    server: list[ProcCpu]  # samples of --server-pid (empty without it); first and last with threads
    steady: tuple[float, float] | None  # all real-time streams live: last start .. first last send


async def run_phase(
    target: str,
    clips: list[Clip],
    params: StreamParams,
    batches: list[BatchObs] | None,
    on_started: Callable[[Any], None],
    *,
    chunk_ms: int,
    speed: float | None,
    stagger_s: float,
    flood_clips: list[Clip] | None = None,
    flood_speed: float | None = None,
    server_pid: int | None = None,
) -> PhaseResult:
    """One stream per clip, stream i starting at ``i * stagger_s / N``; flood streams start at once and
    stop sending when the last of the N finished."""
    if batches is not None:
        batches.clear()
    counter = [0]
    stop = asyncio.Event()
    machine_before = cpu_snapshot()
    client = [own_cpu()]
    server: list[ProcCpu] = []
    if server_pid is not None and (first := read_proc_cpu(server_pid, threads=True)) is not None:
        server.append(first)

    async def sample() -> None:
        while True:
            await asyncio.sleep(CPU_SAMPLE_S)
            client.append(own_cpu(counter[0]))
            if server_pid is not None and (x := read_proc_cpu(server_pid, messages=counter[0])) is not None:
                server.append(x)

    sampler = asyncio.create_task(sample())
    base = time.perf_counter() + 0.05
    n = len(clips)
    flood_tasks = [
        asyncio.create_task(
            drive_stream(
                target,
                n + j,
                clip,
                params,
                chunk_ms=chunk_ms,
                speed=flood_speed,
                start_at=base,
                on_started=on_started,
                counter=counter,
                stop=stop,
                keep_sent=True,
            )
        )
        for j, clip in enumerate(flood_clips or [])
    ]
    try:
        streams = await asyncio.gather(
            *(
                drive_stream(
                    target,
                    i,
                    clip,
                    params,
                    chunk_ms=chunk_ms,
                    speed=speed,
                    start_at=base + i * stagger_s / n,
                    on_started=on_started,
                    counter=counter,
                )
                for i, clip in enumerate(clips)
            )
        )
        stop.set()
        flood = list(await asyncio.gather(*flood_tasks))
    finally:
        stop.set()
        sampler.cancel()
        await asyncio.gather(sampler, return_exceptions=True)
    client.append(own_cpu(counter[0]))
    if server_pid is not None and (last := read_proc_cpu(server_pid, messages=counter[0], threads=True)) is not None:
        server.append(last)
    starts = [s.start_s for s in streams]
    sends = [s.last_audio_s for s in streams if not math.isnan(s.last_audio_s)]
    steady = (max(starts), min(sends)) if starts and sends and min(sends) > max(starts) else None
    return PhaseResult(
        list(streams),
        flood,
        None if batches is None else list(batches),
        (machine_before, cpu_snapshot()),
        client,
        server,
        steady,
    )


def cpu_report(phase: PhaseResult, server_pid: int | None) -> dict[str, Any]:
    """Server and client CPU over the whole phase and over its steady window."""

    def windows(samples: list[ProcCpu]) -> dict[str, Any]:
        if len(samples) < 2:
            return {"phase": report.cpu_use(None, None), "steady": report.cpu_use(None, None)}
        w = report.steady_window(samples, *phase.steady) if phase.steady else None
        return {
            "phase": report.cpu_use(samples[0], samples[-1]),
            "steady": report.cpu_use(*w) if w else report.cpu_use(None, None),
        }

    out: dict[str, Any] = {
        "steady_window_s": None if phase.steady is None else phase.steady[1] - phase.steady[0],
        "client": windows(phase.client),
        "server_pid": server_pid,
        "server": windows(phase.server) if server_pid is not None else None,
        "server_threads_s": report.thread_cpu(phase.server[0], phase.server[-1]) if len(phase.server) >= 2 else {},
    }
    return out


def phase_foreign_cpu(phase: PhaseResult, wall_s: float | None, opts: RunOptions) -> dict[str, Any]:
    """Other processes' CPU during the phase; an external server's own CPU is not "other" when its pid is
    known (else ``includes_server``: a server on this machine counts as another process)."""
    before, after = phase.machine
    if before is not None and after is not None and len(phase.server) >= 2:
        server_s = phase.server[-1].cpu_s - phase.server[0].cpu_s
        after = report.CpuSnapshot(after.machine_busy_s, after.process_s + server_s)
    out: dict[str, Any] = report.foreign_cpu(
        before, after, wall_s, os.cpu_count() or 1
    )  # /proc/stat counts every CPU, not only ours
    out["includes_server"] = opts.target is not None and opts.server_pid is None
    return out


async def measure(
    name: str,
    target: str,
    opts: RunOptions,
    assign: list[Clip],
    flood_clips: list[Clip],
    batches: list[BatchObs] | None,
    on_started: Callable[[Any], None],
) -> dict[str, Any]:
    """The real-time phase (with any flood streams), then the saturation phase, summarised."""
    params = StreamParams.of(opts)
    n = opts.streams
    logger.info(
        "[%s] real-time phase: %d streams at %.2gx, stagger %.1f s, %s in %d ms messages%s%s",
        name, n, opts.speed, opts.stagger_s, opts.encoding, opts.chunk_ms,
        f", captions every {opts.interim_ms} ms" if opts.interim_ms else "",
        f", {len(flood_clips)} flood streams at {opts.flood_speed:g}x" if flood_clips else "",
    )  # fmt: skip
    rt = await run_phase(
        target,
        assign,
        params,
        batches,
        on_started,
        chunk_ms=opts.chunk_ms,
        speed=opts.speed,
        stagger_s=opts.stagger_s,
        flood_clips=flood_clips,
        flood_speed=opts.flood_speed or None,
        server_pid=opts.server_pid,
    )
    realtime = report.realtime_summary(
        rt.streams, rt.batches, speed=opts.speed, chunk_ms=opts.chunk_ms, slo_ms=opts.slo_ms, behind_s=opts.behind_s
    )
    realtime["cpu"] = cpu_report(rt, opts.server_pid)
    realtime["audio_messages"] = sum(s.audio_messages for s in rt.streams + rt.flood)
    if rt.flood:
        realtime["flood"] = report.flood_summary(rt.flood)
    realtime["foreign_cpu"] = phase_foreign_cpu(rt, realtime["wall_s"], opts)
    logger.info(
        "[%s] real-time: %d segments (%d expected), p95 %s ms%s",
        name, realtime["segments"], realtime["segments_expected"], num(realtime["latency_ms"]["p95"]),
        "" if rt.batches is None else f", {len(rt.batches)} batches",
    )  # fmt: skip
    out: dict[str, Any] = {"realtime": realtime, "saturation": None, "rt": rt, "sat": None}
    if opts.saturation:
        sat_chunk = OPUS_FRAME_MS if opts.encoding == "opus" else opts.saturation_chunk_ms
        logger.info("[%s] saturation phase: %d streams unpaced, %d ms messages", name, n, sat_chunk)
        sat = await run_phase(
            target, assign, params, batches, on_started, chunk_ms=sat_chunk, speed=None, stagger_s=0.0,
            server_pid=opts.server_pid,
        )  # fmt: skip
        saturation = report.saturation_summary(sat.streams, sat.batches)
        saturation["chunk_ms"] = sat_chunk
        saturation["cpu"] = cpu_report(sat, opts.server_pid)
        saturation["foreign_cpu"] = phase_foreign_cpu(sat, saturation["wall_s"], opts)
        logger.info(
            "[%s] saturation: %.1f audio s in %s s = %s x real time",
            name, saturation["audio_s"], num(saturation["wall_s"], 1), num(saturation["throughput"], 2),
        )  # fmt: skip
        out["saturation"], out["sat"] = saturation, sat
    for phase in ("realtime", "saturation"):
        foreign = (out[phase] or {}).get("foreign_cpu", {})
        share = foreign.get("share")
        if share is not None and share > 0.05 and not foreign.get("includes_server"):
            logger.warning(
                "[%s] other processes used %.0f%% of this machine's CPU during the %s phase: its timings are disturbed",
                name, 100 * share, phase,
            )  # fmt: skip
    return out
