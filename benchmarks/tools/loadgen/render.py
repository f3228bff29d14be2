"""The report for people: a run's document as one table (a column per config, ON / OFF ratios),
the test model's caveat first, and the errors each phase saw."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from benchmarks.tools import report

console = Console(width=None if sys.stdout.isatty() else 132)  # piped: wide enough for one line a row


def fmt_failures(failures: dict[str, int] | None) -> str:
    return ", ".join(f"{code} x{n}" for code, n in (failures or {}).items()) or "none"


def num(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def p50_p95_max(s: dict[str, Any] | None, *keys: str) -> str:
    """``p50 / p95 / max`` of a summary dict."""
    return "-" if s is None else " / ".join(num(s.get(k)) for k in keys)


def render(doc: dict[str, Any]) -> None:
    model, machine, cfg = doc["model"], doc["machine"], doc["config"]
    results = doc["results"]
    if model["caveat"]:
        console.print(Panel(model["caveat"], title="[bold yellow]TEST MODEL[/]", border_style="yellow"))
    if cfg.get("target"):
        where = f"external server {cfg['target']}" + (f" (pid {cfg['server_pid']})" if cfg.get("server_pid") else "")
        about = f"model [bold]{model['name']}[/] ({model['revision']}) on {where}"
    else:
        about = (
            f"model [bold]{model['name']}[/] ({model['revision']}, {model['parameters'] / 1e6:,.1f} M parameters) on "
            f"{model['device']} {model['dtype']} ({model['device_name']}); torch {machine['torch']} "
            f"({model['torch_threads']} threads)"
        )
    console.print(
        f"{about}; {machine['cpus_usable']} CPUs; git {doc['git']['commit'][:10]}"
        f"{' (dirty tree)' if doc['git']['dirty'] else ''}; {cfg['streams']} streams of {', '.join(cfg['files'])} "
        f"-> {','.join(cfg['targets'])}, speech {'on' if cfg['speech'] else 'off'}, {cfg.get('encoding', 'linear16')} "
        f"in {cfg['chunk_ms']} ms messages, {cfg['speed']:g}x real time, stagger {cfg['stagger_s']:g} s"
        + (f", captions every {cfg['interim_ms']} ms" if cfg.get("interim_ms") else "")
        + (f", VAD threshold {cfg['vad_threshold']:g}" if cfg.get("vad_threshold") is not None else "")
        + (f", eagerness {cfg['vad_eagerness']}" if cfg.get("vad_eagerness") else "")
        + (f", eager end at {cfg['vad_eager_threshold']:g}" if cfg.get("vad_eager_threshold") else "")
        + (f", {cfg['flood_streams']} flood streams at {cfg['flood_speed']:g}x" if cfg.get("flood_streams") else "")
    )
    names = list(results)
    table = Table(title=f"translate_svc load test: {cfg['streams']} streams", show_lines=False)
    table.add_column("metric")
    for n in names:
        r = results[n]
        if r["max_batch_size"] is None:
            table.add_column(f"{n}\n({r.get('target', 'external')})")
        else:
            table.add_column(f"{n.replace('_', ' ')}\n(max batch {r['max_batch_size']}, wait {r['max_wait_ms']:g} ms)")
    ratios = {row["path"]: row for row in doc.get("ratios", [])}
    if ratios:
        table.add_column("ON / OFF")

    def row(
        label: str, path: tuple[str, ...], fmt: Callable[[Any], str], end_section: bool = False, batch: bool = False
    ) -> None:
        cells = []
        for n in names:
            if batch and report.lookup(results[n], (path[0], "batches")) is None:
                cells.append("not measured")
                continue
            value = report.lookup(results[n], path)
            cells.append("-" if value is None and path[-1] in ("cpu", "flood", "captions") else fmt(value))
        if ratios:
            rr = ratios.get(".".join(path))
            cells.append("" if rr is None else num(rr["ratio"], 2) + "x")
        table.add_row(label, *cells, end_section=end_section)

    def section(title: str) -> None:
        table.add_row(f"[bold]{title}[/]", *[""] * (len(table.columns) - 1))

    def has(*path: str) -> bool:
        return any(report.lookup(results[n], path) is not None for n in names)

    ms = lambda x: num(x)  # noqa: E731
    section("real-time phase")
    row("segments (failed)", ("realtime",), lambda r: f"{r['segments']} ({r['failed_segments']})")
    row(
        "segments expected / received / lost",
        ("realtime",),
        lambda r: f"{r['segments_expected']} / {r['segments_received']} / {r['segments_lost']}",
    )
    row("latency p50 (ms)", ("realtime", "latency_ms", "p50"), ms)
    row("latency p95 (ms)", ("realtime", "latency_ms", "p95"), ms)
    row("latency p99 (ms)", ("realtime", "latency_ms", "p99"), ms)
    row("latency max (ms)", ("realtime", "latency_ms", "max"), ms)
    row("first translated audio p95 (ms)", ("realtime", "first_audio_latency_ms", "p95"), ms)
    row(
        "server closed->ready p50/p95 (ms)",
        ("realtime", "server_total_ms"),
        lambda s: f"{ms(s['p50'])} / {ms(s['p95'])}",
    )
    row(
        "  of it, queue p50/p95 (ms)",
        ("realtime", "server_queue_ms"),
        lambda s: f"{ms(s['p50'])} / {ms(s['p95'])}",
    )
    row(
        "  of it, in the model p50/p95 (ms)",
        ("realtime", "server_model_ms"),
        lambda s: f"{ms(s['p50'])} / {ms(s['p95'])}",
    )
    row(
        "VAD wait (end_ms -> closed) p50/p95 (ms)",
        ("realtime", "vad_wait_ms"),
        lambda s: f"{ms(s['p50'])} / {ms(s['p95'])}",
    )
    if cfg.get("interim_ms") or any(
        (report.lookup(results[n], ("realtime", "captions", "interims")) or 0) > 0 for n in names
    ):
        row("captions: interims received", ("realtime", "captions", "interims"), lambda x: f"{x:,}")
        row(
            "captions: segments with one / all segments",
            ("realtime",),
            lambda r: f"{r['captions']['segments_with_caption']} / {r['segments']}",
        )
        row(
            "first caption p50/p95/max (ms)",
            ("realtime", "captions", "first_caption_latency_ms"),
            lambda s: p50_p95_max(s, "p50", "p95", "max"),
        )
        row(
            "caption latency (end_ms -> interim) p50/p95",
            ("realtime", "captions", "interim_latency_ms"),
            lambda s: p50_p95_max(s, "p50", "p95"),
        )
        row("interims after their final (must be 0)", ("realtime", "captions", "interims_after_final"), str)
    row("throughput (audio s / s)", ("realtime", "throughput"), lambda x: num(x, 2))
    row("failed segments by status", ("realtime", "segment_failures"), fmt_failures)
    row("failed streams by status", ("realtime", "stream_failures"), fmt_failures)
    row("streams behind / failed", ("realtime",), lambda r: f"{r['streams_behind']} / {r['streams_failed']}")
    row("max client send lag (ms)", ("realtime", "max_send_lag_ms"), ms)
    row("audio messages sent (all streams)", ("realtime", "audio_messages"), lambda x: f"{x:,}")
    if has("realtime", "cpu", "server"):
        row(
            "server cores: phase / steady",
            ("realtime", "cpu", "server"),
            lambda c: f"{num(c['phase']['cores'], 2)} / {num(c['steady']['cores'], 2)}",
        )
        row(
            "server CPU µs per message: phase / steady",
            ("realtime", "cpu", "server"),
            lambda c: f"{num(c['phase']['cpu_us_per_message'])} / {num(c['steady']['cpu_us_per_message'])}",
        )
        row(
            "server threads (CPU s)",
            ("realtime", "cpu", "server_threads_s"),
            lambda t: ", ".join(f"{k} {v:.1f}" for k, v in list((t or {}).items())[:4]) or "-",
        )
    row(
        "client cores: phase / steady" if cfg.get("target") else "this process's cores (server + client)",
        ("realtime", "cpu", "client"),
        lambda c: f"{num(c['phase']['cores'], 2)} / {num(c['steady']['cores'], 2)}",
    )
    row(
        "other processes' CPU share",
        ("realtime", "foreign_cpu"),
        lambda f: pct(f["share"]) + (" (server included)" if f.get("includes_server") else ""),
    )
    row(
        f"streams sustained (p95 <= {cfg['slo_ms']:g} ms)",
        ("realtime",),
        lambda r: (
            f"[green]{r['streams_sustained']} ✓[/]" if r["streams_sustained"] else f"[red]0 ✗ (of {r['streams']})[/]"
        ),
    )
    row("batch size: mean", ("realtime", "batches", "mean_size"), lambda x: num(x, 2), batch=True)
    row("batch size: histogram", ("realtime", "batches", "size_histogram"), report.format_histogram, batch=True)
    row(
        "queue wait p50/p95 (ms)",
        ("realtime", "batches", "queue_ms"),
        lambda q: f"{ms(q['p50'])} / {ms(q['p95'])}",
        batch=True,
    )
    row(
        "model ms per batch p50/mean",
        ("realtime", "batches", "model_ms_per_batch"),
        lambda s: f"{ms(s['p50'])} / {ms(s['mean'])}",
        batch=True,
    )
    row(
        "model ms per segment",
        ("realtime", "batches", "model_ms_per_segment"),
        lambda x: num(x, 1),
        not has("realtime", "flood") and not has("saturation"),
        batch=True,
    )
    if has("realtime", "flood"):
        section(f"flood streams ({cfg['flood_streams']} at {cfg['flood_speed']:g}x, beside the real-time phase)")
        row("ended with", ("realtime", "flood", "ended_with"), fmt_failures)
        row(
            "audio s sent / wall s = x real time",
            ("realtime", "flood"),
            lambda f: f"{num(f['audio_s'], 1)} / {num(f['wall_s'], 1)} = {num(f['throughput'], 1)}x",
        )
        row(
            "segments expected / received / lost",
            ("realtime", "flood"),
            lambda f: f"{f['segments_expected']} / {f['segments_received']} / {f['segments_lost']}",
        )
        row("failed segments by status", ("realtime", "flood", "segment_failures"), fmt_failures)
        row(
            "latency from actual send p50/p95 (ms)",
            ("realtime", "flood", "latency_ms"),
            lambda s: p50_p95_max(s, "p50", "p95"),
            not has("saturation"),
        )
    if has("saturation"):
        section("saturation phase")
        row("segments (failed)", ("saturation",), lambda r: f"{r['segments']} ({r['failed_segments']})")
        row("audio s / wall s", ("saturation",), lambda r: f"{num(r['audio_s'], 1)} / {num(r['wall_s'], 1)}")
        row("throughput (audio s / s)", ("saturation", "throughput"), lambda x: num(x, 2))
        row("failed segments by status", ("saturation", "segment_failures"), fmt_failures)
        row("failed streams by status", ("saturation", "stream_failures"), fmt_failures)
        if has("saturation", "cpu", "server"):
            row("server cores", ("saturation", "cpu", "server", "phase", "cores"), lambda x: num(x, 2))
        row("batch size: mean", ("saturation", "batches", "mean_size"), lambda x: num(x, 2), batch=True)
        row(
            "batch size: histogram",
            ("saturation", "batches", "size_histogram"),
            report.format_histogram,
            batch=True,
        )
        row(
            "model ms per batch p50/mean",
            ("saturation", "batches", "model_ms_per_batch"),
            lambda s: f"{ms(s['p50'])} / {ms(s['mean'])}",
            batch=True,
        )
        row("model ms per segment", ("saturation", "batches", "model_ms_per_segment"), lambda x: num(x, 1), batch=True)
        row("model busy (s of wall)", ("saturation", "batches", "model_busy_s"), lambda x: num(x, 1), batch=True)
        row(
            "other processes' CPU share",
            ("saturation", "foreign_cpu"),
            lambda f: pct(f["share"]) + (" (server included)" if f.get("includes_server") else ""),
        )
    console.print(table)
    for n in names:
        for phase in ("realtime", "saturation"):
            for err in (results[n][phase] or {}).get("errors", []):
                console.print(f"[red]{n} {phase}: {err}[/]")
        flood = results[n]["realtime"].get("flood")
        for err in (flood or {}).get("errors", []):
            console.print(f"[yellow]{n} flood: {err}[/]")
