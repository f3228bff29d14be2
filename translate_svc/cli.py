"""translate-svc: serve, translate, stream, languages, make-test-model, download-model."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from google.protobuf import json_format
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
T = TypeVar("T")
console = Console(width=None if sys.stdout.isatty() else 150)  # logs and CI: no 80-column squeeze

NOISE_WARNING = "[bold yellow]test model (random weights): every text and sound below is noise[/]"


def _targets(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


@app.command()
def serve(
    model: Annotated[Path | None, typer.Option(help="model directory (default: settings / model_cache)")] = None,
    host: Annotated[
        str | None, typer.Option(help="listen address (default 127.0.0.1: this machine only; 0.0.0.0: the network)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="0 picks a free port")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    dtype: Annotated[str | None, typer.Option(help="auto, float32, float16 or bfloat16")] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="segments per model batch")] = None,
    max_wait_ms: Annotated[float | None, typer.Option(help="longest wait to fill a batch")] = None,
    log_level: Annotated[str | None, typer.Option()] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate (chain): serve TLS (with --tls-key)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="PEM CA: require client certificates signed by it (mTLS)")
    ] = None,
    health_port: Annotated[
        int | None, typer.Option(help="also serve grpc.health.v1 (only) in plaintext on this port, for probes")
    ] = None,
    tokens_file: Annotated[
        Path | None, typer.Option(help="require bearer tokens from this file (docs/security.md)")
    ] = None,
) -> None:
    """Run the gRPC server until SIGTERM/SIGINT (then drain)."""
    from pydantic import ValidationError

    from translate_svc import logging_setup
    from translate_svc.errors import ModelNotFound
    from translate_svc.model.loading import validate_model_dir
    from translate_svc.settings import Settings

    try:
        settings = Settings()
        over = settings.model_dump()
        for section, key, val in (
            ("model", "path", model), ("model", "device", device), ("model", "dtype", dtype),
            ("server", "host", host), ("server", "port", port),
            ("engine", "max_batch_size", max_batch_size), ("engine", "max_wait_ms", max_wait_ms),
            ("server", "tls_cert_file", tls_cert), ("server", "tls_key_file", tls_key),
            ("server", "tls_client_ca_file", tls_client_ca), ("server", "health_port", health_port),
            ("auth", "tokens_file", tokens_file),
        ):  # fmt: skip
            if val is not None:
                over[section][key] = val
        if log_level:
            over["log_level"] = log_level
        settings = Settings.model_validate(over)
    except ValidationError as e:
        console.print(f"[red]invalid settings:[/] {e}")
        raise typer.Exit(2) from e
    logging_setup.configure(settings.log_level)
    try:
        validate_model_dir(settings.model.path)
    except ModelNotFound as e:
        console.print(f"[red]cannot start:[/] {e}")
        raise typer.Exit(2) from e

    async def main() -> None:
        from translate_svc.app import build
        from translate_svc.transport.auth import TokenFileError
        from translate_svc.transport.server import TranslateServer
        from translate_svc.transport.tls import TlsConfigError

        try:
            server = TranslateServer(build(settings))
        except (TlsConfigError, TokenFileError) as e:
            from rich.markup import escape

            console.print(f"[red]cannot start:[/] {escape(str(e))}", soft_wrap=True)
            raise typer.Exit(2) from e
        await server.start()
        if server.app.engine.card.info.is_test_model:
            console.print(NOISE_WARNING)
        print(f"translate-svc {server.describe()}", flush=True)
        print(f"translate-svc serving on port {server.port}", flush=True)
        await server.serve_until_signal()

    asyncio.run(main())


@app.command()
def translate(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="WAV, FLAC, OGG or MP3")],
    to: Annotated[str, typer.Option("--to", help="target languages, comma-separated: spa,fra")],
    source: Annotated[str, typer.Option("--from", help="source language (enables the transcript)")] = "",
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out"),
    server: Annotated[str, typer.Option(help="HOST:PORT")] = "localhost:50051",
    speech: Annotated[bool, typer.Option(help="ask for translated speech")] = True,
) -> None:
    """Translate a file with one Translate call; write one WAV per target and result.json."""
    from translate_svc import client
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    async def main():  # type: ignore[no-untyped-def]
        async with client.channel(server) as ch:
            return await client.translate_file(pb_grpc.TranslatorStub(ch), file, _targets(to), source, speech)

    resp = _call(main)
    out.mkdir(parents=True, exist_ok=True)
    if resp.model.is_test_model:
        console.print(NOISE_WARNING)
    table = Table(title=f"{file.name}: {len(resp.segments)} segments, {resp.audio_duration_ms} ms ({resp.model.name})")
    for col in ("#", "span (ms)", "transcript", "lang", "translation", "speech (ms)", "model ms", "status"):
        table.add_column(col)
    for seg in resp.segments:
        for i, tr in enumerate(seg.translations or [None]):
            table.add_row(
                str(seg.segment_id) if i == 0 else "",
                f"{seg.start_ms}-{seg.end_ms}" if i == 0 else "",
                seg.transcript.text if i == 0 else "",
                tr.target_language if tr else "",
                tr.text if tr else "",
                str(tr.audio.duration_ms) if tr and tr.HasField("audio") else "",
                f"{seg.timing.model_ms:.0f}" if i == 0 else "",
                "OK" if seg.status.code == 0 else f"{seg.status.code}: {seg.status.message}",
            )
    console.print(table)
    for lang in _targets(to):
        parts = [
            t.audio for s in resp.segments for t in s.translations if t.target_language == lang and t.audio.content
        ]
        if parts:
            wav = out / f"{file.stem}.{lang}.wav"
            client.write_wav(wav, parts)
            console.print(f"wrote {wav}")
    result = json_format.MessageToDict(resp, preserving_proto_field_name=True)
    for seg in result.get("segments", []):  # keep result.json readable: audio goes to the WAVs
        for tr in seg.get("translations", []):
            tr.get("audio", {}).pop("content", None)
    (out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {out / 'result.json'}")


@app.command()
def stream(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    to: Annotated[str, typer.Option("--to", help="target languages, comma-separated")],
    source: Annotated[str, typer.Option("--from", help="source language (enables the transcript)")] = "",
    server: Annotated[str, typer.Option(help="HOST:PORT")] = "localhost:50051",
    realtime: Annotated[bool, typer.Option(help="pace the audio at real time")] = False,
    chunk_ms: Annotated[int, typer.Option(help="audio per message")] = 100,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("out"),
) -> None:
    """Send a file as live audio; print events and results as they arrive, with latencies."""
    from translate_svc import client
    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    pcm = client.load_pcm16k(file)
    latencies: list[float] = []

    def show(now: float, r: pb.StreamingTranslateResponse) -> None:
        kind = r.WhichOneof("response")
        if kind == "started":
            note = " [yellow](test model: output is noise)[/]" if r.started.model.is_test_model else ""
            console.print(f"[dim]{now * 1000:8.0f} ms[/] started session {r.started.session_id}{note}")
        elif kind == "speech_event":
            name = pb.SpeechEvent.Type.Name(r.speech_event.type)
            console.print(f"[dim]{now * 1000:8.0f} ms[/] {name} at {r.speech_event.offset_ms} ms")
        elif kind == "segment":
            s = r.segment
            # audio of the segment's end was sent at end_ms (real time), so latency = arrival - end
            lat = now * 1000 - s.end_ms if realtime else float("nan")
            if realtime:
                latencies.append(lat)
            texts = "; ".join(f"{t.target_language}: {t.text!r}" for t in s.translations)
            status = "" if s.status.code == 0 else f" [red]status {s.status.code}: {s.status.message}[/]"
            console.print(
                f"[dim]{now * 1000:8.0f} ms[/] segment {s.segment_id} [{s.start_ms}-{s.end_ms}] "
                f"latency {lat:.0f} ms | {s.transcript.text!r} -> {texts}{status}"
            )
        elif kind == "ended":
            console.print(f"[dim]{now * 1000:8.0f} ms[/] ended: {r.ended.segments_total} segments")

    async def main():  # type: ignore[no-untyped-def]
        async with client.channel(server) as ch:
            stub = pb_grpc.TranslatorStub(ch)
            return await client.stream_pcm(stub, pcm, _targets(to), source, chunk_ms, realtime, on_response=show)

    trace = _call(main)
    if latencies:
        qs = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        console.print(
            f"end-of-segment -> result latency over {len(latencies)} segments: "
            f"p50 {statistics.median(latencies):.0f} ms, p95 {qs[94]:.0f} ms, max {max(latencies):.0f} ms"
        )
    out.mkdir(parents=True, exist_ok=True)
    for lang in _targets(to):
        parts = [
            t.audio for s in trace.segments for t in s.translations if t.target_language == lang and t.audio.content
        ]
        if parts:
            client.write_wav(out / f"{file.stem}.{lang}.stream.wav", parts)
            console.print(f"wrote {out / f'{file.stem}.{lang}.stream.wav'}")


@app.command()
def languages(server: Annotated[str, typer.Option(help="HOST:PORT")] = "localhost:50051") -> None:
    """List the languages of the model the server has loaded."""
    from translate_svc import client
    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    async def main():  # type: ignore[no-untyped-def]
        async with client.channel(server) as ch:
            return await pb_grpc.TranslatorStub(ch).ListLanguages(pb.ListLanguagesRequest(), timeout=30)

    resp = _call(main)
    table = Table(title=f"{resp.model.name} ({resp.model.revision})")
    for col in ("code", "name", "speech in", "text out", "speech out"):
        table.add_column(col)
    for lang in resp.languages:
        yes = {True: "yes", False: ""}
        table.add_row(lang.code, lang.name, yes[lang.speech_input], yes[lang.text_output], yes[lang.speech_output])
    console.print(table)


@app.command("make-test-model")
def make_test_model(
    directory: Annotated[Path, typer.Argument(help="where to write the checkpoint")],
    seed: Annotated[int, typer.Option()] = 0,
    full_size: Annotated[
        bool, typer.Option(help="real model dimensions (~2.3 B params, bf16) for GPU capacity benchmarks")
    ] = False,
) -> None:
    """Build a tiny random-weight SeamlessM4T v2 checkpoint (real architecture; output is noise)."""
    from translate_svc.model.test_checkpoint import build_test_checkpoint

    build_test_checkpoint(directory, seed=seed, full_size=full_size)
    console.print(f"wrote a test checkpoint to {directory} [yellow](random weights: its output is noise)[/]")


@app.command("download-model")
def download_model(
    directory: Annotated[Path, typer.Option("--dir", help="target directory")] = Path(
        "model_cache/seamless-m4t-v2-large"
    ),
    revision: Annotated[str, typer.Option(help="branch, tag or commit")] = "main",
) -> None:
    """Fetch facebook/seamless-m4t-v2-large (safetensors only) — needs internet access."""
    from huggingface_hub import HfApi, snapshot_download

    from translate_svc.model.loading import DOWNLOAD_MARKER, DOWNLOAD_PATTERNS, HF_REPO_ID, validate_model_dir

    console.print(f"downloading {HF_REPO_ID}@{revision} to {directory} (about 10 GB; licence CC-BY-NC-4.0)")
    commit = HfApi().model_info(HF_REPO_ID, revision=revision).sha or revision
    snapshot_download(HF_REPO_ID, revision=commit, local_dir=directory, allow_patterns=list(DOWNLOAD_PATTERNS))
    (directory / DOWNLOAD_MARKER).write_text(json.dumps({"repo_id": HF_REPO_ID, "revision": commit}) + "\n")
    validate_model_dir(directory)
    console.print(f"done: {directory} holds {HF_REPO_ID} at {commit}")


def _call(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    import grpc

    try:
        return asyncio.run(main())
    except grpc.aio.AioRpcError as e:
        console.print(f"[red]{e.code().name}:[/] {e.details()}")
        sys.exit(1)


if __name__ == "__main__":
    app()
