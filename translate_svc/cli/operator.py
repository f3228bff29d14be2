"""The operator commands: ``serve``, ``make-test-model``, ``download-model``, ``make-test-lid-model``,
``download-lid-model``.

They reach the server side through ``translate_svc.app`` (and ``transport/`` for ``serve``), imported
when a command runs: loading this module (``--help``) loads neither torch nor the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from translate_svc.cli import ready_file as ready
from translate_svc.client_cli.common import NOISE_WARNING, console
from translate_svc.client_cli.flags import flag_groups

if TYPE_CHECKING:
    from translate_svc.settings import Settings


@dataclass(frozen=True)
class Setting:
    """Marks a ``serve`` flag: it overrides the setting at ``path`` (section, field) when given."""

    path: tuple[str, ...]


def _at(*path: str) -> Setting:
    return Setting(path)


@dataclass(frozen=True)
class ServeFlags:
    """``serve``'s flags; each overrides one setting (environment TRANSLATE_SVC_*, settings.py)."""

    model: Annotated[
        Path | None, typer.Option(help="model directory (default: settings / model_cache)"), _at("model", "path")
    ] = None
    host: Annotated[
        str | None,
        typer.Option(help="listen address (default 127.0.0.1: this machine only; 0.0.0.0: the network)"),
        _at("server", "host"),
    ] = None
    port: Annotated[int | None, typer.Option(help="0 picks a free port"), _at("server", "port")] = None
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda"), _at("model", "device")] = None
    dtype: Annotated[str | None, typer.Option(help="auto, float32, float16 or bfloat16"), _at("model", "dtype")] = None
    max_batch_size: Annotated[
        int | None, typer.Option(help="segments per model batch"), _at("engine", "max_batch_size")
    ] = None
    max_wait_ms: Annotated[
        float | None,
        typer.Option(help="longest wait to fill a batch (default: 10 with whole batches, 0 with the steps core)"),
        _at("engine", "max_wait_ms"),
    ] = None
    workers: Annotated[
        str | None,
        typer.Option(
            help="front-end worker processes around one engine process (1: one process for all; auto: per CPU)"
        ),
        _at("server", "workers"),
    ] = None
    log_level: Annotated[
        str | None,
        typer.Option(help="DEBUG, INFO (default), WARNING or ERROR"),
        _at("log_level"),
    ] = None
    log_format: Annotated[
        str | None,
        typer.Option(help="text (default) or json: one JSON object per log line (TRANSLATE_SVC_LOG_FORMAT)"),
        _at("log_format"),
    ] = None
    tls_cert: Annotated[
        Path | None,
        typer.Option(help="PEM certificate (chain): serve TLS (with --tls-key)"),
        _at("server", "tls_cert_file"),
    ] = None
    tls_key: Annotated[
        Path | None, typer.Option(help="PEM private key of --tls-cert"), _at("server", "tls_key_file")
    ] = None
    tls_client_ca: Annotated[
        Path | None,
        typer.Option(help="PEM CA: require client certificates signed by it (mTLS)"),
        _at("server", "tls_client_ca_file"),
    ] = None
    health_port: Annotated[
        int | None,
        typer.Option(help="also serve grpc.health.v1 (only) in plaintext on this port, for probes"),
        _at("server", "health_port"),
    ] = None
    http_port: Annotated[
        int | None,
        typer.Option(
            help="also serve the HTTP port here: the OpenAI-compatible door (realtime translation and "
            "transcription over WebSocket and WebRTC, client secrets, the audio REST endpoints "
            "/v1/audio/transcriptions and /v1/audio/translations), rooms' listener WebSocket and listen "
            "page, the demo page with --demo-page, and the phone door's WebSockets with --phone"
        ),
        _at("server", "http_port"),
    ] = None
    demo_page: Annotated[
        bool | None,
        typer.Option(
            "--demo-page", help="serve the browser demo page at /demo on --http-port (it mints its own client secrets)"
        ),
        _at("server", "demo_page"),
    ] = None
    riva: Annotated[
        bool | None,
        typer.Option(
            "--riva",
            help="also serve NVIDIA Riva's translation and streaming recognition API on the gRPC port "
            "(docs/riva-compat.md)",
        ),
        _at("server", "riva"),
    ] = None
    mcp: Annotated[
        bool | None,
        typer.Option(
            "--mcp",
            help="serve agents' tools (MCP, streamable HTTP) at /mcp on --http-port (docs/agents.md)",
        ),
        _at("mcp", "enabled"),
    ] = None
    phone: Annotated[
        bool | None,
        typer.Option(
            "--phone",
            help="serve phone calls (Twilio and its cousins, Asterisk chan_websocket) at /v1/phone/<carrier> on "
            "--http-port (docs/telephony.md)",
        ),
        _at("phone", "websocket"),
    ] = None
    audiosocket_port: Annotated[
        int | None,
        typer.Option(help="serve Asterisk AudioSocket calls on this TCP port (no token: keep it private)"),
        _at("phone", "audiosocket_port"),
    ] = None
    audiosocket_host: Annotated[
        str | None,
        typer.Option(
            help="the address --audiosocket-port listens on (default 127.0.0.1: AudioSocket carries no "
            "credentials; beyond loopback, firewall it)"
        ),
        _at("phone", "audiosocket_host"),
    ] = None
    sip_port: Annotated[
        int | None,
        typer.Option(
            help="serve SIP calls over UDP and TCP on this port (callers from sip.allowed_cidrs; docs/telephony.md)"
        ),
        _at("sip", "port"),
    ] = None
    tokens_file: Annotated[
        Path | None,
        typer.Option(help="require bearer tokens from this file (docs/security.md)"),
        _at("auth", "tokens_file"),
    ] = None
    test_translator: Annotated[
        str | None,
        typer.Option(
            metavar="stable",
            help="a test and benchmark device: serve a made-up translator instead of the model (stable: words "
            "from the audio's length, exact commit points for simultaneous mode); its output is not a "
            "translation; needs --model to be the test checkpoint (refused next to real weights)",
        ),
        _at("model", "test_translator"),
    ] = None

    def settings(self) -> Settings:
        """The environment's settings with the flags given on top, validated together (exit 2 if
        invalid): the flags are init values, which pydantic-settings merges over the environment's
        section by section, so a rule between settings sees both (``recordings.dir`` from the
        environment and ``--tokens-file``)."""
        from pydantic import ValidationError

        from translate_svc.settings import Settings
        from translate_svc.settings.webhooks import settings_errors

        given: dict[str, typing.Any] = {}
        for name, hint in typing.get_type_hints(ServeFlags, include_extras=True).items():
            value = getattr(self, name)
            if value is None or value == "":
                continue
            *sections, key = next(m for m in hint.__metadata__ if isinstance(m, Setting)).path
            target = given
            for section in sections:
                target = target.setdefault(section, {})
            target[key] = value
        try:
            return Settings(**given)
        except ValidationError as e:  # without the values given: a webhook secret may be one (security finding H14)
            console.print(f"[red]invalid settings:[/] {escape(settings_errors(e))}")
            raise typer.Exit(2) from None


def _cannot_start(why: str) -> typer.Exit:
    console.print(f"[red]cannot start:[/] {escape(why)}", soft_wrap=True)
    return typer.Exit(2)


ReadyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--ready-file",
        help="once serving (ports bound, model warm), write one JSON object here: port, pid, host, and "
        "health_port, http_port, metrics_port, sip_port, sip_tls_port, audiosocket_port, workers, engine_pid "
        "where they apply; written atomically "
        "(a reader sees no file or all of it), a file already there is removed at start, and serve "
        "removes its own at exit. Scripts wait for this file, never for a log line",
    ),
]


@flag_groups
def serve(flags: ServeFlags, ready_file: ReadyFileOpt = None) -> None:
    """Run the gRPC server until SIGTERM/SIGINT (then drain)."""
    from translate_svc import app, logging_setup
    from translate_svc.errors import ModelNotFound
    from translate_svc.observability import tracing
    from translate_svc.serving import allocator

    if ready_file is not None:  # before anything that can fail: no reader may take an old file for ours
        problem = ready.check_writable(ready_file)
        if problem is not None:
            raise _cannot_start(problem)
        ready.remove(ready_file)
    settings = flags.settings()
    logging_setup.configure(settings.log_level, settings.log_format)
    allocator.fix_mmap_threshold()  # before the model and the streams allocate (serving/allocator.py)
    try:  # an exporter that is not installed fails here, not in a child process
        tracing.config_from_env(os.environ)
    except tracing.TracingConfigError as e:
        raise _cannot_start(str(e)) from e
    problem = app.check_device(settings.model.device)
    if problem is not None:
        raise _cannot_start(problem)
    try:
        app.validate_model_dir(settings.model.path)
    except ModelNotFound as e:
        raise _cannot_start(str(e)) from e
    problem = app.test_translator_problem(settings.model)
    if problem is not None:
        raise _cannot_start(problem)
    workers = settings.server.worker_count()
    if workers >= 2:
        # each child sets up its own tracing
        raise typer.Exit(asyncio.run(_serve_node(settings, workers, ready_file)))
    tracing.setup(os.environ)
    asyncio.run(_serve(settings, ready_file))


async def _serve_node(settings: Settings, workers: int, ready_file: Path | None) -> int:
    """``--workers N``: the supervisor of one engine process and N front-end workers."""
    from translate_svc.serving.ports import StartError
    from translate_svc.serving.supervisor import Supervisor

    def started(node: Supervisor) -> None:
        if node.test_model:
            console.print(f"[bold yellow]{NOISE_WARNING}[/]")
        print(f"translate-svc {node.describe()}", flush=True)
        print(f"translate-svc serving on port {node.port}", flush=True)
        if ready_file is not None:
            assert node.engine is not None
            info = ready.ReadyInfo(
                port=node.port,
                pid=os.getpid(),
                host=settings.server.host,
                health_port=node.health_port,
                http_port=node.http_port,
                metrics_port=node.metrics_port,
                sip_port=node.ports.sip_port,
                sip_tls_port=node.ports.sip_tls_port,
                audiosocket_port=node.ports.audiosocket_port,
                workers=tuple(c.proc.pid for _, c in sorted(node.running.items(), key=lambda kv: int(kv[0][1:]))),
                engine_pid=node.engine.proc.pid,
                cluster_hub=None if node.hub is None else str(node.hub_socket),
            )
            try:
                ready.write(ready_file, info)
            except OSError as e:
                raise StartError(f"--ready-file {ready_file}: {e}") from None

    try:
        return await Supervisor(settings, workers).run(on_started=started)
    except StartError as e:
        raise _cannot_start(str(e)) from None
    finally:
        if ready_file is not None:
            ready.remove(ready_file, pid=os.getpid())


async def _serve(settings: Settings, ready_file: Path | None) -> None:
    from translate_svc.app import build
    from translate_svc.cluster.choose import ClusterConfigError
    from translate_svc.cluster.store import StoreUnavailable
    from translate_svc.glossaries.store import GlossaryConfigError
    from translate_svc.recordings.keys import KeyFileError
    from translate_svc.serving import collector
    from translate_svc.transport.grpc.tls import TlsConfigError
    from translate_svc.transport.host import DoorSetupError, TranslateServer
    from translate_svc.transport.tokens.file import TokenFileError

    try:
        server = TranslateServer(build(settings))
    except (TlsConfigError, TokenFileError, DoorSetupError, ClusterConfigError, KeyFileError, GlossaryConfigError) as e:
        raise _cannot_start(str(e)) from e
    try:
        await server.start()
    except Exception as e:  # a busy port; a model that cannot load; Redis out of reach
        with contextlib.suppress(Exception):
            await server.stop(grace=0)
        where = f"{settings.server.host}:{settings.server.port}"
        if isinstance(e, RuntimeError) and "Failed to bind" in str(e):
            why = f"cannot listen on {where}: the port is in use or not allowed; pick another --port (0: any free one)"
        elif isinstance(e, StoreUnavailable):
            why = e.message
        else:
            why = f"{type(e).__name__}: {e}"
        raise _cannot_start(why) from None
    # warm: what the server holds for good leaves every later collection; before it says ready (the
    # full collection is 100-300 ms of the event loop, which the first callers would wait for)
    collector.freeze()
    if server.app.engine.card.info.is_test_model:
        console.print(f"[bold yellow]{NOISE_WARNING}[/]")
    print(f"translate-svc {server.describe()}", flush=True)
    print(f"translate-svc serving on port {server.port}", flush=True)
    if ready_file is not None:
        ports = server.ports()  # each door's, by their key in the ready file
        info = ready.ReadyInfo(
            port=ports["port"],
            pid=os.getpid(),
            host=settings.server.host,
            health_port=ports.get("health_port"),
            http_port=ports.get("http_port"),
            metrics_port=server.metrics_port,  # the bound one (port 0: the free one picked)
            sip_port=ports.get("sip_port"),
            sip_tls_port=ports.get("sip_tls_port"),
            audiosocket_port=ports.get("audiosocket_port"),
        )
        try:
            ready.write(ready_file, info)
        except OSError as e:
            await server.stop(grace=0)
            raise _cannot_start(f"--ready-file {ready_file}: {e}") from None
    collecting = asyncio.create_task(collector.collect_every(), name="collect-garbage")
    try:
        await server.serve_until_signal()
    finally:
        collecting.cancel()
        if ready_file is not None:
            ready.remove(ready_file, pid=os.getpid())


def make_test_model(
    directory: Annotated[Path, typer.Argument(help="where to write the checkpoint")],
    seed: Annotated[int, typer.Option(help="seed of the random weights")] = 0,
    full_size: Annotated[
        bool, typer.Option(help="real model dimensions (~2.3 B params, bf16) for GPU capacity benchmarks")
    ] = False,
    real_layers: Annotated[
        bool,
        typer.Option(
            help="the real model's layer counts at tiny widths: a decode step's host cost is the full model's"
        ),
    ] = False,
) -> None:
    """Build a tiny random-weight SeamlessM4T v2 checkpoint (real architecture; output is noise)."""
    from translate_svc.app import build_test_checkpoint

    if full_size and real_layers:
        raise typer.BadParameter("--full-size already has the real layer counts: pick one", param_hint="--real-layers")
    build_test_checkpoint(directory, seed=seed, full_size=full_size, real_layers=real_layers)
    console.print(
        f"wrote a test checkpoint to {escape(str(directory))} [yellow](random weights: its output is noise)[/]"
    )


def download_model(
    directory: Annotated[Path, typer.Option("--dir", help="target directory")] = Path(
        "model_cache/seamless-m4t-v2-large"
    ),
    revision: Annotated[str, typer.Option(help="branch, tag or commit")] = "main",
    lid_dir: Annotated[
        Path | None,
        typer.Option(
            "--lid-dir",
            help="also fetch the spoken-language identifier (facebook/mms-lid-126, about 4 GB) into this "
            "directory, as download-lid-model does (language detection, terms without a source language, "
            "transcription without a language)",
        ),
    ] = None,
) -> None:
    """Fetch facebook/seamless-m4t-v2-large (safetensors only) — needs internet access."""
    from translate_svc.app import download_model as download

    def starting(repo: str) -> None:
        console.print(
            f"downloading {repo}@{escape(revision)} to {escape(str(directory))} (about 10 GB; licence CC-BY-NC-4.0)"
        )

    repo, commit = download(directory, revision, on_start=starting)
    console.print(f"done: {escape(str(directory))} holds {repo} at {commit}")
    if lid_dir is not None:
        download_lid_model(lid_dir)


def make_test_lid_model(
    directory: Annotated[Path, typer.Argument(help="where to write the checkpoint")],
    seed: Annotated[int, typer.Option(help="seed of the random weights")] = 0,
    bias: Annotated[
        str | None,
        typer.Option(
            metavar="CODE", help="an ISO 639-3 label (e.g. spa) that always wins: a deliberately biased model"
        ),
    ] = None,
) -> None:
    """Build a tiny random-weight MMS-LID language identifier (real architecture; its choices are noise)."""
    from translate_svc.app import build_lid_test_checkpoint

    try:
        build_lid_test_checkpoint(directory, seed=seed, bias=bias)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--bias") from None
    what = f"{bias} always wins" if bias else "its choices are noise"
    console.print(
        f"wrote a test language identifier to {escape(str(directory))} [yellow](random weights: {escape(what)})[/]"
    )


def download_lid_model(
    directory: Annotated[Path, typer.Option("--dir", help="target directory")] = Path("model_cache/mms-lid-126"),
    repo: Annotated[
        str,
        typer.Option(help="facebook/mms-lid-126 (126 languages); -256, -512, -1024, -2048 and -4017 know more"),
    ] = "facebook/mms-lid-126",
    revision: Annotated[str, typer.Option(help="branch, tag or commit")] = "main",
) -> None:
    """Fetch the MMS-LID spoken-language identifier (safetensors only; about 4 GB) — needs internet access."""
    from translate_svc.app import download_lid_model as download
    from translate_svc.errors import ModelNotFound

    def starting(name: str) -> None:
        console.print(
            f"downloading {escape(name)}@{escape(revision)} to {escape(str(directory))} "
            "(about 4 GB; licence CC-BY-NC-4.0)"
        )

    try:
        name, commit = download(directory, revision, repo, on_start=starting)
    except ModelNotFound as e:
        console.print(f"[red]download incomplete:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"done: {escape(str(directory))} holds {escape(name)} at {commit}")
