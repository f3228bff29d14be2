"""``python -m benchmarks.tools.loadgen``: the command line, its checks before anything loads,
then the run, its table and its JSON."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import benchmarks.tools.loadgen as package
from benchmarks.tools import report
from benchmarks.tools.loadgen.clips import OPUS_FRAME_MS
from benchmarks.tools.loadgen.cpu import read_proc_cpu
from benchmarks.tools.loadgen.options import (
    DEFAULT_CHUNK_MS,
    DEFAULT_FILES,
    ENCODINGS,
    RunOptions,
    build_settings,
    settings_field_for,
)
from benchmarks.tools.loadgen.render import console, render
from benchmarks.tools.loadgen.runs import run_all
from tests.support.paths import TEST_MODEL
from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S

logger = logging.getLogger(__name__)

app = typer.Typer(add_completion=False, help=package.__doc__, pretty_exceptions_enable=False)


def csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@app.command()
def main(
    streams: Annotated[int, typer.Option(min=1, help="concurrent streams")] = 16,
    model: Annotated[Path, typer.Option(help="model directory")] = TEST_MODEL,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16 or float16")] = "auto",
    max_batch_size: Annotated[int, typer.Option(min=1, help="batching ON: segments per batch")] = 16,
    max_wait_ms: Annotated[float, typer.Option(min=0, help="batching ON and OFF: longest wait to fill a batch")] = 10.0,
    speed: Annotated[float, typer.Option(min=0.01, help="real-time phase pacing: k means k x real time")] = 1.0,
    stagger_s: Annotated[float, typer.Option(min=0, help="stream starts spread over this many seconds")] = 2.0,
    chunk_ms: Annotated[
        int | None,
        typer.Option(min=10, help=f"real-time phase message length (default {DEFAULT_CHUNK_MS}; opus: 20, only)"),
    ] = None,
    saturation_chunk_ms: Annotated[int, typer.Option(min=10, help="saturation phase chunk length")] = 1000,
    files: Annotated[str, typer.Option(help="comma list; names in ../shared/audio or paths")] = DEFAULT_FILES,
    shift_s: Annotated[
        float, typer.Option(min=0, help="each further copy of a file starts this much later (0: identical copies)")
    ] = DEFAULT_SHIFT_S,
    stream_s: Annotated[
        float, typer.Option(min=0, help="cut or loop every stream's audio to this many seconds (0: the file's)")
    ] = 0.0,
    to: Annotated[str, typer.Option(help="target languages, comma list")] = "spa",
    speech: Annotated[bool, typer.Option("--speech/--no-speech", help="ask for translated speech")] = True,
    configs: Annotated[str, typer.Option(help="in-process: which configs to run: on, off or on,off")] = "on,off",
    target: Annotated[
        str | None, typer.Option(help="host:port of a running server: drive it (no in-process server, one config)")
    ] = None,
    server_pid: Annotated[
        int | None, typer.Option(help="with --target: the server's pid on this machine, to read its CPU time")
    ] = None,
    encoding: Annotated[str, typer.Option(help="linear16 (16 kHz PCM) or opus (one 20 ms packet a message)")] = (
        "linear16"
    ),
    interim_ms: Annotated[
        int, typer.Option(min=0, help="live captions: StreamingConfig.interim_interval_ms (0: off)")
    ] = 0,
    flood_streams: Annotated[int, typer.Option(min=0, help="extra streams sending at --flood-speed")] = 0,
    flood_speed: Annotated[float, typer.Option(min=0, help="flood streams' pace: k x real time")] = 0.0,
    vad_threshold: Annotated[
        float | None, typer.Option(help="StreamingConfig.vad.threshold for every stream (default: the server's)")
    ] = None,
    vad_min_speech_ms: Annotated[
        int | None, typer.Option(help="StreamingConfig.vad.min_speech_ms for every stream (default: the server's)")
    ] = None,
    vad_eagerness: Annotated[
        str | None,
        typer.Option(help="StreamingConfig.vad.eagerness for every stream: low, medium, high, auto (the server's)"),
    ] = None,
    vad_eager_threshold: Annotated[
        float | None,
        typer.Option(help="StreamingConfig.vad.eager_threshold for every stream (with --vad-eagerness)"),
    ] = None,
    saturation: Annotated[bool, typer.Option("--saturation/--no-saturation", help="run the saturation phase")] = True,
    slo_ms: Annotated[float, typer.Option(help="p95 latency bound for 'streams sustained'")] = report.DEFAULT_SLO_MS,
    behind_s: Annotated[float, typer.Option(help="a stream whose end comes later than this fell behind")] = (
        report.DEFAULT_BEHIND_S
    ),
    timeout_s: Annotated[float, typer.Option(help="deadline of each stream call")] = 1800.0,
    cpu_threads: Annotated[
        int | None, typer.Option(min=1, help="model.cpu_threads (torch CPU threads); default: the server's")
    ] = None,
    forced_tokens_per_s: Annotated[
        float | None,
        typer.Option(
            help="random weights only: force this many text tokens per audio second "
            "(model.forced_text_tokens_per_s; refused by builds without it)"
        ),
    ] = None,
    forced_units_per_s: Annotated[
        float | None, typer.Option(help="with --forced-tokens-per-s: units per audio second (server default 50)")
    ] = None,
    warmup: Annotated[
        str | None, typer.Option(help="model.warmup: one, batches or auto (default: the server's)")
    ] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the machine-readable report here")] = None,
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING or ERROR")] = "INFO",
) -> None:
    """Run the benchmark; print a table; optionally write JSON."""
    from pydantic import ValidationError

    from translate_svc import logging_setup

    logging_setup.configure(log_level.upper())
    err = Console(stderr=True)
    given = {
        "cpu_threads": cpu_threads,
        "forced_tokens_per_s": forced_tokens_per_s,
        "forced_units_per_s": forced_units_per_s,
        "warmup": warmup,
    }
    if target is not None and any(v is not None for v in given.values()):
        raise typer.BadParameter(
            "--cpu-threads / --forced-* / --warmup configure an in-process server: set them on the external server",
            param_hint="--target",
        )
    for option, value in given.items():
        if value is not None and settings_field_for(option) is None:
            err.print(f"--{option.replace('_', '-')}: not supported by this build (no such setting)")
            raise typer.Exit(2)
    if forced_units_per_s is not None and forced_tokens_per_s is None:
        raise typer.BadParameter("needs --forced-tokens-per-s", param_hint="--forced-units-per-s")
    chosen = csv(configs)
    if not chosen or any(c not in ("on", "off") for c in chosen):
        raise typer.BadParameter("use on, off or on,off", param_hint="--configs")
    if encoding not in ENCODINGS:
        raise typer.BadParameter(f"use {' or '.join(ENCODINGS)}", param_hint="--encoding")
    if encoding == "opus":
        if chunk_ms is not None and chunk_ms != OPUS_FRAME_MS:
            raise typer.BadParameter(
                f"{chunk_ms}: with --encoding opus every message is one {OPUS_FRAME_MS} ms Opus packet; "
                f"use --chunk-ms {OPUS_FRAME_MS} (or leave it out)",
                param_hint="--chunk-ms",
            )
        chunk_ms = OPUS_FRAME_MS
    elif chunk_ms is None:
        chunk_ms = DEFAULT_CHUNK_MS
    if server_pid is not None:
        if target is None:
            raise typer.BadParameter("needs --target (an in-process server is this process)", param_hint="--server-pid")
        if read_proc_cpu(server_pid) is None:
            raise typer.BadParameter(f"no readable /proc/{server_pid}/stat", param_hint="--server-pid")
    if flood_streams and flood_speed <= 0:
        raise typer.BadParameter("give the flood's pace, e.g. --flood-speed 20", param_hint="--flood-speed")
    if vad_threshold is not None and not 0 < vad_threshold < 1:
        raise typer.BadParameter("must be in (0, 1)", param_hint="--vad-threshold")
    if target is None and model.resolve() == TEST_MODEL and not (model / "config.json").is_file():
        from translate_svc.model.testing.checkpoint import build_test_checkpoint

        logger.info("building the test checkpoint in %s", model)
        build_test_checkpoint(model)
    opts = RunOptions(
        streams=streams,
        model=model,
        device=device,
        dtype=dtype,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        speed=speed,
        stagger_s=stagger_s,
        chunk_ms=chunk_ms,
        saturation_chunk_ms=saturation_chunk_ms,
        files=csv(files),
        shift_s=shift_s,
        targets=csv(to),
        speech=speech,
        configs=("target",) if target is not None else chosen,
        slo_ms=slo_ms,
        behind_s=behind_s,
        timeout_s=timeout_s,
        cpu_threads=cpu_threads,
        forced_tokens_per_s=forced_tokens_per_s,
        forced_units_per_s=forced_units_per_s,
        target=target,
        server_pid=server_pid,
        encoding=encoding,
        interim_ms=interim_ms,
        flood_streams=flood_streams,
        flood_speed=flood_speed,
        vad_threshold=vad_threshold,
        vad_min_speech_ms=vad_min_speech_ms,
        vad_eagerness=vad_eagerness,
        vad_eager_threshold=vad_eager_threshold,
        warmup=warmup,
        stream_s=stream_s,
        saturation=saturation,
    )
    if target is None:
        try:
            build_settings(opts, max_batch_size)  # fail before loading anything
        except ValidationError as e:
            err.print(f"invalid settings: {e}")
            raise typer.Exit(2) from e
    t0 = time.perf_counter()
    doc = asyncio.run(run_all(opts))
    doc["wall_s"] = time.perf_counter() - t0
    render(doc)
    console.print(f"benchmark wall time {doc['wall_s']:.0f} s")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
        logger.info("wrote %s", json_path)
