"""``translate-svc bench``: size a served instance from outside, with the SDK and the OpenAI door
only (``load/``), so that a load machine needs the client distribution alone: no torch, no server,
no source tree (issues 46 and 57)."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from translate_svc.client_cli.common import CliError, run_client
from translate_svc.client_cli.flags import ConnectionFlags, flag_groups

if TYPE_CHECKING:
    from translate_svc.client_cli.load.capacity import Step, Suggestion
    from translate_svc.client_cli.load.ramp import Plan

HELP = (
    "Measure how many live streams a served instance carries: real speech at real time through each "
    "mode (segment: gRPC StreamingTranslate; simultaneous: the same with simultaneous interpretation; "
    "openai: the OpenAI-compatible realtime door, needs --openai) for each stream count of --ramp, "
    "--seconds of audio per stream. It needs the client distribution only "
    "(pip install 'translate-svc-client[cli]': translate-svc-client bench).\n\n"
    "Per step: the latency of each final (from the moment its last audio was due to be sent to its "
    "arrival, p50/p95/max), the server's queue and model time per segment (its own timing), and with "
    "--metrics the server's CPU cores and most resident memory (from its /metrics).\n\n"
    "Simultaneous mode (and openai, simultaneous by default): the commits, and each commit's lag: "
    "its arrival less the moment the audio up to its source_ms was due to be sent (source_ms: the "
    "stream's audio the server had received when it committed the words, so the audio the commit "
    "covers). It is the time from the server's commit to the client, plus under one 100 ms chunk; a "
    "step's own queue and model time come before source_ms is taken. Steps the server skipped (the "
    "engine or the reader behind: their words come with a later commit) are not on the wire: with "
    "--metrics, the growth of translate_svc_simultaneous_steps_total by outcome over the step, "
    "for every stream on the server (run it alone for the bench's own).\n\n"
    "A step keeps real time when no stream failed, no send was held back over 1 s, and the finals' "
    "p95, and the commits' p95 lag where there were commits, are within --p95-ms. "
    "It suggests max_streams (the largest count kept, every smaller one kept too) and the autoscaler's "
    "target (translate_svc_streams_active per pod: max_streams less --headroom). --json writes every "
    "figure. Run it from another machine than the server's, or the client's own CPU counts against it."
)


def _ints(value: str, flag: str) -> tuple[int, ...]:
    try:
        got = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise CliError(f"{flag} {value!r}: give stream counts separated by commas, e.g. 1,2,4,8") from None
    if not got or any(n < 1 for n in got):
        raise CliError(f"{flag} {value!r}: give stream counts of 1 or more, e.g. 1,2,4,8")
    return tuple(sorted(set(got)))


def _modes(value: str | None, openai: str | None) -> tuple[Any, ...]:
    from translate_svc.client_cli.load.streams import Mode

    names = value.split(",") if value else ["segment", "simultaneous", *(["openai"] if openai else [])]
    known = {m.value: m for m in Mode}
    modes = []
    for name in (n.strip() for n in names):
        if name not in known:
            raise CliError(f"--modes: unknown mode {name!r} (known: {', '.join(known)})")
        modes.append(known[name])
    if Mode.OPENAI in modes and not openai:
        raise CliError("--modes openai needs --openai http://HOST:HTTP_PORT (the server's --http-port)")
    return tuple(dict.fromkeys(modes))


@flag_groups
def bench(
    audio: Annotated[
        Path | None, typer.Argument(metavar="AUDIO", help="speech file (default: the English sample shipped)")
    ] = None,
    ramp: Annotated[str, typer.Option("--ramp", help="stream counts to try, in turn")] = "1,2,4,8",
    modes: Annotated[
        str | None, typer.Option("--modes", help="segment, simultaneous, openai (default: all it can reach)")
    ] = None,
    seconds: Annotated[float, typer.Option("--seconds", help="audio per stream and step (looped)")] = 30.0,
    p95_ms: Annotated[
        float, typer.Option("--p95-ms", help="the p95 latency (finals; commit lag) a kept step stays within")
    ] = 2500.0,
    headroom: Annotated[float, typer.Option("--headroom", help="share of max_streams the autoscaler keeps")] = 0.2,
    target: Annotated[str, typer.Option("--target", help="target language of the gRPC modes")] = "spa",
    openai_language: Annotated[
        str, typer.Option("--openai-language", help="target language of the openai mode")
    ] = "es",
    openai: Annotated[
        str | None, typer.Option("--openai", help="the OpenAI door's base URL, http://HOST:HTTP_PORT")
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", help="the server's /metrics URL, for its CPU, memory and skipped steps"),
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write every figure as JSON to FILE")] = None,
    *,
    conn: ConnectionFlags,
) -> None:
    def run() -> int:
        import asyncio

        from translate_svc.client_cli.load.clips import load_clip, sample_path
        from translate_svc.client_cli.load.ramp import Plan

        counts = _ints(ramp, "--ramp")
        chosen = _modes(modes, openai)
        if seconds <= 0 or not 0.0 <= headroom < 1.0 or p95_ms <= 0:
            raise CliError("--seconds and --p95-ms must be positive, --headroom in [0, 1)")
        path = audio if audio is not None else sample_path()
        if not path.is_file():
            raise CliError(f"AUDIO {path}: no such file")
        for flag, url in (("--metrics", metrics), ("--openai", openai)):
            if url is not None and not url.startswith(("http://", "https://")):
                raise CliError(f"{flag} {url[:200]!r}: give an http:// or https:// URL")
        connection = conn.connection(max(60.0, seconds * 4))
        plan = Plan(
            clip=load_clip(path),
            modes=chosen,
            ramp=counts,
            seconds=seconds,
            target=target,
            openai_language=openai_language,
            p95_ms=p95_ms,
            headroom=headroom,
            metrics_url=metrics,
            openai_url=openai,
            token=connection.token,
        )
        return asyncio.run(_run(plan, connection.client(), json_out))

    run_client(run, conn.server)


async def _run(plan: Plan, client: Any, json_out: Path | None) -> int:
    import asyncio

    from rich.console import Console

    from translate_svc.client_cli.load.capacity import suggest
    from translate_svc.client_cli.load.ramp import run_ramp

    console = Console(stderr=True)
    try:
        steps = await run_ramp(
            plan,
            client,
            lambda s: console.print(
                f"{s.mode} x{s.streams}: {s.segments} segments, p95 {s.p95_ms} ms"
                + (f"; {s.commits} commits, lag p95 {s.commit_lag_p95_ms} ms" if s.commits else "")
            ),
        )
    finally:
        await client.close()
    suggestions = [suggest([s for s in steps if s.mode == m.value], plan.headroom) for m in plan.modes]
    _table(steps, suggestions, plan)
    if json_out is not None:
        doc = _document(plan, steps, suggestions)
        await asyncio.to_thread(json_out.write_text, json.dumps(doc, indent=2) + "\n")
    return 0


def _document(plan: Plan, steps: list[Step], suggestions: list[Suggestion]) -> dict[str, Any]:
    return {
        "audio": plan.clip.name,
        "seconds": plan.seconds,
        "ramp": list(plan.ramp),
        "modes": [m.value for m in plan.modes],
        "p95_target_ms": plan.p95_ms,
        "headroom": plan.headroom,
        "steps": [dataclasses.asdict(s) for s in steps],
        "suggestions": [dataclasses.asdict(s) for s in suggestions],
    }


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.0f}"


def _commit_lag(s: Step) -> str:
    if s.commit_lag_p50_ms is None:
        return "-"
    return f"{_fmt(s.commit_lag_p50_ms)} / {_fmt(s.commit_lag_p95_ms)}"


def _skipped(s: Step) -> str:
    run, skipped = s.server.steps_run, s.server.steps_skipped
    if s.mode == "segment" or run is None or skipped is None:
        return "-"
    return f"{skipped} of {run + skipped}"


def _table(steps: list[Step], suggestions: list[Suggestion], plan: Plan) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"capacity: {plan.clip.name}, {plan.seconds:g} s per stream, p95 target {plan.p95_ms:g} ms",
        caption="commit lag: p50 / p95; steps skipped: of the steps due, on the whole server (its /metrics)",
    )
    for name in ("mode", "streams", "real time", "segments", "p50 ms", "p95 ms", "max ms", "queue ms", "model ms"):
        table.add_column(name, justify="left" if name == "mode" else "right")
    table.add_column("commits", justify="right")
    table.add_column("commit lag ms", justify="right")  # p50 / p95
    table.add_column("steps skipped", justify="right")
    table.add_column("CPU cores", justify="right")
    table.add_column("RSS MB", justify="right")
    for s in steps:
        cores = "-" if s.server.cpu_cores is None else f"{s.server.cpu_cores:.2f}"
        table.add_row(
            s.mode,
            str(s.streams),
            "yes" if s.kept else "NO",
            f"{s.segments}" + (f" ({s.failed_segments} failed)" if s.failed_segments else ""),
            _fmt(s.p50_ms),
            _fmt(s.p95_ms),
            _fmt(s.max_ms),
            _fmt(s.queue_p50_ms),
            _fmt(s.model_p50_ms),
            "-" if s.mode == "segment" else str(s.commits),
            _commit_lag(s),
            _skipped(s),
            cores,
            _fmt(s.server.rss_max_mb),
        )
    out = Console(width=None if sys.stdout.isatty() else 180)
    out.print(table)
    for g in suggestions:
        if g.max_streams is None:
            out.print(f"{g.mode}: not even {plan.ramp[0]} stream(s) kept real time within {plan.p95_ms:g} ms")
        else:
            out.print(
                f"{g.mode}: max_streams {g.max_streams} (limits.max_streams), autoscaler target "
                f"{g.autoscaler_target} (translate_svc_streams_active per pod)"
            )
