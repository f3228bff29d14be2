"""Where the load goes and what is written down: a fresh in-process server per config (every
batch recorded) or an external server (``--target``), the model each served, and the whole run as
one document (command, commit, machine, model, config, definitions, results)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.tools import report
from benchmarks.tools.loadgen.clips import Clip, encode_clips, fit_clip, flood_clips_for, load_clips, stream_clips
from benchmarks.tools.loadgen.options import RunOptions, build_settings
from benchmarks.tools.loadgen.phases import PhaseResult, measure
from benchmarks.tools.machine import cpu_model, git_state, machine_info, usable_cpus
from benchmarks.tools.report import BatchObs, StreamObs

logger = logging.getLogger(__name__)


def phase_json(m: dict[str, Any], opts: RunOptions) -> dict[str, Any]:
    """The per-stream and per-batch details of ``measure``'s phases."""
    rt: PhaseResult = m["rt"]
    sat: PhaseResult | None = m["sat"]
    streams: dict[str, Any] = {"realtime": [stream_json(s, opts) for s in rt.streams]}
    if rt.flood:
        streams["flood"] = [stream_json(s, None) for s in rt.flood]
    if sat is not None:
        streams["saturation"] = [stream_json(s, None) for s in sat.streams]
    out: dict[str, Any] = {"realtime": m["realtime"], "saturation": m["saturation"], "streams": streams}
    if rt.batches is not None:
        # every batch in order: [size, padded audio s, model ms]
        out["batch_log"] = {
            "realtime": [[b.size, round(b.padded_audio_s, 3), round(b.model_ms, 1)] for b in rt.batches],
            "saturation": []
            if sat is None or sat.batches is None
            else [[b.size, round(b.padded_audio_s, 3), round(b.model_ms, 1)] for b in sat.batches],
        }
    return out


def check_limits(limits: Any, opts: RunOptions) -> None:
    """Refuse what the server will refuse anyway, before any stream starts."""
    least = getattr(limits, "min_interim_interval_ms", 0)
    if opts.interim_ms and opts.interim_ms < least:
        raise SystemExit(f"--interim-ms {opts.interim_ms}: this server's smallest interim interval is {least} ms")
    if limits.max_streams and opts.streams + opts.flood_streams > limits.max_streams:
        logger.warning(
            "%d streams but the server admits %d at once: the rest will be refused (RESOURCE_EXHAUSTED, counted)",
            opts.streams + opts.flood_streams, limits.max_streams,
        )  # fmt: skip


async def list_languages(target: str) -> Any:
    from tests.support.raw import channel
    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    ch = channel(target)
    try:
        return await pb_grpc.TranslatorStub(ch).ListLanguages(pb.ListLanguagesRequest(), timeout=30)
    finally:
        await ch.close()


async def run_config(
    name: str, max_batch_size: int, opts: RunOptions, assign: list[Clip], flood: list[Clip]
) -> dict[str, Any]:
    """A fresh in-process server with ``max_batch_size``; the real-time phase, then the saturation phase."""
    from translate_svc.app import build
    from translate_svc.transport.host import TranslateServer

    settings = build_settings(opts, max_batch_size)
    batches: list[BatchObs] = []

    def on_batch(b: Any) -> None:
        batches.append(BatchObs(b.size, b.padded_audio_s, b.model_ms, tuple(b.queue_ms)))

    started_models: set[tuple[str, str, bool]] = set()

    def on_started(msg: Any) -> None:
        started_models.add((msg.model.name, msg.model.revision, msg.model.is_test_model))

    server = TranslateServer(build(settings, on_batch=on_batch))
    try:
        t0 = time.perf_counter()
        port = await server.start()
        load_s = time.perf_counter() - t0
        target = f"127.0.0.1:{port}"
        runner: Any = server.app.engine.runner  # the SeamlessRunner: its stages' torch model is described below
        assert runner is not None
        stages = runner.stages
        forced = getattr(settings.model, "forced_text_tokens_per_s", None)
        langs = await list_languages(target)
        check_limits(langs.limits, opts)
        model = {
            "name": langs.model.name,
            "revision": langs.model.revision,
            "is_test_model": langs.model.is_test_model,
            "parameters": sum(p.numel() for p in stages.model.parameters()),
            "device": str(stages.device),
            "dtype": str(stages.dtype).removeprefix("torch."),
            "device_name": device_name(stages.device),
            "torch_threads": torch_threads(stages.device),
            "forced_text_tokens_per_s": forced,
            "forced_units_per_s": getattr(settings.model, "forced_units_per_s", None) if forced else None,
        }
        logger.info("[%s] server on port %d, model %s loaded in %.1f s", name, port, model["name"], load_s)
        m = await measure(name, target, opts, assign, flood, batches, on_started)
    finally:
        await server.stop(grace=2.0)

    model["started_messages"] = [
        {"name": a, "revision": b, "is_test_model": c} for a, b, c in sorted(started_models)
    ]  # every stream saw the same model (one entry) unless something is badly wrong
    return {
        "name": name,
        "max_batch_size": max_batch_size,
        "max_wait_ms": opts.max_wait_ms,
        "settings": settings.model_dump(mode="json"),
        "model": model,
        "load_s": load_s,
        **phase_json(m, opts),
    }


async def run_target(opts: RunOptions, assign: list[Clip], flood: list[Clip]) -> dict[str, Any]:
    """Drive the external server at ``opts.target``: nothing is started, batches are not seen."""
    from google.protobuf.json_format import MessageToDict

    assert opts.target is not None
    started: dict[str, Any] = {}
    started_models: set[tuple[str, str, bool]] = set()

    def on_started(msg: Any) -> None:
        started_models.add((msg.model.name, msg.model.revision, msg.model.is_test_model))
        started.setdefault("config", MessageToDict(msg.config))

    langs = await list_languages(opts.target)
    check_limits(langs.limits, opts)
    model: dict[str, Any] = {
        "name": langs.model.name,
        "revision": langs.model.revision,
        "is_test_model": langs.model.is_test_model,
        "parameters": None,
        "device": None,
        "dtype": None,
        "device_name": None,
        "torch_threads": None,
        "forced_text_tokens_per_s": None,
        "forced_units_per_s": None,
    }
    logger.info("[target] server %s, model %s", opts.target, model["name"])
    m = await measure("target", opts.target, opts, assign, flood, None, on_started)
    model["started_messages"] = [{"name": a, "revision": b, "is_test_model": c} for a, b, c in sorted(started_models)]
    return {
        "name": "target",
        "target": opts.target,
        "max_batch_size": None,
        "max_wait_ms": None,
        "server_limits": MessageToDict(langs.limits),
        "stream_config_resolved": started.get("config"),  # the first StreamStarted.config
        "model": model,
        "load_s": None,
        **phase_json(m, opts),
    }


def stream_json(s: StreamObs, opts: RunOptions | None) -> dict[str, Any]:
    lat = report.segment_latencies_ms(s, speed=opts.speed, chunk_ms=opts.chunk_ms) if opts is not None else []
    out: dict[str, Any] = {
        "index": s.index,
        "file": s.file,
        "audio_s": s.audio_ms / 1000.0,
        "audio_messages": s.audio_messages,
        "segments": len(s.segments),
        "segments_total": s.segments_total,
        "error": s.error,
        "end_after_last_audio_ms": None if s.ended_s is None else (s.ended_s - s.last_audio_s) * 1000.0,
        "max_send_lag_ms": s.max_send_lag_ms,
    }
    if lat:
        out["latency_ms"] = [round(ms, 1) for _, ms in lat]
        out["vad_wait_ms"] = [round(seg.vad_wait_ms, 1) for seg in s.segments]
    if opts is None and s.sent_s:
        out["latency_ms"] = [round(ms, 1) for ms in report.actual_send_latencies_ms(s)]
    if s.interims:
        out["interims"] = len(s.interims)
        if opts is not None:
            first = report.first_caption_latencies_ms(s, speed=opts.speed, chunk_ms=opts.chunk_ms)
            out["first_caption_latency_ms"] = {str(sid): round(ms, 1) for sid, ms in first}
    return out


def torch_threads(device: Any) -> int:
    """torch's CPU threads once the runner has set them; warns when they leave no CPU to the loop.

    The event loop (gRPC, sessions, VAD) needs a CPU too. With one OpenMP thread per CPU the pool's
    spin-waiting workers fight the loop for the cores and small ops stall for scheduler slices: on
    a 2-CPU machine the test model ran 2-25x slower, varying from run to run.
    """
    import torch

    n = torch.get_num_threads()
    cpus = usable_cpus()
    if device.type == "cpu" and n >= cpus and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        logger.warning(
            "torch uses %d threads on %d CPUs shared with the event loop: timings may be slow and noisy "
            "(try --cpu-threads %d)",
            n, cpus, max(1, cpus - 1),
        )  # fmt: skip
    return n


def device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return cpu_model()


async def run_all(opts: RunOptions) -> dict[str, Any]:
    clips = await asyncio.to_thread(load_clips, opts.files)
    assign = [fit_clip(c, opts.stream_s) for c in stream_clips(clips, opts.streams, opts.shift_s)]
    flood = flood_clips_for(clips, opts, assign)
    if opts.encoding == "opus":
        t0 = time.perf_counter()
        assign, flood = await asyncio.to_thread(lambda: (encode_clips(assign, "opus"), encode_clips(flood, "opus")))
        logger.info(
            "encoded %d clips to Opus in %.1f s", len({c.name for c in assign + flood}), time.perf_counter() - t0
        )
    results: dict[str, Any] = {}
    if opts.target is not None:
        results["target"] = await run_target(opts, assign, flood)
    else:
        for config in opts.configs:
            size = opts.max_batch_size if config == "on" else 1
            results[f"batching_{config}"] = await run_config(f"batching_{config}", size, opts, assign, flood)
    first = next(iter(results.values()))
    model = {k: v for k, v in first["model"].items() if k != "started_messages"}
    model["caveat"] = report.model_caveat(
        model["is_test_model"], model["parameters"], model["forced_text_tokens_per_s"], model["forced_units_per_s"]
    )
    out: dict[str, Any] = {
        "schema": "translate_svc.benchmarks.tools.loadgen/2",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, "-m", "benchmarks.tools.loadgen", *sys.argv[1:]]),
        "git": git_state(),
        "machine": machine_info(),
        "model": model,
        "config": {
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in opts.__dict__.items()},
            "clips": [{"name": c.name, "audio_s": c.audio_ms / 1000.0} for c in clips],
            "client_pid": os.getpid(),
            "client_cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
        "definitions": report.DEFINITIONS,
        "results": results,
    }
    if "batching_on" in results and "batching_off" in results:
        out["ratios"] = report.ratio_table(results["batching_on"], results["batching_off"])
    return out
