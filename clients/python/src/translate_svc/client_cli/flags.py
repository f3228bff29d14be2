"""The client commands' flags, declared once as groups that become the SDK's typed option objects.

A group is a frozen dataclass whose fields are typer options (``Annotated``); ``@flag_groups`` lets a
command take a group as one parameter: its fields become the command's flags, and the command gets
the group back, which turns its flags into one SDK object (``TlsOptions``, ``VadOptions``,
``AudioFormat``, ``OutputOptions``) for the SDK call. Light imports only: ``--help`` loads this.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, TypeVar

import typer
from typer.models import ParameterInfo

from translate_svc.client_cli.common import CliError
from translate_svc.wire.rates import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ

if TYPE_CHECKING:
    from translate_svc.client import (
        AsyncTranslateClient,
        AudioFormat,
        Languages,
        OutputOptions,
        Term,
        TlsOptions,
        VadOptions,
    )
    from translate_svc.client.types import StreamEncoding

R = TypeVar("R")


def flag_groups(command: Callable[..., R]) -> Callable[..., R]:
    """Let a typer command take flag groups (dataclass parameters): typer sees their fields as the
    command's options (keyword-only, in order), shown in --help under the group's ``PANEL`` title, and
    the command is called with the groups built."""
    hints = typing.get_type_hints(command, include_extras=True)
    groups: dict[str, type[Any]] = {}
    params: list[inspect.Parameter] = []
    for p in inspect.signature(command).parameters.values():
        hint = hints[p.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            groups[p.name] = hint
            fields = typing.get_type_hints(hint, include_extras=True)
            panel = getattr(hint, "PANEL", None)
            params += [
                inspect.Parameter(
                    f.name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=_default(f),
                    annotation=_in_panel(fields[f.name], panel),
                )
                for f in dataclasses.fields(hint)
            ]
        else:
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hint))

    @functools.wraps(command)
    def call(**flags: Any) -> R:
        for name, group in groups.items():
            flags[name] = group(**{f.name: flags.pop(f.name) for f in dataclasses.fields(group)})
        return command(**flags)

    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    call.__annotations__ = {p.name: p.annotation for p in params}
    return call


def _in_panel(annotation: Any, panel: str | None) -> Any:
    """``annotation`` with its typer option shown under ``panel`` in --help (a copy: the group's own is shared)."""
    if panel is None:
        return annotation
    base, *meta = typing.get_args(annotation)
    shown = []
    for m in meta:
        if isinstance(m, ParameterInfo) and m.rich_help_panel is None:
            m = copy.copy(m)
            m.rich_help_panel = panel
        shown.append(m)
    return Annotated[(base, *shown)]


def _default(f: dataclasses.Field[Any]) -> Any:
    return inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default  # no default: required


# -- single flags ---------------------------------------------------------------------------------

TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="seconds to wait for a call's answer", rich_help_panel="Connection")
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace output files that exist")]
#: a dubbed video's loudness (issue 100 item 4): a preset, or a number of LUFS
LoudnessOpt = Annotated[
    str,
    typer.Option(
        "--loudness",
        help="each dubbed track brought to ebu_r128 (-23 LUFS), atsc_a85 (-24 LKFS), streaming (-14 LUFS) or a "
        "number of LUFS (e.g. -16); default: as made",
    ),
]
TruePeakOpt = Annotated[
    float | None,
    typer.Option("--true-peak", help="with --loudness: the true-peak ceiling in dBTP (default: the preset's, or -1)"),
]
#: the presets ``--loudness`` names (the server's: translate_svc.audio.loudness.PRESETS)
LOUDNESS_PRESETS = ("ebu_r128", "atsc_a85", "streaming")


def loudness_value(text: str, true_peak: float | None) -> str | float | None:
    """``--loudness`` as the SDK takes it: a preset's name, a number of LUFS, or None (unset)."""
    if not text:
        if true_peak is not None:
            raise CliError("--true-peak needs --loudness (a preset or a number of LUFS)")
        return None
    if text in LOUDNESS_PRESETS:
        return text
    try:
        return float(text)
    except ValueError:
        raise CliError(f"--loudness {text}: {', '.join(LOUDNESS_PRESETS)} or a number of LUFS such as -16") from None


#: a job's speaker labels and their voices (issue 100: a voice per speaker)
SpeakersOpt = Annotated[
    int,
    typer.Option(
        "--speakers",
        help="label each segment with its speaker, telling apart at most this many; with 2 or more each speaker "
        "is dubbed in a voice of its own",
    ),
]
SpeakerVoiceOpt = Annotated[
    list[str] | None,
    typer.Option("--speaker-voice", help="LABEL=VOICE: speaker LABEL dubbed in voice VOICE (repeatable)"),
]
OneVoiceOpt = Annotated[bool, typer.Option("--one-voice", help="every speaker dubbed in one voice")]
SubtitlesOpt = Annotated[
    Path | None,
    typer.Option(
        "--subtitles",
        help="an SRT or WebVTT file in the --to language, voiced at its timings instead of translating the audio",
    ),
]


def check_subtitles(subtitles: Path | None, targets: Sequence[str], speakers: int, voices: object) -> None:
    """What ``--subtitles`` cannot go with, refused before anything is sent."""
    if subtitles is None:
        return
    if not subtitles.is_file():
        raise CliError(f"--subtitles {subtitles}: no such file")
    if len(targets) != 1 or speakers or voices is not None:
        raise CliError("--subtitles: one --to language (theirs), without --speakers or a voice per speaker")


def speaker_voices_value(pairs: Sequence[str] | None, one: bool) -> str | dict[int, int] | None:
    """``--speaker-voice`` and ``--one-voice`` as the SDK takes them (``submit_job(speaker_voices=)``)."""
    if one and pairs:
        raise CliError("--one-voice or --speaker-voice, not both")
    if one:
        return "one"
    voices: dict[int, int] = {}
    for pair in pairs or ():
        label, _, voice = pair.partition("=")
        if not (label.strip().isdigit() and voice.strip().isdigit()):
            raise CliError(f"--speaker-voice {pair}: LABEL=VOICE, two whole numbers (e.g. 2=7)")
        voices[int(label)] = int(voice)
    return voices or None


# -- languages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LanguageFlags:
    PANEL: ClassVar[str] = "Languages"  # its --help section

    to: Annotated[str, typer.Option("--to", help="target languages, comma-separated: spa,fra or es,fr")] = ""
    source: Annotated[
        str,
        typer.Option(
            "--from",
            help="source language (enables the transcript); auto: detect each segment's language, "
            "auto:en,es,fr: among these (needs the server's language identifier)",
        ),
    ] = ""
    asr_only: Annotated[
        bool, typer.Option("--asr-only", help="the transcript alone, no translation (needs --from; no --to)")
    ] = False
    conversation: Annotated[
        str,
        typer.Option(
            "--conversation",
            help="two or more people in one input, comma-separated: eng,spa or en,es. Each segment's language is "
            "identified among these and it is translated into the others (in place of --to and --from; needs "
            "the server's language identifier); each result shows its source language",
        ),
    ] = ""
    terms_file: Annotated[
        Path | None,
        typer.Option(
            "--terms",
            help="names and jargon to get right, one per line: `Acme Cloud` or `boost 5: Acme` (boost, "
            "weight 0-10), `keep: Acme` (do not translate); # comments",
        ),
    ] = None
    glossary_file: Annotated[
        Path | None,
        typer.Option(
            "--glossary",
            help="phrases to translate as you say (a glossary): a TSV file, one entry a line, its fields "
            "separated by tabs: the source phrase, its translation, the target language (may be left out when "
            "--to names one) and `ignore-case` (optional: else matched in the case written); # comments",
        ),
    ] = None

    def terms(self, targets: Sequence[str] = (), langs: Languages | None = None) -> list[Term]:
        """The --terms file's terms and the --glossary file's entries for ``targets`` (the call's
        model codes; ``langs``: the server's languages, to map a line's language)."""
        from translate_svc.client_cli.glossary import read_glossary
        from translate_svc.client_cli.lang import read_terms

        terms = read_terms(self.terms_file) if self.terms_file is not None else []
        return terms + (read_glossary(self.glossary_file, targets, langs) if self.glossary_file is not None else [])

    lang_check: Annotated[
        bool,
        typer.Option(
            "--lang-check/--no-lang-check",
            help="check --from/--to against the server's languages (ListLanguages) and map BCP-47 tags; "
            "off: send model codes as given",
        ),
    ] = True


# -- speech and segmentation ----------------------------------------------------------------------


@dataclass(frozen=True)
class VoiceFlags:
    PANEL: ClassVar[str] = "Translated speech"  # its --help section

    speaker_id: Annotated[
        int | None, typer.Option("--speaker-id", "--voice", min=0, help="vocoder voice (default 0)")
    ] = None
    speech_rate: Annotated[
        int | None,
        typer.Option(
            "--speech-rate",
            help=f"sample rate of the speech written, {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} (default 16000)",
        ),
    ] = None

    def output(self, *, speech: bool, transcript: bool) -> OutputOptions:
        """What each segment should carry, as the SDK takes it."""
        from translate_svc.client import OutputOptions

        if self.speech_rate is not None and not MIN_SAMPLE_RATE_HZ <= self.speech_rate <= MAX_SAMPLE_RATE_HZ:
            raise CliError(
                f"--speech-rate {self.speech_rate}: use a rate between {MIN_SAMPLE_RATE_HZ} and {MAX_SAMPLE_RATE_HZ} Hz"
            )
        return OutputOptions(
            speech=speech, transcript=transcript, speech_sample_rate=self.speech_rate or 0, speaker_id=self.speaker_id
        )


@dataclass(frozen=True)
class VadFlags:
    """``VadOptions``' fields as ``--vad-*`` flags."""

    PANEL: ClassVar[str] = "Segmentation (VAD)"  # its --help section

    vad_threshold: Annotated[
        float | None, typer.Option("--vad-threshold", help="speech probability threshold, 0..1 (server default 0.5)")
    ] = None
    vad_min_silence_ms: Annotated[
        int | None, typer.Option("--vad-min-silence-ms", help="silence that ends a segment (default 100)")
    ] = None
    vad_speech_pad_ms: Annotated[
        int | None, typer.Option("--vad-speech-pad-ms", help="audio kept around speech (default 30)")
    ] = None
    vad_min_speech_ms: Annotated[
        int | None, typer.Option("--vad-min-speech-ms", help="shorter speech is dropped (default 250)")
    ] = None
    vad_max_segment_ms: Annotated[
        int | None, typer.Option("--vad-max-segment-ms", help="longer speech is split (default 15000)")
    ] = None
    vad_eagerness: Annotated[
        str | None,
        typer.Option(
            "--vad-eagerness",
            help="end turns on meaning: low, medium, high or auto (the end-of-turn model at each pause); "
            "'' the silence rule (default: the server's)",
        ),
    ] = None
    vad_eager_threshold: Annotated[
        float | None,
        typer.Option(
            "--vad-eager-threshold",
            help="with --vad-eagerness: a pause the model reads at least this likely complete starts its "
            "segment's translation at once (printed as an eager end, then resumed if speech goes on)",
        ),
    ] = None

    def options(self) -> VadOptions | None:
        """The SDK's ``VadOptions``; None when no flag is given (the server's defaults)."""
        from translate_svc.client import VadOptions

        given = {f.name.removeprefix("vad_"): getattr(self, f.name) for f in dataclasses.fields(self)}
        return None if all(v is None for v in given.values()) else VadOptions(**given)


# -- input audio ----------------------------------------------------------------------------------

#: --raw-encoding's names (and common aliases) -> the SDK's
RAW_ENCODINGS: Final[dict[str, StreamEncoding]] = {
    "linear16": "linear16",
    "s16le": "linear16",
    "pcm16": "linear16",
    "float32": "float32",
    "f32le": "float32",
    "mulaw": "mulaw",
    "ulaw": "mulaw",
    "alaw": "alaw",
}


@dataclass(frozen=True)
class RawFlags:
    PANEL: ClassVar[str] = "Headerless input"  # its --help section

    raw_rate: Annotated[
        int | None,
        typer.Option(
            "--raw-rate",
            help=f"the input is headerless PCM at this rate ({MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ})",
        ),
    ] = None
    raw_channels: Annotated[int, typer.Option("--raw-channels", help="channels of headerless input (1 or 2)")] = 1
    raw_encoding: Annotated[
        str, typer.Option("--raw-encoding", help="linear16 (s16le), float32 (f32le), mulaw or alaw")
    ] = "linear16"

    def format(self) -> AudioFormat | None:
        """The SDK's ``AudioFormat`` of headerless input; None for files with a header (no --raw-rate)."""
        from translate_svc.client import AudioFormat

        enc = RAW_ENCODINGS.get(self.raw_encoding.strip().lower())
        if enc is None:
            raise CliError(
                f"--raw-encoding {self.raw_encoding!r}: use linear16 (s16le), float32 (f32le), mulaw or alaw"
            )
        if self.raw_rate is None:
            return None
        if not MIN_SAMPLE_RATE_HZ <= self.raw_rate <= MAX_SAMPLE_RATE_HZ:
            raise CliError(
                f"--raw-rate {self.raw_rate}: use a rate between {MIN_SAMPLE_RATE_HZ} and {MAX_SAMPLE_RATE_HZ} Hz"
            )
        if self.raw_channels not in (1, 2):
            raise CliError(f"--raw-channels {self.raw_channels}: use 1 or 2")
        return AudioFormat(enc, self.raw_rate, self.raw_channels)


# -- the connection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """Where and how to reach the server, checked: the SDK client's arguments."""

    server: str
    tls: TlsOptions | None
    token: str | None
    timeout_s: float
    allow_plaintext_token: bool = False

    def client(self) -> AsyncTranslateClient:
        from translate_svc.client import AsyncTranslateClient

        try:
            return AsyncTranslateClient(
                self.server,
                tls=self.tls,
                token=self.token,
                timeout_s=self.timeout_s,
                allow_plaintext_token=self.allow_plaintext_token,
            )
        except ValueError as e:
            message = str(e).replace("allow_plaintext_token=True", "--allow-plaintext-token")
            message = message.replace("tls=TlsOptions(...)", "--tls or --tls-ca")
            raise CliError(f"--server {self.server!r}: {message}") from None


def readable(path: Path, flag: str) -> Path:
    if not path.is_file() or not os.access(path, os.R_OK):
        raise CliError(f"{flag} {path}: no such readable file")
    return path


@dataclass(frozen=True)
class ConnectionFlags:
    """--server, TLS and token (env TRANSLATE_SVC_ADDRESS, _TLS_*, _TOKEN, _TOKEN_FILE)."""

    PANEL: ClassVar[str] = "Connection"  # its --help section

    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar="TRANSLATE_SVC_ADDRESS",
            help="HOST:PORT, several comma-separated (tried in turn), or a gRPC target (dns:///svc:50051)",
        ),
    ] = "localhost:50051"
    tls: Annotated[bool, typer.Option("--tls", help="TLS with the system's CA roots (--tls-ca implies TLS)")] = False
    tls_ca: Annotated[
        Path | None, typer.Option("--tls-ca", envvar="TRANSLATE_SVC_TLS_CA", help="PEM CA bundle to trust: TLS")
    ] = None
    tls_cert: Annotated[
        Path | None, typer.Option("--tls-cert", envvar="TRANSLATE_SVC_TLS_CERT", help="PEM client certificate (mTLS)")
    ] = None
    tls_key: Annotated[
        Path | None, typer.Option("--tls-key", envvar="TRANSLATE_SVC_TLS_KEY", help="PEM key of --tls-cert")
    ] = None
    tls_server_name: Annotated[
        str | None,
        typer.Option(
            "--tls-server-name",
            envvar="TRANSLATE_SVC_TLS_SERVER_NAME",
            help="name to check in the server's certificate (when --server is an IP or a tunnel)",
        ),
    ] = None
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="TRANSLATE_SVC_TOKEN", help="bearer token (prefer --token-file: argv is visible)"
        ),
    ] = None
    token_file: Annotated[
        Path | None, typer.Option("--token-file", envvar="TRANSLATE_SVC_TOKEN_FILE", help="file holding the token")
    ] = None
    allow_plaintext_token: Annotated[
        bool,
        typer.Option(
            "--allow-plaintext-token",
            help="send the token without TLS to a non-loopback server (only on a network you trust)",
        ),
    ] = False

    def connection(self, timeout_s: float) -> Connection:
        """The flags checked (files readable, token printable), as the SDK client's arguments."""
        from translate_svc.client import TlsOptions

        if not self.server.strip():
            raise CliError("--server is empty: give HOST:PORT")
        token = self._token()
        if (self.tls_cert is None) != (self.tls_key is None):
            raise CliError("--tls-cert and --tls-key go together (a client certificate needs its key)")
        files = {"--tls-ca": self.tls_ca, "--tls-cert": self.tls_cert, "--tls-key": self.tls_key}
        for flag, path in files.items():
            if path is not None:
                readable(path, flag)
        use_tls = self.tls or any(files.values()) or self.tls_server_name is not None
        tls = TlsOptions(self.tls_ca, self.tls_cert, self.tls_key, self.tls_server_name) if use_tls else None
        if timeout_s <= 0:
            raise CliError("--timeout must be positive")
        return Connection(self.server.strip(), tls, token, timeout_s, self.allow_plaintext_token)

    def _token(self) -> str | None:
        token, path = self.token, self.token_file
        if token is not None and path is not None:
            raise CliError("give either --token or --token-file, not both")
        if path is not None:
            readable(path, "--token-file")
            try:
                token = path.read_text().strip()
            except (OSError, UnicodeDecodeError) as e:
                raise CliError(f"--token-file {path}: cannot read it ({e})") from None
            if not token:
                raise CliError(f"--token-file {path} is empty")
        if token is not None:
            token = token.strip()
            if not token or any(c.isspace() or not c.isprintable() for c in token):
                raise CliError("the token must be printable characters without spaces")
        return token
