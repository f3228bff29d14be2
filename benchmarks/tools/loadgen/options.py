"""What a load-generator run is asked to do (``RunOptions``), and the server settings an
in-process run builds from it: loadgen's options that set a server field, by the names builds
have used."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S

DEFAULT_FILES = "silero_test.wav,jfk.flac"
DEFAULT_CHUNK_MS = 100
ENCODINGS = ("linear16", "opus")


#: loadgen option -> the settings field that takes it, by the names builds have used (first found wins).
#: An option whose field this build lacks is refused with exit code 2.
SETTINGS_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "forced_tokens_per_s": (("model", "forced_text_tokens_per_s"), ("model", "forced_tokens_per_s")),
    "forced_units_per_s": (("model", "forced_units_per_s"),),
    "cpu_threads": (("model", "cpu_threads"),),
    "warmup": (("model", "warmup"),),
}


@dataclass(frozen=True)
class RunOptions:
    streams: int
    model: Path
    device: str
    dtype: str
    max_batch_size: int
    max_wait_ms: float
    speed: float
    stagger_s: float
    chunk_ms: int
    saturation_chunk_ms: int
    files: tuple[str, ...]
    targets: tuple[str, ...]
    speech: bool
    configs: tuple[str, ...]
    slo_ms: float
    behind_s: float
    timeout_s: float
    cpu_threads: int | None
    forced_tokens_per_s: float | None
    forced_units_per_s: float | None
    shift_s: float = DEFAULT_SHIFT_S
    target: str | None = None  # host:port of an external server; None: in-process servers
    server_pid: int | None = None  # that server's process, to read its CPU time
    encoding: str = "linear16"
    interim_ms: int = 0  # StreamingConfig.interim_interval_ms (0: no live captions)
    flood_streams: int = 0
    flood_speed: float = 0.0
    warmup: str | None = None  # model.warmup of the in-process server (None: its default)
    vad_threshold: float | None = None  # StreamingConfig.vad.threshold for every stream
    vad_min_speech_ms: int | None = None  # StreamingConfig.vad.min_speech_ms for every stream
    vad_eagerness: str | None = None  # StreamingConfig.vad.eagerness for every stream (a semantic end of turn)
    vad_eager_threshold: float | None = None  # StreamingConfig.vad.eager_threshold (an eager end of turn)
    stream_s: float = 0.0  # cut or loop every stream's audio to this length (0: the file's)
    saturation: bool = True


def settings_field_for(option: str) -> tuple[str, str] | None:
    """(section, field) of the settings field that takes loadgen's ``option``, if this build has one."""
    from translate_svc.settings import Settings

    for section, name in SETTINGS_FIELDS[option]:
        info = Settings.model_fields.get(section)
        fields = getattr(info.annotation, "model_fields", None) if info is not None else None
        if fields is not None and name in fields:
            return (section, name)
    return None


def build_settings(opts: RunOptions, max_batch_size: int) -> Any:
    from translate_svc.settings import Settings

    over: dict[str, Any] = {
        "model": {"path": opts.model, "device": opts.device, "dtype": opts.dtype},
        "server": {"host": "127.0.0.1", "port": 0, "grace_s": 2.0, "metrics_port": None},
        "engine": {"max_batch_size": max_batch_size, "max_wait_ms": opts.max_wait_ms},
    }
    if max_batch_size == 1:  # batching off: one segment at a time, not rows joining a running decode
        over["engine"]["core"] = "batch"
    if opts.streams + opts.flood_streams > Settings().limits.max_streams:
        over["limits"] = {"max_streams": opts.streams + opts.flood_streams}
    for option in SETTINGS_FIELDS:
        value = getattr(opts, option)
        if value is None:
            continue
        where = settings_field_for(option)
        if where is None:
            raise ValueError(f"--{option.replace('_', '-')}: not supported by this build")
        over.setdefault(where[0], {})[where[1]] = value
    return Settings.model_validate(over)
