"""Load generator: N concurrent real gRPC streams against a translate_svc server.

Run from the repository root. Two ways:

    # in-process (default): a fresh server per config, batching ON vs OFF, every batch recorded
    python -m benchmarks.loadgen --streams 16 --model model_cache/test-model --json out/bench.json
    # an external server (one config, named "target"); with --server-pid its CPU is read from /proc
    python -m benchmarks.loadgen --target 127.0.0.1:50051 --server-pid 1234 --streams 50 --no-saturation

**In-process** (no ``--target``): for each config (batching ON with ``--max-batch-size``/
``--max-wait-ms``, then batching OFF = ``max_batch_size 1``) it starts a fresh ``TranslateServer`` on
127.0.0.1 port 0 in this process (so its ``on_batch`` callback records every batch). Server,
sessions and clients then share one asyncio loop; the model runs on the engine's own model thread
and the VAD on the server's VAD thread, as in the real server.

**External** (``--target host:port``): no server is started; this process only drives the one at
``host:port`` (a config named "target"). Batch statistics cannot be seen from outside: the report
says "not measured" (``null`` in the JSON), never zero. With ``--server-pid`` (a server on this
machine) the server's CPU time (utime + stime from /proc/PID/stat, and by thread name) is read
before, during (every 0.5 s) and after the real-time phase: server cores used and CPU µs per audio
message. This process's own CPU use is reported beside it, to show the client was not the limit
(``benchmarks/frontend.py`` runs the server and this client on separate cores).

Either way the streams are real ``StreamingTranslate`` calls, one gRPC channel per stream, in two
phases:

1. **real time**: N streams, each a real speech file paced at ``--speed`` x real time, starts
   spread uniformly over ``--stagger-s`` (stream i starts at ``i * stagger / N``). When streams
   outnumber files, each further copy of a file starts ``--shift-s`` seconds later into it (and
   wraps), so streams cut different segments: identical copies would repeat every tensor shape and
   flatter per-shape caches. ``--stream-s`` cuts or loops every stream's audio to that length.
   Audio goes as ``--encoding linear16`` (16 kHz mono, ``--chunk-ms`` per message, default 100) or
   ``opus`` (one 20 ms Opus packet per message on the 48 kHz timeline, libopus VoIP mode, 32 kbit/s;
   every clip is encoded once before any stream starts). Per segment: the latency from "audio up to
   ``end_ms`` was sent" to the ``segment`` response, and the server's VAD wait. With
   ``--interim-ms`` (live captions) the streams ask for ``interim`` results, and the report adds the
   first-caption latency per segment. ``--flood-streams K --flood-speed S`` adds K streams sending
   at S x real time beside the N, for as long as the N run; they are reported separately (their
   throughput, how they ended, e.g. RESOURCE_EXHAUSTED, which is allowed and counted).
2. **saturation** (``--no-saturation`` skips it): the same N streams at once, unpaced, in
   ``--saturation-chunk-ms`` chunks (Opus: its 20 ms packets): capacity in audio s / wall s.

Client pacing uses ``asyncio.sleep``, so a paced send is late only when this process's loop is busy
-- ``max_send_lag_ms`` says by how much. Latency is measured against the *scheduled* send time, so
such lateness counts against latency, as it would for a live speaker. Every definition is in
``benchmarks/report.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import grpc
import numpy as np
import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from benchmarks import report
from benchmarks.report import BatchObs, InterimObs, ProcCpu, SegmentObs, StreamObs
from translate_svc.client_cli.load.clips import DEFAULT_SHIFT_S, SAMPLE_RATE, fit_pcm, rotate_pcm, shift_samples

logger = logging.getLogger("benchmarks.loadgen")

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
DEFAULT_FILES = "silero_test.wav,jfk.flac"
DEFAULT_TEST_MODEL = REPO / "model_cache" / "test-model"
DEFAULT_CHUNK_MS = 100
#: Opus: one packet per message, 20 ms of audio on a 48 kHz timeline
OPUS_RATE = 48000
OPUS_FRAME = 960
OPUS_FRAME_MS = 20
OPUS_BITRATE = 32000
ENCODINGS = ("linear16", "opus")
#: how often the CPU of the server (--server-pid) and of this process is sampled during a phase
CPU_SAMPLE_S = 0.5
#: loadgen option -> the settings field that takes it, by the names builds have used (first found wins).
#: An option whose field this build lacks is refused with exit code 2.
SETTINGS_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "forced_tokens_per_s": (("model", "forced_text_tokens_per_s"), ("model", "forced_tokens_per_s")),
    "forced_units_per_s": (("model", "forced_units_per_s"),),
    "cpu_threads": (("model", "cpu_threads"),),
}

app = typer.Typer(add_completion=False, help=__doc__, pretty_exceptions_enable=False)
console = Console(width=None if sys.stdout.isatty() else 132)  # piped: wide enough for one line a row


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
    vad_threshold: float | None = None  # StreamingConfig.vad.threshold for every stream
    vad_min_speech_ms: int | None = None  # StreamingConfig.vad.min_speech_ms for every stream
    stream_s: float = 0.0  # cut or loop every stream's audio to this length (0: the file's)
    saturation: bool = True


@dataclass(frozen=True)
class Clip:
    name: str
    pcm: np.ndarray  # 16 kHz mono int16
    packets: tuple[bytes, ...] | None = field(default=None, compare=False)  # OPUS: one per 20 ms

    @property
    def audio_ms(self) -> float:
        if self.packets is not None:
            return float(len(self.packets) * OPUS_FRAME_MS)
        return len(self.pcm) * 1000.0 / SAMPLE_RATE


# -- settings -------------------------------------------------------------------------------


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


# -- audio ----------------------------------------------------------------------------------


def opus_packets(pcm: np.ndarray) -> tuple[bytes, ...]:
    """16 kHz int16 mono -> Opus packets of 20 ms each at 48 kHz (libopus, VoIP mode, 32 kbit/s).

    Every packet the encoder gives is kept (its flush included), so the stream's timeline is
    ``len(packets) * 20`` ms: the clip plus the encoder's delay, rounded up to whole frames.
    """
    import av
    import soxr
    from av.audio.frame import AudioFrame

    x = soxr.resample(pcm.astype(np.float32) / 32768.0, SAMPLE_RATE, OPUS_RATE) if len(pcm) else np.zeros(0)
    s16 = np.clip(np.round(np.asarray(x) * 32768.0), -32768, 32767).astype(np.int16)
    padded = np.zeros(math.ceil(len(s16) / OPUS_FRAME) * OPUS_FRAME, dtype=np.int16)
    padded[: len(s16)] = s16
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate = OPUS_RATE
    enc.layout = "mono"
    enc.format = "s16"
    enc.bit_rate = OPUS_BITRATE
    enc.time_base = Fraction(1, OPUS_RATE)
    enc.options = {"application": "voip", "frame_duration": "20"}
    enc.open()
    packets: list[bytes] = []
    for start in range(0, len(padded), OPUS_FRAME):
        frame = AudioFrame.from_ndarray(padded[None, start : start + OPUS_FRAME], format="s16", layout="mono")
        frame.sample_rate = OPUS_RATE
        frame.pts = start
        packets.extend(bytes(p) for p in enc.encode(frame))
    packets.extend(bytes(p) for p in enc.encode(None))
    return tuple(packets)


def fit_clip(clip: Clip, seconds: float) -> Clip:
    """The clip cut, or looped, to ``seconds`` of audio (0: as it is)."""
    n = round(seconds * SAMPLE_RATE)
    if n <= 0 or n == len(clip.pcm) or not len(clip.pcm):
        return clip
    return Clip(f"{clip.name}[{seconds:g}s]", fit_pcm(clip.pcm, n))


def encode_clips(clips: list[Clip], encoding: str) -> list[Clip]:
    """OPUS: every distinct clip encoded once (streams sharing a clip share its packets)."""
    if encoding != "opus":
        return clips
    done: dict[str, Clip] = {}
    out = []
    for c in clips:
        if c.name not in done:
            done[c.name] = Clip(c.name, c.pcm, opus_packets(c.pcm))
        out.append(done[c.name])
    return out


# -- one stream -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamParams:
    """What every stream of a run asks for."""

    targets: tuple[str, ...]
    speech: bool
    encoding: str = "linear16"
    interim_ms: int = 0
    vad_threshold: float | None = None
    timeout_s: float = 1800.0
    vad_min_speech_ms: int | None = None

    @classmethod
    def of(cls, opts: RunOptions) -> StreamParams:
        return cls(
            opts.targets,
            opts.speech,
            opts.encoding,
            opts.interim_ms,
            opts.vad_threshold,
            opts.timeout_s,
            opts.vad_min_speech_ms,
        )


def stream_config(params: StreamParams) -> Any:
    from translate_svc.api.v1 import translate_pb2 as pb

    if params.encoding == "opus":
        fmt = pb.AudioFormat(encoding=pb.OPUS, sample_rate_hz=OPUS_RATE, channels=1)
    else:
        fmt = pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=SAMPLE_RATE, channels=1)
    cfg = pb.StreamingConfig(
        format=fmt,
        target_languages=list(params.targets),
        output=pb.OutputOptions(text=True, speech=params.speech, transcript=False),
        interim_interval_ms=params.interim_ms,
    )
    if params.vad_threshold is not None:
        cfg.vad.threshold = params.vad_threshold
    if params.vad_min_speech_ms is not None:
        cfg.vad.min_speech_ms = params.vad_min_speech_ms
    return cfg


async def drive_stream(
    target: str,
    index: int,
    clip: Clip,
    params: StreamParams,
    *,
    chunk_ms: int,
    speed: float | None,
    start_at: float,
    on_started: Callable[[Any], None] | None = None,
    counter: list[int] | None = None,
    stop: asyncio.Event | None = None,
    keep_sent: bool = False,
) -> StreamObs:
    """One StreamingTranslate call; ``speed=None`` sends as fast as gRPC takes it.

    ``counter[0]`` counts the audio messages sent (all streams of a phase share it); ``stop`` ends
    the sending early (a half-close, as if the audio ended); ``keep_sent`` records the actual send
    time of every message (flood streams: their latency is measured from it).
    """
    from translate_svc.api.v1 import translate_pb2 as pb
    from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc

    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    packets = clip.packets
    if packets is not None:
        chunk_ms = OPUS_FRAME_MS
        n_msgs = len(packets)
    else:
        step = SAMPLE_RATE * chunk_ms // 1000
        n_msgs = math.ceil(len(clip.pcm) / step)
    total_ms = clip.audio_ms
    state = {"start": time.perf_counter(), "last_audio": math.nan, "lag": 0.0}
    sent: list[float] = []
    n_sent = 0
    count = counter if counter is not None else [0]

    async def requests() -> AsyncIterator[Any]:
        nonlocal n_sent
        yield pb.StreamingTranslateRequest(config=stream_config(params))
        for k in range(n_msgs):
            if stop is not None and stop.is_set():
                return
            if speed is not None:
                due = state["start"] + min((k + 1) * chunk_ms, total_ms) / 1000.0 / speed
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                state["lag"] = max(state["lag"], (time.perf_counter() - due) * 1000.0)
                state["last_audio"] = due
            else:
                state["last_audio"] = time.perf_counter()
            data = packets[k] if packets is not None else clip.pcm[k * step : (k + 1) * step].tobytes()
            if keep_sent:
                sent.append(time.perf_counter())
            n_sent += 1
            count[0] += 1
            yield pb.StreamingTranslateRequest(audio=data)

    segments: list[SegmentObs] = []
    interims: list[InterimObs] = []
    ended: float | None = None
    segments_total: int | None = None
    error: str | None = None
    # a connection per stream, as separate callers have (gRPC would share one among equal
    # channels): a node of several front-end workers then gets them spread by the kernel
    ch = grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.use_local_subchannel_pool", 1),
        ],
    )
    try:
        stub = pb_grpc.TranslatorStub(ch)
        state["start"] = time.perf_counter()
        call = stub.StreamingTranslate(requests(), timeout=params.timeout_s)
        async for resp in call:
            now = time.perf_counter()
            kind = resp.WhichOneof("response")
            if kind == "segment":
                s = resp.segment
                segments.append(
                    SegmentObs(
                        segment_id=s.segment_id,
                        end_ms=s.end_ms,
                        arrival_s=now,
                        ok=s.status.code == 0,
                        speech_ms=sum(t.audio.duration_ms for t in s.translations),
                        server_total_ms=s.timing.total_ms,
                        vad_wait_ms=s.timing.vad_wait_ms,
                        failure=None if s.status.code == 0 else _code_name(s.status.code),
                        start_ms=s.start_ms,
                    )
                )
            elif kind == "interim":
                it = resp.interim
                interims.append(InterimObs(it.segment_id, it.start_ms, it.end_ms, now))
            elif kind == "ended":
                ended = now
                segments_total = resp.ended.segments_total
            elif kind == "started" and on_started is not None:
                on_started(resp.started)
    except grpc.aio.AioRpcError as e:  # recorded; the other streams go on
        error = f"{e.code().name}: {e.details()}"
        logger.warning("stream %d (%s) failed: %s", index, clip.name, error)
    finally:
        await ch.close()
    return StreamObs(
        index=index,
        file=clip.name,
        audio_ms=total_ms,
        start_s=state["start"],
        last_audio_s=state["last_audio"],
        ended_s=ended,
        segments=tuple(segments),
        error=error,
        max_send_lag_ms=state["lag"],
        interims=tuple(interims),
        segments_total=segments_total,
        audio_messages=n_sent,
        chunk_ms=float(chunk_ms),
        sent_s=tuple(sent),
    )


# -- CPU -------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants (a ``serve --workers N`` node: the supervisor, the engine
    process and the workers), from /proc/<pid>/task/<tid>/children."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except (OSError, ValueError):
                continue  # gone meanwhile
    return out


def read_proc_cpu(pid: int, *, messages: int = 0, threads: bool = False) -> ProcCpu | None:
    """A process's CPU seconds (utime + stime) now, its live descendants' included, and their
    threads' by name; None if it is gone."""
    hz = os.sysconf("SC_CLK_TCK")
    t = time.perf_counter()
    try:
        _, cpu = report.parse_proc_stat(Path(f"/proc/{pid}/stat").read_text(), hz)
    except (OSError, ValueError, IndexError):
        return None
    pids = process_tree(pid)
    for child in pids[1:]:
        try:
            cpu += report.parse_proc_stat(Path(f"/proc/{child}/stat").read_text(), hz)[1]
        except (OSError, ValueError, IndexError):
            continue  # it just ended
    named: list[tuple[str, float]] = []
    if threads:
        for p in pids:
            for task in Path(f"/proc/{p}/task").glob("*/stat"):
                try:
                    named.append(report.parse_proc_stat(task.read_text(), hz))
                except (OSError, ValueError, IndexError):
                    continue  # the thread just ended
    return ProcCpu(t, cpu, messages, tuple(named))


def own_cpu(messages: int = 0) -> ProcCpu:
    t = os.times()
    return ProcCpu(time.perf_counter(), t.user + t.system, messages)


# -- one phase ------------------------------------------------------------------------------


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


# -- one config -----------------------------------------------------------------------------


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
        name, realtime["segments"], realtime["segments_expected"], _fmt(realtime["latency_ms"]["p95"]),
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
            name, saturation["audio_s"], _fmt(saturation["wall_s"], 1), _fmt(saturation["throughput"], 2),
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


def _phase_json(m: dict[str, Any], opts: RunOptions) -> dict[str, Any]:
    """The per-stream and per-batch details of ``measure``'s phases."""
    rt: PhaseResult = m["rt"]
    sat: PhaseResult | None = m["sat"]
    streams: dict[str, Any] = {"realtime": [_stream_json(s, opts) for s in rt.streams]}
    if rt.flood:
        streams["flood"] = [_stream_json(s, None) for s in rt.flood]
    if sat is not None:
        streams["saturation"] = [_stream_json(s, None) for s in sat.streams]
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


def _check_limits(limits: Any, opts: RunOptions) -> None:
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
        _check_limits(langs.limits, opts)
        model = {
            "name": langs.model.name,
            "revision": langs.model.revision,
            "is_test_model": langs.model.is_test_model,
            "parameters": sum(p.numel() for p in stages.model.parameters()),
            "device": str(stages.device),
            "dtype": str(stages.dtype).removeprefix("torch."),
            "device_name": _device_name(stages.device),
            "torch_threads": _torch_threads(stages.device),
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
        **_phase_json(m, opts),
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
    _check_limits(langs.limits, opts)
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
        **_phase_json(m, opts),
    }


def _stream_json(s: StreamObs, opts: RunOptions | None) -> dict[str, Any]:
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


def _torch_threads(device: Any) -> int:
    """torch's CPU threads once the runner has set them; warns when they leave no CPU to the loop.

    The event loop (gRPC, sessions, VAD) needs a CPU too. With one OpenMP thread per CPU the pool's
    spin-waiting workers fight the loop for the cores and small ops stall for scheduler slices: on
    a 2-CPU machine the test model ran 2-25x slower, varying from run to run.
    """
    import torch

    n = torch.get_num_threads()
    cpus = _cpus()
    if device.type == "cpu" and n >= cpus and os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        logger.warning(
            "torch uses %d threads on %d CPUs shared with the event loop: timings may be slow and noisy "
            "(try --cpu-threads %d)",
            n, cpus, max(1, cpus - 1),
        )  # fmt: skip
    return n


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_snapshot() -> report.CpuSnapshot | None:
    """Busy CPU seconds of the whole machine (/proc/stat) and of this process, or None off Linux."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    hz = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]  # idle + iowait
    t = os.times()
    return report.CpuSnapshot(machine_busy_s=(sum(values) - idle) / hz, process_s=t.user + t.system)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    return _cpu_model()


def machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": _cpus(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS") if k in os.environ},
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
        info["cuda_version"] = torch.version.cuda
    return info


def _git_state() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""

    return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(git("status", "--porcelain"))}


def load_clips(files: tuple[str, ...]) -> list[Clip]:
    from translate_svc.client_cli.decode import load_pcm16k

    clips = []
    for f in files:
        path = Path(f)
        if not path.is_file():
            path = SHARED_AUDIO / f
        if not path.is_file():
            raise typer.BadParameter(
                f"audio file {f!r} not found (looked in . and {SHARED_AUDIO})", param_hint="--files"
            )
        clips.append(Clip(path.name, load_pcm16k(path)))
    return clips


def _code_name(code: int) -> str:
    return next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))


def stream_clips(clips: list[Clip], n: int, shift_s: float) -> list[Clip]:
    """Stream i plays clip ``i % len(clips)``; its k-th copy rotated to start ``k * shift_s`` in."""
    out = []
    for i in range(n):
        clip, k = clips[i % len(clips)], i // len(clips)
        shift = shift_samples(len(clip.pcm), k, shift_s)
        if shift == 0:
            out.append(clip)
        else:
            out.append(Clip(f"{clip.name}@{shift / SAMPLE_RATE:.2f}s", rotate_pcm(clip.pcm, shift)))
    return out


def flood_clips_for(clips: list[Clip], opts: RunOptions, assign: list[Clip]) -> list[Clip]:
    """Flood stream j plays the clip a further stream N+j would, looped to outlast the real-time phase."""
    if not opts.flood_streams:
        return []
    longest_s = max((c.audio_ms for c in assign), default=0.0) / 1000.0
    need_s = opts.flood_speed * (longest_s / opts.speed + opts.stagger_s) * 1.1 + 1.0
    extra = stream_clips(clips, opts.streams + opts.flood_streams, opts.shift_s)[opts.streams :]
    return [fit_clip(Clip(f"flood:{c.name}", c.pcm), need_s) for c in extra]


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
        "schema": "translate_svc.benchmarks.loadgen/2",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": shlex.join([Path(sys.executable).name, "-m", "benchmarks.loadgen", *sys.argv[1:]]),
        "git": _git_state(),
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


# -- the report for people ------------------------------------------------------------------


def _fmt_failures(failures: dict[str, int] | None) -> str:
    return ", ".join(f"{code} x{n}" for code, n in (failures or {}).items()) or "none"


def _fmt(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _p(s: dict[str, Any] | None, *keys: str) -> str:
    """``p50 / p95 / max`` of a summary dict."""
    return "-" if s is None else " / ".join(_fmt(s.get(k)) for k in keys)


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
            cells.append("" if rr is None else _fmt(rr["ratio"], 2) + "x")
        table.add_row(label, *cells, end_section=end_section)

    def section(title: str) -> None:
        table.add_row(f"[bold]{title}[/]", *[""] * (len(table.columns) - 1))

    def has(*path: str) -> bool:
        return any(report.lookup(results[n], path) is not None for n in names)

    ms = lambda x: _fmt(x)  # noqa: E731
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
            lambda s: _p(s, "p50", "p95", "max"),
        )
        row(
            "caption latency (end_ms -> interim) p50/p95",
            ("realtime", "captions", "interim_latency_ms"),
            lambda s: _p(s, "p50", "p95"),
        )
        row("interims after their final (must be 0)", ("realtime", "captions", "interims_after_final"), str)
    row("throughput (audio s / s)", ("realtime", "throughput"), lambda x: _fmt(x, 2))
    row("failed segments by status", ("realtime", "segment_failures"), _fmt_failures)
    row("failed streams by status", ("realtime", "stream_failures"), _fmt_failures)
    row("streams behind / failed", ("realtime",), lambda r: f"{r['streams_behind']} / {r['streams_failed']}")
    row("max client send lag (ms)", ("realtime", "max_send_lag_ms"), ms)
    row("audio messages sent (all streams)", ("realtime", "audio_messages"), lambda x: f"{x:,}")
    if has("realtime", "cpu", "server"):
        row(
            "server cores: phase / steady",
            ("realtime", "cpu", "server"),
            lambda c: f"{_fmt(c['phase']['cores'], 2)} / {_fmt(c['steady']['cores'], 2)}",
        )
        row(
            "server CPU µs per message: phase / steady",
            ("realtime", "cpu", "server"),
            lambda c: f"{_fmt(c['phase']['cpu_us_per_message'])} / {_fmt(c['steady']['cpu_us_per_message'])}",
        )
        row(
            "server threads (CPU s)",
            ("realtime", "cpu", "server_threads_s"),
            lambda t: ", ".join(f"{k} {v:.1f}" for k, v in list((t or {}).items())[:4]) or "-",
        )
    row(
        "client cores: phase / steady" if cfg.get("target") else "this process's cores (server + client)",
        ("realtime", "cpu", "client"),
        lambda c: f"{_fmt(c['phase']['cores'], 2)} / {_fmt(c['steady']['cores'], 2)}",
    )
    row(
        "other processes' CPU share",
        ("realtime", "foreign_cpu"),
        lambda f: _pct(f["share"]) + (" (server included)" if f.get("includes_server") else ""),
    )
    row(
        f"streams sustained (p95 <= {cfg['slo_ms']:g} ms)",
        ("realtime",),
        lambda r: (
            f"[green]{r['streams_sustained']} ✓[/]" if r["streams_sustained"] else f"[red]0 ✗ (of {r['streams']})[/]"
        ),
    )
    row("batch size: mean", ("realtime", "batches", "mean_size"), lambda x: _fmt(x, 2), batch=True)
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
        lambda x: _fmt(x, 1),
        not has("realtime", "flood") and not has("saturation"),
        batch=True,
    )
    if has("realtime", "flood"):
        section(f"flood streams ({cfg['flood_streams']} at {cfg['flood_speed']:g}x, beside the real-time phase)")
        row("ended with", ("realtime", "flood", "ended_with"), _fmt_failures)
        row(
            "audio s sent / wall s = x real time",
            ("realtime", "flood"),
            lambda f: f"{_fmt(f['audio_s'], 1)} / {_fmt(f['wall_s'], 1)} = {_fmt(f['throughput'], 1)}x",
        )
        row(
            "segments expected / received / lost",
            ("realtime", "flood"),
            lambda f: f"{f['segments_expected']} / {f['segments_received']} / {f['segments_lost']}",
        )
        row("failed segments by status", ("realtime", "flood", "segment_failures"), _fmt_failures)
        row(
            "latency from actual send p50/p95 (ms)",
            ("realtime", "flood", "latency_ms"),
            lambda s: _p(s, "p50", "p95"),
            not has("saturation"),
        )
    if has("saturation"):
        section("saturation phase")
        row("segments (failed)", ("saturation",), lambda r: f"{r['segments']} ({r['failed_segments']})")
        row("audio s / wall s", ("saturation",), lambda r: f"{_fmt(r['audio_s'], 1)} / {_fmt(r['wall_s'], 1)}")
        row("throughput (audio s / s)", ("saturation", "throughput"), lambda x: _fmt(x, 2))
        row("failed segments by status", ("saturation", "segment_failures"), _fmt_failures)
        row("failed streams by status", ("saturation", "stream_failures"), _fmt_failures)
        if has("saturation", "cpu", "server"):
            row("server cores", ("saturation", "cpu", "server", "phase", "cores"), lambda x: _fmt(x, 2))
        row("batch size: mean", ("saturation", "batches", "mean_size"), lambda x: _fmt(x, 2), batch=True)
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
        row("model ms per segment", ("saturation", "batches", "model_ms_per_segment"), lambda x: _fmt(x, 1), batch=True)
        row("model busy (s of wall)", ("saturation", "batches", "model_busy_s"), lambda x: _fmt(x, 1), batch=True)
        row(
            "other processes' CPU share",
            ("saturation", "foreign_cpu"),
            lambda f: _pct(f["share"]) + (" (server included)" if f.get("includes_server") else ""),
        )
    console.print(table)
    for n in names:
        for phase in ("realtime", "saturation"):
            for err in (results[n][phase] or {}).get("errors", []):
                console.print(f"[red]{n} {phase}: {err}[/]")
        flood = results[n]["realtime"].get("flood")
        for err in (flood or {}).get("errors", []):
            console.print(f"[yellow]{n} flood: {err}[/]")


# -- CLI --------------------------------------------------------------------------------------


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


@app.command()
def main(
    streams: Annotated[int, typer.Option(min=1, help="concurrent streams")] = 16,
    model: Annotated[Path, typer.Option(help="model directory")] = DEFAULT_TEST_MODEL,
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
    }
    if target is not None and any(v is not None for v in given.values()):
        raise typer.BadParameter(
            "--cpu-threads / --forced-* configure an in-process server: set them on the external server",
            param_hint="--target",
        )
    for option, value in given.items():
        if value is not None and settings_field_for(option) is None:
            err.print(f"--{option.replace('_', '-')}: not supported by this build (no such setting)")
            raise typer.Exit(2)
    if forced_units_per_s is not None and forced_tokens_per_s is None:
        raise typer.BadParameter("needs --forced-tokens-per-s", param_hint="--forced-units-per-s")
    chosen = _csv(configs)
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
    if target is None and model.resolve() == DEFAULT_TEST_MODEL and not (model / "config.json").is_file():
        from translate_svc.model.test_checkpoint import build_test_checkpoint

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
        files=_csv(files),
        shift_s=shift_s,
        targets=_csv(to),
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


if __name__ == "__main__":
    app()
