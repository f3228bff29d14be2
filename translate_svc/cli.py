"""translate-svc: serve, translate, stream, languages, make-test-model, download-model.

The client commands (translate, stream, languages) speak to a server through the SDK
(translate_svc.client). Connection: --server (env TRANSLATE_SVC_ADDRESS), TLS with --tls /
--tls-ca / --tls-cert / --tls-key (env TRANSLATE_SVC_TLS_CA, _TLS_CERT, _TLS_KEY), a bearer token
with --token or --token-file (env TRANSLATE_SVC_TOKEN, TRANSLATE_SVC_TOKEN_FILE).

Exit codes of the client commands: 0 done; 1 the server failed the call or some segments (outputs
are still written); 2 usage or input error (a bad flag, an unreadable, undecodable or empty input,
an unknown language, an output that exists, or a request the server refused as INVALID_ARGUMENT);
3 cannot connect (server unreachable or unavailable, TLS handshake failed); 4 the server refused
the credentials (UNAUTHENTICATED, PERMISSION_DENIED); 130 interrupted (Ctrl-C). Every error is one
line on stderr; set TRANSLATE_SVC_DEBUG=1 for a traceback of an unexpected one.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    import numpy as np
    from rich.progress import Progress

    from translate_svc.client import (
        AsyncTranslateClient,
        Languages,
        ModelInfo,
        Segment,
        StreamEvent,
        TlsOptions,
        TranslateError,
        VadOptions,
    )

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(width=None if sys.stdout.isatty() else 150)  # logs and CI: no 80-column squeeze

NOISE_WARNING = "[bold yellow]test model (random weights): every text and sound below is noise[/]"


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
    if settings.model.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            console.print(
                "[red]cannot start:[/] --device cuda, but CUDA is not available here "
                f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'}); use --device cpu or auto",
                soft_wrap=True,
            )
            raise typer.Exit(2)
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
        try:
            await server.start()
        except Exception as e:  # a busy port; a model that cannot load
            from rich.markup import escape

            with contextlib.suppress(Exception):
                await server.stop(grace=0)
            where = f"{settings.server.host}:{settings.server.port}"
            why = (
                f"cannot listen on {where}: the port is in use or not allowed; pick another --port (0: any free one)"
                if isinstance(e, RuntimeError) and "Failed to bind" in str(e)
                else f"{type(e).__name__}: {e}"
            )
            console.print(f"[red]cannot start:[/] {escape(why)}", soft_wrap=True)
            raise typer.Exit(2) from None
        if server.app.engine.card.info.is_test_model:
            console.print(NOISE_WARNING)
        print(f"translate-svc {server.describe()}", flush=True)
        print(f"translate-svc serving on port {server.port}", flush=True)
        await server.serve_until_signal()

    asyncio.run(main())


# == client commands ==============================================================================
#
# Everything the server or the model says (messages, transcripts, translations) and every name the
# user chose (file names) is printed as rich ``Text`` or through consoles with markup and emoji off:
# ``[/x]`` or ``:smile:`` are shown as they are, never read as markup.

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_CONNECT: Final = 3
EXIT_AUTH: Final = 4
EXIT_INTERRUPTED: Final = 130

#: ``translate --via auto`` sends clips longer than this through StreamingTranslate (real progress)
AUTO_STREAM_S: Final = 30.0
RAW_ENCODINGS: Final = {
    "linear16": "linear16",
    "s16le": "linear16",
    "pcm16": "linear16",
    "float32": "float32",
    "f32le": "float32",
    "mulaw": "mulaw",
    "ulaw": "mulaw",
    "alaw": "alaw",
}
_SAMPLE_BYTES: Final = {"linear16": 2, "float32": 4, "mulaw": 1, "alaw": 1}

_WIDTH = None if sys.stdout.isatty() else 150
out = Console(markup=False, emoji=False, highlight=False, width=_WIDTH)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)


class CliError(Exception):
    """A mistake or failure reported as one line, with the exit code it ends the command with."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _error_line(message: str) -> None:
    from translate_svc.cli_output import one_line

    err.print(Text.assemble(("error: ", "bold red"), one_line(message)), soft_wrap=True)


def _warn(message: str) -> None:
    from translate_svc.cli_output import one_line

    err.print(Text.assemble(("warning: ", "yellow"), one_line(message)), soft_wrap=True)


def _note(message: str, style: str = "dim") -> None:
    err.print(Text(message, style=style), soft_wrap=True)


def _from_status(e: TranslateError, server: str) -> CliError:
    """A failed call -> the one-line message and exit code the CLI documents."""
    import grpc

    from translate_svc.cli_output import one_line
    from translate_svc.client import StreamResumeError

    msg = one_line(e.message) or e.code.name
    if isinstance(e, StreamResumeError):
        return CliError(f"lost the connection to {server} and no server took the stream over: {msg}", EXIT_CONNECT)
    if e.code is grpc.StatusCode.UNAVAILABLE:
        return CliError(f"cannot connect to {server}: {msg}", EXIT_CONNECT)
    if e.code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return CliError(f"{server} refused the credentials ({e.code.name}): {msg}", EXIT_AUTH)
    if e.code is grpc.StatusCode.INVALID_ARGUMENT:
        return CliError(f"the server refused the request: {msg}", EXIT_USAGE)
    if e.code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(f"no answer from {server} in time (raise --timeout): {msg}", EXIT_FAILED)
    return CliError(f"{e.code.name}: {msg}", EXIT_FAILED)


def _run_client(
    run: Callable[[], int],
    server: str,
    on_interrupt: Callable[[], int] | None = None,
) -> NoReturn:
    """Run a client command: every failure becomes one line on stderr and a documented exit code."""
    import logging

    from translate_svc.client import TranslateError

    if not os.environ.get("TRANSLATE_SVC_DEBUG"):
        # the SDK logs each retry and resume; the CLI reports the outcome in one line instead
        logging.getLogger("translate_svc.client").setLevel(logging.CRITICAL)
    try:
        code = run()
    except KeyboardInterrupt:
        code = on_interrupt() if on_interrupt is not None else EXIT_INTERRUPTED
        if on_interrupt is None:
            _note("interrupted: nothing written", "yellow")
    except CliError as e:
        _error_line(e.message)
        code = e.code
    except TranslateError as e:
        ce = _from_status(e, server)
        _error_line(ce.message)
        code = ce.code
    except BrokenPipeError:  # stdout closed early (| head): stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_FAILED
    except OSError as e:
        where = f" {e.filename}" if e.filename else ""
        _error_line(f"cannot use{where}: {e.strerror or e}")
        code = EXIT_USAGE
    except Exception as e:
        if os.environ.get("TRANSLATE_SVC_DEBUG"):
            raise
        _error_line(f"unexpected {type(e).__name__}: {e} (a bug: TRANSLATE_SVC_DEBUG=1 shows the traceback)")
        code = EXIT_FAILED
    raise typer.Exit(code)


# -- options shared by the client commands ----------------------------------------------------------

ServerOpt = Annotated[
    str,
    typer.Option(
        "--server",
        envvar="TRANSLATE_SVC_ADDRESS",
        help="HOST:PORT, several comma-separated (tried in turn), or a gRPC target (dns:///svc:50051)",
    ),
]
TlsOpt = Annotated[bool, typer.Option("--tls", help="TLS with the system's CA roots (--tls-ca implies TLS)")]
TlsCaOpt = Annotated[
    Path | None, typer.Option("--tls-ca", envvar="TRANSLATE_SVC_TLS_CA", help="PEM CA bundle to trust: TLS")
]
TlsCertOpt = Annotated[
    Path | None, typer.Option("--tls-cert", envvar="TRANSLATE_SVC_TLS_CERT", help="PEM client certificate (mTLS)")
]
TlsKeyOpt = Annotated[
    Path | None, typer.Option("--tls-key", envvar="TRANSLATE_SVC_TLS_KEY", help="PEM key of --tls-cert")
]
TlsNameOpt = Annotated[
    str | None,
    typer.Option(
        "--tls-server-name",
        envvar="TRANSLATE_SVC_TLS_SERVER_NAME",
        help="name to check in the server's certificate (when --server is an IP or a tunnel)",
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="TRANSLATE_SVC_TOKEN", help="bearer token (prefer --token-file: argv is visible)"),
]
TokenFileOpt = Annotated[
    Path | None, typer.Option("--token-file", envvar="TRANSLATE_SVC_TOKEN_FILE", help="file holding the token")
]
LangCheckOpt = Annotated[
    bool,
    typer.Option(
        "--lang-check/--no-lang-check",
        help="check --from/--to against the server's languages (ListLanguages) and map BCP-47 tags; "
        "off: send model codes as given",
    ),
]
SpeakerOpt = Annotated[int | None, typer.Option("--speaker-id", "--voice", min=0, help="vocoder voice (default 0)")]
SpeechRateOpt = Annotated[
    int | None, typer.Option("--speech-rate", help="sample rate of the speech written, 8000..48000 (default 16000)")
]
VadThresholdOpt = Annotated[
    float | None, typer.Option("--vad-threshold", help="speech probability threshold, 0..1 (server default 0.5)")
]
VadSilenceOpt = Annotated[
    int | None, typer.Option("--vad-min-silence-ms", help="silence that ends a segment (default 100)")
]
VadPadOpt = Annotated[int | None, typer.Option("--vad-speech-pad-ms", help="audio kept around speech (default 30)")]
VadMinSpeechOpt = Annotated[
    int | None, typer.Option("--vad-min-speech-ms", help="shorter speech is dropped (default 250)")
]
VadMaxSegmentOpt = Annotated[
    int | None, typer.Option("--vad-max-segment-ms", help="longer speech is split (default 15000)")
]
RawRateOpt = Annotated[
    int | None, typer.Option("--raw-rate", help="the input is headerless PCM at this rate (8000..48000)")
]
RawChannelsOpt = Annotated[int, typer.Option("--raw-channels", help="channels of headerless input (1 or 2)")]
RawEncodingOpt = Annotated[str, typer.Option("--raw-encoding", help="linear16 (s16le), float32 (f32le), mulaw or alaw")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="seconds to wait for a call's answer")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace output files that exist")]


@dataclass(frozen=True)
class Connection:
    server: str
    tls: TlsOptions | None
    token: str | None
    timeout_s: float

    def client(self) -> AsyncTranslateClient:
        from translate_svc.client import AsyncTranslateClient

        try:
            return AsyncTranslateClient(self.server, tls=self.tls, token=self.token, timeout_s=self.timeout_s)
        except ValueError as e:
            raise CliError(f"--server {self.server!r}: {e}") from None


def _readable(path: Path, flag: str) -> Path:
    if not path.is_file() or not os.access(path, os.R_OK):
        raise CliError(f"{flag} {path}: no such readable file")
    return path


def _connection(
    server: str,
    tls: bool,
    tls_ca: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_server_name: str | None,
    token: str | None,
    token_file: Path | None,
    timeout_s: float,
) -> Connection:
    from translate_svc.client import TlsOptions

    if not server.strip():
        raise CliError("--server is empty: give HOST:PORT")
    if token is not None and token_file is not None:
        raise CliError("give either --token or --token-file, not both")
    if token_file is not None:
        _readable(token_file, "--token-file")
        try:
            token = token_file.read_text().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise CliError(f"--token-file {token_file}: cannot read it ({e})") from None
        if not token:
            raise CliError(f"--token-file {token_file} is empty")
    if token is not None:
        token = token.strip()
        if not token or any(c.isspace() or not c.isprintable() for c in token):
            raise CliError("the token must be printable characters without spaces")
    if (tls_cert is None) != (tls_key is None):
        raise CliError("--tls-cert and --tls-key go together (a client certificate needs its key)")
    for flag, p in (("--tls-ca", tls_ca), ("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if p is not None:
            _readable(p, flag)
    use_tls = tls or any(p is not None for p in (tls_ca, tls_cert, tls_key)) or tls_server_name is not None
    options = TlsOptions(tls_ca, tls_cert, tls_key, tls_server_name) if use_tls else None
    if timeout_s <= 0:
        raise CliError("--timeout must be positive")
    return Connection(server.strip(), options, token, timeout_s)


def _vad(
    threshold: float | None, min_silence: int | None, pad: int | None, min_speech: int | None, max_segment: int | None
) -> VadOptions | None:
    from translate_svc.client import VadOptions

    if all(v is None for v in (threshold, min_silence, pad, min_speech, max_segment)):
        return None
    return VadOptions(threshold, min_silence, pad, min_speech, max_segment)


@dataclass(frozen=True)
class RawFormat:
    encoding: str  # linear16, float32, mulaw, alaw (the SDK's names)
    rate: int
    channels: int

    @property
    def frame_bytes(self) -> int:
        return _SAMPLE_BYTES[self.encoding] * self.channels


def _raw_format(rate: int | None, channels: int, encoding: str) -> RawFormat | None:
    enc = RAW_ENCODINGS.get(encoding.strip().lower())
    if enc is None:
        raise CliError(f"--raw-encoding {encoding!r}: use linear16 (s16le), float32 (f32le), mulaw or alaw")
    if rate is None:
        return None
    if not 8000 <= rate <= 48000:
        raise CliError(f"--raw-rate {rate}: use a rate between 8000 and 48000 Hz")
    if channels not in (1, 2):
        raise CliError(f"--raw-channels {channels}: use 1 or 2")
    return RawFormat(enc, rate, channels)


def _speech_rate(rate: int | None) -> int:
    if rate is not None and not 8000 <= rate <= 48000:
        raise CliError(f"--speech-rate {rate}: use a rate between 8000 and 48000 Hz")
    return rate or 0


# -- languages --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LangChoice:
    source: str | None
    targets: list[str]


def _split(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


async def _server_languages(client: AsyncTranslateClient, check: bool) -> Languages | None:
    """The server's languages, or None when not checking (or the token may not ask)."""
    import grpc

    from translate_svc.client import TranslateError

    if not check:
        return None
    try:
        return await client.languages()
    except TranslateError as e:
        if e.code is grpc.StatusCode.PERMISSION_DENIED:
            _warn("the token may not list languages: --from/--to are sent as given (no check, no mapping)")
            return None
        raise


def _choose_languages(
    source: str, to: str, langs: Languages | None, *, speech: bool, speaker_id: int | None
) -> LangChoice:
    from translate_svc.cli_lang import UnknownLanguage, guess_model_code, resolve_language

    targets_in = _split(to)
    if not targets_in:
        raise CliError("--to is empty: name at least one target language, e.g. --to spa or --to es")
    if langs is None:
        targets = [guess_model_code(t) for t in targets_in]
        src = guess_model_code(source) if source.strip() else None
    else:
        try:
            chosen = [resolve_language(t, langs.languages, what="target language (--to)") for t in targets_in]
            src = (
                resolve_language(source, langs.languages, what="source language (--from)").code
                if source.strip()
                else None
            )
        except UnknownLanguage as e:
            raise CliError(str(e)) from None
        if speech:
            silent = [lang for lang in chosen if not lang.speech_output]
            if silent:
                with_speech = ", ".join(sorted(lang.code for lang in langs.languages if lang.speech_output)[:12])
                raise CliError(
                    f"{silent[0].code} ({silent[0].name}) has text output only on this model: pass --no-speech for "
                    f"text alone, or pick targets with speech ({with_speech})"
                )
        targets = [lang.code for lang in chosen]
        n = langs.model.num_speakers
        if speaker_id is not None and n and speaker_id >= n:
            raise CliError(f"--speaker-id {speaker_id}: this model has {n} voice(s), 0..{n - 1}")
    dup = sorted({t for t in targets if targets.count(t) > 1})
    if dup:
        raise CliError(f"--to names {dup[0]} twice (after mapping {to!r} to the model's codes)")
    return LangChoice(src, targets)


# -- input audio ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """An input file, read and (for containers) decoded here, so mistakes show before any call."""

    label: str  # the path as the user gave it
    data: bytes  # the file's bytes (container or headerless PCM)
    raw: RawFormat | None
    samples: np.ndarray[Any, Any] | None  # containers: mono float32
    rate: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate

    def stream_format(self) -> tuple[str, int, int]:
        """(encoding, rate, channels) the stream is opened with."""
        if self.raw is not None:
            return self.raw.encoding, self.raw.rate, self.raw.channels
        return "float32", self.rate, 1

    def chunks(self, chunk_ms: int) -> Iterator[bytes | np.ndarray[Any, Any]]:
        frames = max(1, self.rate * chunk_ms // 1000)
        if self.raw is not None:
            step = frames * self.raw.frame_bytes
            for i in range(0, len(self.data), step):
                yield self.data[i : i + step]
        else:
            assert self.samples is not None
            for i in range(0, len(self.samples), frames):
                yield self.samples[i : i + frames]


def _load_clip(path: Path, raw: RawFormat | None) -> Clip:
    from translate_svc.audio.codec import decode_container
    from translate_svc.audio.resample import resample
    from translate_svc.errors import InvalidInput

    label = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {label}: {e.strerror or e}") from None
    if not data:
        raise CliError(f"{label} is empty: nothing to translate")
    if raw is not None:
        whole = len(data) - len(data) % raw.frame_bytes
        if whole == 0:
            raise CliError(f"{label} holds less than one {raw.encoding} frame")
        if whole != len(data):
            _warn(f"{label}: the last {len(data) - whole} byte(s) are not a whole {raw.encoding} frame; ignored")
        return Clip(label, data[:whole], raw, None, raw.rate, whole // raw.frame_bytes)
    try:
        samples, rate = decode_container(data)
    except InvalidInput as e:
        raise CliError(f"cannot decode {label}: {e.message} (headerless PCM needs --raw-rate)") from None
    if not 8000 <= rate <= 48000:
        samples, rate = resample(samples, rate, 16000), 16000
    if len(samples) == 0:
        raise CliError(f"{label} holds no audio")
    return Clip(label, data, None, samples, rate, len(samples))


# -- running a stream ---------------------------------------------------------------------------------


async def _send_and_read(send: Awaitable[None], read: Awaitable[None]) -> None:
    """Run a stream's sender and reader together. The reader's failure (the server's status) wins
    over the sender's (which only sees that the stream closed)."""
    from translate_svc.client import StreamClosedError

    sender = asyncio.ensure_future(send)
    reader = asyncio.ensure_future(read)
    try:
        done, _ = await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_EXCEPTION)
        failed = reader.exception() if reader in done else None
        if failed is not None:
            raise failed
        failed = sender.exception() if sender in done else None
        if failed is not None:
            if isinstance(failed, StreamClosedError):
                await reader
            raise failed
        await reader
        await sender
    finally:
        for t in (sender, reader):
            t.cancel()
        await asyncio.gather(sender, reader, return_exceptions=True)


# -- writing ------------------------------------------------------------------------------------------


def _check_free(paths: Sequence[Path], overwrite: bool) -> None:
    if overwrite:
        return
    taken = [p for p in paths if p.exists()]
    if taken:
        more = f" (and {len(taken) - 1} more output file(s))" if len(taken) > 1 else ""
        raise CliError(f"{taken[0]} already exists{more}: pass --overwrite to replace, or choose another --out")


def _write(path: Path, data: bytes, overwrite: bool) -> None:
    """Write whole or not at all; without ``overwrite`` an existing file is never replaced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise CliError(f"{path} appeared meanwhile: pass --overwrite to replace it") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _check_dir(path: Path) -> None:
    """Fail early when ``path`` cannot be made or written to (it is only made when written to)."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise CliError(f"cannot use {path} as the output directory: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CliError(f"cannot write to {existing} (for {path})")


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"cannot create the output directory {path}: {e.strerror or e}") from None


def _speech_pieces(segments: Sequence[Segment], target: str) -> list[tuple[int, np.ndarray[Any, Any], int]]:
    """(start_ms, float32 audio, rate) of each segment with speech in ``target``."""
    pieces = []
    for seg in segments:
        for t in seg.translations:
            if t.target == target and t.audio is not None and len(t.audio):
                pieces.append((seg.start_ms, t.audio, t.sample_rate))
    return pieces


def _write_speech(
    directory: Path,
    base: str,
    target: str,
    segments: Sequence[Segment],
    duration_ms: int,
    *,
    rate: int,
    concat: bool,
    extend: bool,
    overwrite: bool,
) -> tuple[list[Path], dict[str, Any]]:
    """The dub track (and the segments-only track): files written and their JSON entries."""
    from translate_svc.cli_output import concat_track, dub_track, wav_bytes

    pieces = _speech_pieces(segments, target)
    rate = pieces[0][2] if pieces else (rate or 16000)
    if any(r != rate for _, _, r in pieces):
        raise CliError(f"the server sent {target} speech at several sample rates; cannot mix them")
    track, cut = dub_track(duration_ms, rate, [(start, audio) for start, audio, _ in pieces], extend=extend)
    written = [directory / f"{base}.{target}.wav"]
    _write(written[0], wav_bytes(track, rate), overwrite)
    info: dict[str, Any] = {"dub": written[0].name, "sample_rate_hz": rate, "speech_cut_ms": round(cut * 1000 / rate)}
    if cut:
        _warn(
            f"{written[0]}: {cut * 1000 / rate:.0f} ms of {target} speech ran past the end of the source and was "
            "cut (--dub-extend keeps it)"
        )
    if concat:
        path = directory / f"{base}.{target}.segments.wav"
        _write(path, wav_bytes(concat_track([audio for _, audio, _ in pieces], rate), rate), overwrite)
        written.append(path)
        info["segments"] = path.name
    return written, info


# -- translate ----------------------------------------------------------------------------------------

TRANSLATE_HELP = """Translate audio files; write per input a dub track per target, and JSON or subtitles.

Outputs go to --out, named per input: BASE.json, BASE.TARGET.wav (the dub track: the source's
length, each segment's speech mixed in at its start_ms, overlapping the next when longer than the
gap; speech past the source's end is cut unless --dub-extend), BASE.TARGET.segments.wav (with
--concat: the speech back to back, 300 ms apart), BASE.TARGET.srt / .vtt (--format srt,vtt; one cue
per segment, timed by its span). BASE is the file's stem; inputs that share a stem (a/x.wav,
b/x.wav) get their parent directories in front (a_x, b_x). TARGET is the model's code (spa for es).
An existing output is never replaced: the command refuses before translating unless --overwrite.

Languages: model codes (spa, cmn_Hant), names (Spanish) or BCP-47 tags (es, pt-BR, zh-Hant),
checked against the server's ListLanguages.

Progress: --via auto sends clips up to 30 s in one Translate call (an elapsed-time spinner: that
call reports nothing until it is done) and longer ones through StreamingTranslate, whose results
arrive segment by segment in order, so the bar shows the audio translated so far; streams also
have no clip-length limit (max_clip_seconds) and no single-answer size limit. Both give the same
segments (the server segments both the same way).

JSON (BASE.json; every number a JSON number):
{"format": "translate-svc.result.v1", "input": PATH, "via": "Translate" or "StreamingTranslate",
 "source_language": CODE or null, "target_languages": [CODE...], "audio_duration_ms": INT,
 "model": {"name", "revision", "is_test_model", "num_speakers"},
 "segments": [{"segment_id": INT, "start_ms": INT, "end_ms": INT,
   "status": {"code": "OK" or a gRPC code name, "message": STR}, "transcript": STR or null,
   "translations": [{"target_language": CODE, "text": STR,
     "speech": {"sample_rate_hz": INT, "num_samples": INT, "duration_ms": NUM} or null}],
   "timing": {"queue_ms", "model_ms", "total_ms", "vad_wait_ms"}}],
 "files": {CODE: {"dub": NAME, "sample_rate_hz": INT, "speech_cut_ms": INT, "segments": NAME,
   "srt": NAME, "vtt": NAME}}}
Every segment is listed, failed ones too (with their status).
"""


@app.command(help=TRANSLATE_HELP.replace("[", "\\["))
def translate(
    files: Annotated[list[Path], typer.Argument(help="audio files (WAV, FLAC, OGG, MP3, WebM; or --raw-rate)")],
    to: Annotated[str, typer.Option("--to", help="target languages, comma-separated: spa,fra or es,fr")],
    source: Annotated[str, typer.Option("--from", help="source language (enables the transcript)")] = "",
    out_dir: Annotated[Path, typer.Option("--out", help="output directory")] = Path("out"),
    formats: Annotated[
        list[str] | None, typer.Option("--format", help="json (default), srt, vtt; comma-separated or repeated")
    ] = None,
    speech: Annotated[bool, typer.Option(help="ask for translated speech and write the dub tracks")] = True,
    concat: Annotated[bool, typer.Option("--concat", help="also write the speech back to back")] = False,
    dub_extend: Annotated[
        bool, typer.Option("--dub-extend", help="let the dub track run past the source's end")
    ] = False,
    overwrite: OverwriteOpt = False,
    via: Annotated[str, typer.Option("--via", help="auto, translate (one call) or stream")] = "auto",
    speaker_id: SpeakerOpt = None,
    speech_rate: SpeechRateOpt = None,
    vad_threshold: VadThresholdOpt = None,
    vad_min_silence_ms: VadSilenceOpt = None,
    vad_speech_pad_ms: VadPadOpt = None,
    vad_min_speech_ms: VadMinSpeechOpt = None,
    vad_max_segment_ms: VadMaxSegmentOpt = None,
    raw_rate: RawRateOpt = None,
    raw_channels: RawChannelsOpt = 1,
    raw_encoding: RawEncodingOpt = "linear16",
    lang_check: LangCheckOpt = True,
    server: ServerOpt = "localhost:50051",
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsNameOpt = None,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 600.0,
) -> None:
    def run() -> int:
        from translate_svc.cli_output import TEXT_FORMATS, output_bases

        conn = _connection(server, tls, tls_ca, tls_cert, tls_key, tls_server_name, token, token_file, timeout)
        fmts = [f.strip().lower() for v in (formats or ["json"]) for f in v.split(",") if f.strip()]
        bad = [f for f in fmts if f not in TEXT_FORMATS]
        if bad:
            raise CliError(f"--format {bad[0]!r}: use json, srt or vtt (comma-separated)")
        if via not in ("auto", "translate", "stream"):
            raise CliError(f"--via {via!r}: use auto, translate or stream")
        if not fmts and not speech:
            raise CliError("nothing to write: --no-speech with no --format")
        inputs: list[Path] = []
        seen: set[Path] = set()
        for f in files:
            if not f.is_file():
                raise CliError(f"cannot read {f}: {'it is a directory' if f.is_dir() else 'no such file'}")
            key = f.resolve()
            if key in seen:
                _warn(f"{f} is given twice: translated once")
                continue
            seen.add(key)
            inputs.append(f)
        job = TranslateJob(
            conn=conn,
            source=source,
            to=to,
            lang_check=lang_check,
            formats=fmts,
            speech=speech,
            concat=concat,
            dub_extend=dub_extend,
            overwrite=overwrite,
            via=via,
            speaker_id=speaker_id,
            speech_rate=_speech_rate(speech_rate),
            vad=_vad(vad_threshold, vad_min_silence_ms, vad_speech_pad_ms, vad_min_speech_ms, vad_max_segment_ms),
            raw=_raw_format(raw_rate, raw_channels, raw_encoding),
        )
        return asyncio.run(job.run_all(inputs, output_bases(inputs), out_dir))

    _run_client(run, server)


@dataclass
class TranslateJob:
    """One ``translate`` command: the options, then each input in turn on one client."""

    conn: Connection
    source: str
    to: str
    lang_check: bool
    formats: list[str]
    speech: bool
    concat: bool
    dub_extend: bool
    overwrite: bool
    via: str
    speaker_id: int | None
    speech_rate: int
    vad: VadOptions | None
    raw: RawFormat | None
    langs: LangChoice = field(default_factory=lambda: LangChoice(None, []))

    async def run_all(self, inputs: Sequence[Path], bases: Sequence[str], out_dir: Path) -> int:
        from translate_svc.cli_output import translate_outputs
        from translate_svc.client import TranslateError

        async with self.conn.client() as client:
            langs = await _server_languages(client, self.lang_check)
            self.langs = _choose_languages(self.source, self.to, langs, speech=self.speech, speaker_id=self.speaker_id)
            planned = [
                out_dir / name
                for base in bases
                for name in translate_outputs(
                    base, self.langs.targets, self.formats, speech=self.speech, concat=self.concat
                )
            ]
            _check_free(planned, self.overwrite)
            _check_dir(out_dir)
            code = EXIT_OK
            for path, base in zip(inputs, bases, strict=True):
                try:
                    try:
                        rc = await self.run(client, path, base, out_dir)
                    except TranslateError as e:
                        raise _from_status(e, self.conn.server) from None
                except CliError as e:
                    if e.code in (EXIT_CONNECT, EXIT_AUTH) or len(inputs) == 1:
                        raise
                    _error_line(f"{path}: {e.message}")  # the other inputs go on
                    rc = e.code
                code = code or rc
            return code

    async def run(self, client: AsyncTranslateClient, path: Path, base: str, out_dir: Path) -> int:
        clip = await asyncio.to_thread(_load_clip, path, self.raw)
        via = self.via
        if via == "auto":
            via = "stream" if clip.duration_s > AUTO_STREAM_S else "translate"
        t0 = time.perf_counter()
        with _progress() as progress:
            if via == "translate":
                task = progress.add_task(f"{path.name}: translating {clip.duration_s:.1f} s (one call)", total=None)
                result = await client.translate(
                    clip.data,
                    targets=self.langs.targets,
                    source=self.langs.source,
                    encoding=self.raw.encoding if self.raw else None,  # type: ignore[arg-type]
                    sample_rate=self.raw.rate if self.raw else None,
                    channels=self.raw.channels if self.raw else None,
                    speech=self.speech,
                    transcript=self.langs.source is not None,
                    speech_sample_rate=self.speech_rate,
                    speaker_id=self.speaker_id,
                    vad=self.vad,
                )
                progress.update(task, total=1, completed=1)
                segments, model, duration_ms = list(result.segments), result.model, result.audio_duration_ms
                rpc = "Translate"
            else:
                segments, model, duration_ms = await self._by_stream(client, clip, progress)
                rpc = "StreamingTranslate"
        took = time.perf_counter() - t0
        return self._finish(path, base, out_dir, clip, rpc, segments, model, duration_ms, took)

    async def _by_stream(
        self, client: AsyncTranslateClient, clip: Clip, progress: Progress
    ) -> tuple[list[Segment], ModelInfo, int]:
        from translate_svc.client import Segment, StreamEnd

        encoding, rate, channels = clip.stream_format()
        total_ms = clip.duration_s * 1000
        task = progress.add_task(f"{Path(clip.label).name}: {clip.duration_s:.1f} s", total=total_ms)
        segments: list[Segment] = []
        end: list[StreamEnd] = []
        async with client.stream(
            targets=self.langs.targets,
            source=self.langs.source,
            encoding=encoding,  # type: ignore[arg-type]
            sample_rate=rate,
            channels=channels,
            speech=self.speech,
            transcript=self.langs.source is not None,
            speech_sample_rate=self.speech_rate,
            speaker_id=self.speaker_id,
            vad=self.vad,
        ) as s:

            async def send() -> None:
                for chunk in clip.chunks(200):
                    await s.send(chunk)
                await s.close()

            async def read() -> None:
                async for ev in s:
                    if isinstance(ev, Segment):
                        segments.append(ev)
                        progress.update(task, completed=min(total_ms, ev.end_ms))
                    elif isinstance(ev, StreamEnd):
                        end.append(ev)
                        progress.update(task, completed=total_ms)

            await _send_and_read(send(), read())
            assert s.info is not None
            model = s.info.model
        duration_ms = end[0].audio_received_ms if end else round(total_ms)
        return segments, model, duration_ms

    def _finish(
        self,
        path: Path,
        base: str,
        out_dir: Path,
        clip: Clip,
        rpc: str,
        segments: list[Segment],
        model: ModelInfo,
        duration_ms: int,
        took: float,
    ) -> int:
        from translate_svc.cli_output import cues, result_json, srt_document, vtt_document

        if model.is_test_model:
            _note("test model (random weights): every text and sound below is noise", "bold yellow")
        _print_table(path, segments, duration_ms, model, rpc, took, self.langs.source is not None)
        _make_dir(out_dir)
        written: list[Path] = []
        files: dict[str, dict[str, Any]] = {t: {} for t in self.langs.targets}
        for target in self.langs.targets:
            if self.speech:
                paths, info = _write_speech(
                    out_dir,
                    base,
                    target,
                    segments,
                    duration_ms,
                    rate=self.speech_rate,
                    concat=self.concat,
                    extend=self.dub_extend,
                    overwrite=self.overwrite,
                )
                written += paths
                files[target].update(info)
            items = cues(segments, target)
            for fmt, render in (("srt", srt_document), ("vtt", vtt_document)):
                if fmt in self.formats:
                    p = out_dir / f"{base}.{target}.{fmt}"
                    _write(p, render(items).encode(), self.overwrite)
                    written.append(p)
                    files[target][fmt] = p.name
        if "json" in self.formats:
            doc = result_json(
                input_path=clip.label,
                via=rpc,
                source=self.langs.source,
                targets=self.langs.targets,
                model=model,
                audio_duration_ms=duration_ms,
                segments=segments,
                files=files,
            )
            p = out_dir / f"{base}.json"
            _write(p, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode(), self.overwrite)
            written.append(p)
        for p in written:
            out.print(Text(f"wrote {p}"), soft_wrap=True)
        failed = [s for s in segments if not s.ok]
        if failed:
            first = failed[0].error
            assert first is not None
            _warn(
                f"{path}: {len(failed)} of {len(segments)} segments failed (first: {first.code}: {first.message}); "
                "they are in the JSON with their status"
            )
            return EXIT_FAILED
        return EXIT_OK


@contextlib.contextmanager
def _progress() -> Iterator[Progress]:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
    with progress:
        yield progress


def _clean(text: str | None) -> str:
    from translate_svc.cli_output import one_line

    return one_line(text or "")


def _print_table(
    path: Path,
    segments: Sequence[Segment],
    duration_ms: int,
    model: ModelInfo,
    rpc: str,
    took: float,
    transcript: bool,
) -> None:
    title = Text(f"{path}: {len(segments)} segments, {duration_ms} ms of audio, {took:.1f} s via {rpc} ({model.name})")
    table = Table(title=title)
    cols = ["#", "span (ms)", *(["transcript"] if transcript else []), "lang", "translation", "speech (ms)", "status"]
    for col in cols:
        table.add_column(col)
    for seg in segments:
        status = "OK" if seg.error is None else f"{seg.error.code}: {seg.error.message}"
        for i, tr in enumerate(seg.translations or (None,)):
            first = i == 0
            row = [
                str(seg.segment_id) if first else "",
                f"{seg.start_ms}-{seg.end_ms}" if first else "",
                *([_clean(seg.transcript) if first else ""] if transcript else []),
                tr.target if tr else "",
                _clean(tr.text) if tr else "",
                f"{tr.duration_s * 1000:.0f}" if tr is not None and tr.has_speech else "",
                _clean(status) if first else "",
            ]
            table.add_row(*(Text(c) for c in row))
    out.print(table)


# -- stream -------------------------------------------------------------------------------------------


class _Reader:
    """Headerless PCM from a file descriptor (stdin, or a raw file), read on a daemon thread in
    whole chunks (os.read: no buffered-reader lock for interpreter shutdown to trip over)."""

    def __init__(self, fd: int, chunk_bytes: int, frame_bytes: int) -> None:
        self.fd = fd
        self.chunk_bytes = chunk_bytes
        self.frame_bytes = frame_bytes
        self.leftover = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(maxsize=32)

        def put(item: bytes | BaseException | None) -> bool:
            try:
                asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
                return True
            except Exception:
                return False  # the loop is gone (interrupted)

        def pump() -> None:
            pending = b""
            try:
                while True:
                    data = os.read(self.fd, self.chunk_bytes - len(pending))
                    if not data:
                        break
                    pending += data
                    if len(pending) >= self.chunk_bytes and not put(pending):
                        return
                    if len(pending) >= self.chunk_bytes:
                        pending = b""
            except OSError as e:
                put(e)
                return
            whole = len(pending) - len(pending) % self.frame_bytes
            self.leftover = len(pending) - whole
            if whole and not put(pending[:whole]):
                return
            put(None)

        threading.Thread(target=pump, name="stdin-reader", daemon=True).start()
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


@dataclass
class StreamRun:
    """What a ``stream`` command has received so far (kept when it is interrupted)."""

    label: str
    targets: list[str]
    human: Console
    jsonl: IO[str] | None
    realtime: bool
    segments: list[Segment] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    sent_ends_ms: list[float] = field(default_factory=list)
    sent_times: list[float] = field(default_factory=list)
    audio_sent_ms: float = 0.0
    audio_received_ms: int | None = None
    t0: float = field(default_factory=time.perf_counter)
    model: ModelInfo | None = None
    summary_done: bool = False

    def now_ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000

    def emit(self, obj: dict[str, Any]) -> None:
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({**obj, "t_ms": round(self.now_ms(), 1)}, ensure_ascii=False) + "\n")
            self.jsonl.flush()

    def say(self, *parts: tuple[str, str] | str) -> None:
        stamp = (f"{self.now_ms() / 1000:8.2f} s  ", "dim")
        self.human.print(Text.assemble(stamp, *parts), soft_wrap=True)

    def sent(self, end_ms: float) -> None:
        self.audio_sent_ms = end_ms
        self.sent_ends_ms.append(end_ms)
        self.sent_times.append(time.perf_counter())

    def latency_ms(self, end_ms: int) -> float | None:
        """From the moment the segment's last audio was sent to now."""
        if not self.sent_ends_ms:
            return None
        i = bisect.bisect_left(self.sent_ends_ms, end_ms)
        t_sent = self.sent_times[min(i, len(self.sent_times) - 1)]
        return (time.perf_counter() - t_sent) * 1000

    def on_event(self, ev: StreamEvent) -> None:
        from translate_svc.cli_output import segment_json
        from translate_svc.client import Draining, Interim, Segment, SpeechEvent, StreamEnd

        if isinstance(ev, Segment):
            lat = self.latency_ms(ev.end_ms)
            self.segments.append(ev)
            if lat is not None:
                self.latencies.append(lat)
            self.emit({"type": "segment", **segment_json(ev), "latency_ms": None if lat is None else round(lat, 1)})
            texts = "; ".join(f"{t.target}: {_clean(t.text)!r}" for t in ev.translations)
            said = f" {_clean(ev.transcript)!r} ->" if ev.transcript is not None else ""
            status = "" if ev.error is None else f"  {ev.error.code}: {_clean(ev.error.message)}"
            lat_s = "" if lat is None else f"  latency {lat:.0f} ms"
            self.say(
                f"segment {ev.segment_id} [{ev.start_ms}-{ev.end_ms} ms]{lat_s} |{said} {texts}",
                (status, "red"),
            )
        elif isinstance(ev, SpeechEvent):
            self.emit({"type": "speech", "event": ev.type.value, "offset_ms": ev.offset_ms})
            self.say((f"speech {ev.type.value} at {ev.offset_ms} ms", "dim"))
        elif isinstance(ev, Interim):
            self.emit(
                {
                    "type": "interim",
                    "segment_id": ev.segment_id,
                    "start_ms": ev.start_ms,
                    "end_ms": ev.end_ms,
                    "transcript": ev.transcript,
                    "translations": [{"target_language": t.target, "text": t.text} for t in ev.translations],
                }
            )
            self.say((f"caption {ev.segment_id}: " + "; ".join(_clean(t.text) for t in ev.translations), "dim"))
        elif isinstance(ev, Draining):
            self.emit({"type": "draining", "remaining_ms": ev.remaining_ms})
            self.say((f"the server is shutting down; the stream moves in {ev.remaining_ms} ms", "yellow"))
        elif isinstance(ev, StreamEnd):
            self.audio_received_ms = ev.audio_received_ms
            self.emit(
                {
                    "type": "end",
                    "reason": ev.reason.value,
                    "segments_total": ev.segments_total,
                    "audio_received_ms": ev.audio_received_ms,
                    "audio_filled_ms": ev.audio_filled_ms,
                }
            )
            self.say(f"ended: {ev.segments_total} segments, {ev.audio_received_ms} ms of audio")

    def summary(self, *, interrupted: bool) -> None:
        from translate_svc.cli_output import latency_summary, nearest_rank

        if self.summary_done:
            return
        self.summary_done = True
        values = sorted(self.latencies)
        failed = sum(1 for s in self.segments if not s.ok)
        self.emit(
            {
                "type": "summary",
                "input": self.label,
                "segments": len(self.segments),
                "failed": failed,
                "audio_sent_ms": round(self.audio_sent_ms, 1),
                "interrupted": interrupted,
                "latency_ms": {
                    "n": len(values),
                    "p50": round(nearest_rank(values, 0.5), 1),
                    "p95": round(nearest_rank(values, 0.95), 1),
                    "max": round(values[-1], 1),
                }
                if values
                else None,
            }
        )
        what = "segment's last audio sent -> its result"
        if not self.realtime:
            what += "; audio sent faster than real time, so this includes waiting behind earlier audio"
        text = latency_summary(values)
        self.human.print(Text(text + (f" ({what})" if values else "")), soft_wrap=True)


STREAM_HELP = """Send audio as a live stream; show results as they arrive, with latencies.

SOURCE is an audio file, or headerless PCM in a file or on stdin ("-") with --raw-rate, e.g.
ffmpeg -i talk.mp4 -f s16le -ar 16000 -ac 1 - | translate-svc stream - --raw-rate 16000 --to spa

--jsonl FILE (or - for stdout) writes one JSON object per line as events arrive (flushed each
line, so Ctrl-C keeps what was done): {"type": "started"}, {"type": "speech"}, {"type":
"interim"} (--interim-ms), {"type": "segment"} (the same fields as a segment of translate's JSON,
plus latency_ms), {"type": "end"}, and last {"type": "summary"} (also after Ctrl-C). Every line has
t_ms, milliseconds since the stream started. --out DIR also writes the dub track of each target
(BASE.TARGET.wav, the length of the audio sent), after the end or Ctrl-C.

Latency: from the moment a segment's last audio was sent to its result (nearest-rank p50/p95, so
p95 never exceeds the max). Use --realtime (or a live pipe) for speech-to-result latency.
"""


@app.command(help=STREAM_HELP.replace("[", "\\["))
def stream(
    source_audio: Annotated[str, typer.Argument(metavar="SOURCE", help="audio file, or - for PCM on stdin")],
    to: Annotated[str, typer.Option("--to", help="target languages, comma-separated")],
    source: Annotated[str, typer.Option("--from", help="source language (enables the transcript)")] = "",
    jsonl: Annotated[str | None, typer.Option("--jsonl", help="write JSON lines to FILE, or - for stdout")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="write dub tracks (speech) to DIR")] = None,
    overwrite: OverwriteOpt = False,
    realtime: Annotated[bool, typer.Option(help="pace the audio at real time")] = False,
    chunk_ms: Annotated[int, typer.Option(help="audio per message, 10..1000 ms")] = 100,
    interim_ms: Annotated[int, typer.Option("--interim-ms", help="live captions every N ms (0: off)")] = 0,
    speaker_id: SpeakerOpt = None,
    speech_rate: SpeechRateOpt = None,
    vad_threshold: VadThresholdOpt = None,
    vad_min_silence_ms: VadSilenceOpt = None,
    vad_speech_pad_ms: VadPadOpt = None,
    vad_min_speech_ms: VadMinSpeechOpt = None,
    vad_max_segment_ms: VadMaxSegmentOpt = None,
    raw_rate: RawRateOpt = None,
    raw_channels: RawChannelsOpt = 1,
    raw_encoding: RawEncodingOpt = "linear16",
    lang_check: LangCheckOpt = True,
    server: ServerOpt = "localhost:50051",
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsNameOpt = None,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 60.0,
) -> None:
    state: list[StreamRun] = []
    handles: list[IO[str]] = []

    stdin = source_audio == "-"
    label = "stdin" if stdin else source_audio
    base = "stdin" if stdin else Path(source_audio).stem

    def run() -> int:
        conn = _connection(server, tls, tls_ca, tls_cert, tls_key, tls_server_name, token, token_file, timeout)
        raw = _raw_format(raw_rate, raw_channels, raw_encoding)
        rate_out = _speech_rate(speech_rate)
        if not 10 <= chunk_ms <= 1000:
            raise CliError(f"--chunk-ms {chunk_ms}: use 10..1000")
        vad = _vad(vad_threshold, vad_min_silence_ms, vad_speech_pad_ms, vad_min_speech_ms, vad_max_segment_ms)
        clip: Clip | None = None
        fd: int | None = None
        if stdin:
            if raw is None:
                raise CliError(
                    "reading stdin needs --raw-rate (headerless PCM), e.g. "
                    "ffmpeg -i x -f s16le -ar 16000 -ac 1 - | translate-svc stream - --raw-rate 16000"
                )
            if sys.stdin is None or sys.stdin.isatty():
                raise CliError("stdin is a terminal: pipe headerless PCM into it (see --help)")
            fd = sys.stdin.fileno()
        else:
            path = Path(source_audio)
            if not path.is_file():
                raise CliError(f"cannot read {path}: {'it is a directory' if path.is_dir() else 'no such file'}")
            if raw is not None:
                if path.stat().st_size < raw.frame_bytes:
                    raise CliError(f"{path} is empty: nothing to translate")
                fd = os.open(path, os.O_RDONLY)
            else:
                clip = _load_clip(path, None)
        return asyncio.run(main(conn, raw, rate_out, vad, clip, fd))

    async def main(
        conn: Connection,
        raw: RawFormat | None,
        rate_out: int,
        vad: VadOptions | None,
        clip: Clip | None,
        fd: int | None,
    ) -> int:
        async with conn.client() as client:
            langs = await _server_languages(client, lang_check)
            choice = _choose_languages(
                source, to, langs, speech=out_dir is not None, speaker_id=speaker_id if out_dir else None
            )
            outputs = [out_dir / f"{base}.{t}.wav" for t in choice.targets] if out_dir is not None else []
            jsonl_path = Path(jsonl) if jsonl not in (None, "-") else None
            _check_free([*outputs, *([jsonl_path] if jsonl_path else [])], overwrite)
            if out_dir is not None:
                _check_dir(out_dir)
            sink: IO[str] | None = None
            if jsonl == "-":
                sink = sys.stdout
            elif jsonl_path is not None:
                sink = _open_text(jsonl_path, overwrite)
                handles.append(sink)
            human = err if jsonl == "-" else out
            run = StreamRun(label, choice.targets, human, sink, realtime or stdin)
            state.append(run)
            if clip is not None:
                encoding, rate, channels = clip.stream_format()
            else:
                assert raw is not None
                encoding, rate, channels = raw.encoding, raw.rate, raw.channels
            frame_bytes = _SAMPLE_BYTES[encoding] * channels
            async with client.stream(
                targets=choice.targets,
                source=choice.source,
                encoding=encoding,  # type: ignore[arg-type]
                sample_rate=rate,
                channels=channels,
                interim_ms=interim_ms,
                speech=out_dir is not None,
                transcript=choice.source is not None,
                speech_sample_rate=rate_out,
                speaker_id=speaker_id,
                vad=vad,
            ) as s:
                info = s.info
                assert info is not None
                run.model = info.model
                run.t0 = time.perf_counter()
                run.emit(
                    {
                        "type": "started",
                        "format": "translate-svc.stream.v1",
                        "input": label,
                        "session_id": info.session_id,
                        "server": info.address,
                        "source_language": choice.source,
                        "target_languages": choice.targets,
                        "model": _model_dict(info.model),
                    }
                )
                if info.model.is_test_model:
                    _note("test model (random weights): every text and sound below is noise", "bold yellow")
                run.say(f"started session {info.session_id} on {info.address} ({info.model.name})")

                async def send() -> None:
                    frames = 0
                    chunk_frames = max(1, rate * chunk_ms // 1000)
                    source_chunks: AsyncIterator[bytes | np.ndarray[Any, Any]]
                    reader: _Reader | None = None
                    if clip is not None:
                        source_chunks = _aiter(clip.chunks(chunk_ms))
                    else:
                        assert fd is not None
                        reader = _Reader(fd, chunk_frames * frame_bytes, frame_bytes)
                        source_chunks = reader.chunks()
                    async for chunk in source_chunks:
                        n = len(chunk) // frame_bytes if isinstance(chunk, bytes) else len(chunk)
                        if realtime:
                            delay = run.t0 + frames / rate - time.perf_counter()
                            if delay > 0:
                                await asyncio.sleep(delay)
                        await s.send(chunk)
                        frames += n
                        run.sent(frames * 1000 / rate)
                    if reader is not None and reader.leftover:
                        _warn(f"the input ended with {reader.leftover} byte(s) that are not a whole frame; ignored")
                    await s.close()

                async def read() -> None:
                    async for ev in s:
                        run.on_event(ev)

                await _send_and_read(send(), read())
        if run.audio_sent_ms == 0:
            run.summary(interrupted=False)
            raise CliError(f"no audio: {label} was empty")
        return _finish_stream(run, out_dir, base, overwrite, interrupted=False)

    def on_interrupt() -> int:
        if state:
            _finish_stream(state[0], out_dir, base, overwrite, interrupted=True)
        _note("interrupted: what arrived before Ctrl-C was kept", "yellow")
        return EXIT_INTERRUPTED

    try:
        _run_client(run, server, on_interrupt)
    finally:
        for h in handles:
            with contextlib.suppress(OSError):
                h.close()


def _open_text(path: Path, overwrite: bool) -> IO[str]:
    try:
        return path.open("w" if overwrite else "x", encoding="utf-8")
    except FileExistsError:
        raise CliError(f"{path} already exists: pass --overwrite to replace it") from None
    except OSError as e:
        raise CliError(f"cannot write {path}: {e.strerror or e}") from None


async def _aiter(items: Iterator[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def _model_dict(model: ModelInfo) -> dict[str, Any]:
    from translate_svc.cli_output import model_json

    return model_json(model)


def _finish_stream(run: StreamRun, out_dir: Path | None, base: str, overwrite: bool, interrupted: bool) -> int:
    run.summary(interrupted=interrupted)
    if out_dir is not None and run.segments:
        _make_dir(out_dir)
        duration = run.audio_received_ms if run.audio_received_ms is not None else round(run.audio_sent_ms)
        for target in run.targets:
            paths, _ = _write_speech(
                out_dir, base, target, run.segments, duration, rate=0, concat=False, extend=False, overwrite=overwrite
            )
            for p in paths:
                run.human.print(Text(f"wrote {p}"), soft_wrap=True)
    if interrupted:
        return EXIT_INTERRUPTED
    failed = [s for s in run.segments if not s.ok]
    if failed:
        _warn(f"{len(failed)} of {len(run.segments)} segments failed")
        return EXIT_FAILED
    return EXIT_OK


# -- languages ------------------------------------------------------------------------------------------


@app.command()
def languages(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    server: ServerOpt = "localhost:50051",
    tls: TlsOpt = False,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
    tls_server_name: TlsNameOpt = None,
    token: TokenOpt = None,
    token_file: TokenFileOpt = None,
    timeout: TimeoutOpt = 30.0,
) -> None:
    """List the languages of the model the server has loaded (--from/--to also take BCP-47 tags)."""

    conn_args = (server, tls, tls_ca, tls_cert, tls_key, tls_server_name, token, token_file, timeout)

    def run() -> int:
        return asyncio.run(main(_connection(*conn_args)))

    async def main(conn: Connection) -> int:
        async with conn.client() as client:
            resp = await client.languages()
        if as_json:
            doc = {
                "model": _model_dict(resp.model),
                "languages": [
                    {
                        "code": lang.code,
                        "name": lang.name,
                        "speech_input": lang.speech_input,
                        "text_output": lang.text_output,
                        "speech_output": lang.speech_output,
                    }
                    for lang in resp.languages
                ],
            }
            sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
            return EXIT_OK
        table = Table(title=Text(f"{resp.model.name} ({resp.model.revision})"))
        for col in ("code", "name", "speech in", "text out", "speech out"):
            table.add_column(col)
        yes = {True: "yes", False: ""}
        for lang in resp.languages:
            table.add_row(
                *(
                    Text(c)
                    for c in (
                        lang.code,
                        lang.name,
                        yes[lang.speech_input],
                        yes[lang.text_output],
                        yes[lang.speech_output],
                    )
                )
            )
        out.print(table)
        return EXIT_OK

    _run_client(run, server)


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


if __name__ == "__main__":
    app()
