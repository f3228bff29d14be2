"""Property-based protocol tests: generated request sequences against a real server on loopback.

Hypothesis draws whole conversations (a config that is valid or broken in one or two ways, real
speech or silence or noise in any raw encoding, chunked from 0 bytes to 1 s with odd byte counts,
FLUSH controls, a second config, empty messages, unparseable bytes, and a half-close or a client
cancel at some point) and sends them as raw bytes, so garbage reaches the server as it is.

A small oracle (``Expect``), written from docs/api.md, says how each conversation must end. On
top of it every answer is checked against the contract's invariants: never UNKNOWN or INTERNAL,
short status messages that echo no long client string, ``started`` first, segment ids 0, 1, 2...
with one result each and spans in order, ``ended`` last with the right totals, speech events
alternating; and after each example the server still reports SERVING, holds no stream and no
queued work. Each property ends with a fresh valid stream that must still work.

Properties: ``valid`` streams (OK or, past ``max_stream_seconds``, OUT_OF_RANGE), ``bad_config``
(INVALID_ARGUMENT before any answer), ``disrupted`` streams (half-close or cancel), and unary calls
with any bytes. Each runs 40 derandomized examples plus hand-written ``@example``s on real speech;
the last test repeats a minimal example the disrupted property found with random seeds (a stream
slot kept after a cancel that races a stream error).

Hypothesis runs in plain synchronous code: the server runs on its own event loop in a thread
(module fixture) and the tests use a synchronous grpc client.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from google.rpc import code_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.live_server import make_settings
from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.audio.codec import ALAW_TABLE, MULAW_TABLE
from translate_svc.audio.resample import resample
from translate_svc.client_cli.decode import load_pcm16k

pytestmark = [pytest.mark.integration, pytest.mark.slow(30)]  # seconds, for the schedule (conftest.py)

SERVICE = "/translate_svc.api.v1.Translator"
MAX_CHUNK_BYTES = 128 * 1024  # small enough that 1 s of 48 kHz FLOAT32 goes over it
MAX_STREAM_SECONDS = 3.0  # small enough that some examples reach it (OUT_OF_RANGE)
CALL_TIMEOUT_S = 60.0
STATUS_MAX_BYTES = 400
LONG_CLIENT_STRING = 40  # no client string this long may come back in a status message

PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,  # nothing written into the repo; derandomize keeps the runs reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)

STARTED, ENDED = pb.SpeechEvent.SPEECH_STARTED, pb.SpeechEvent.SPEECH_ENDED
WIDTH: dict[int, int] = {pb.LINEAR16: 2, pb.FLOAT32: 4, pb.MULAW: 1, pb.ALAW: 1}
VAD_DEFAULTS: dict[str, float] = {  # docs/api.md: silero-vad's defaults, and max_segment 15 000 ms
    "threshold": 0.5,
    "min_silence_ms": 100,
    "speech_pad_ms": 30,
    "min_speech_ms": 250,
    "max_segment_ms": 15_000,
}
VAD_INT_RANGES = {
    "min_silence_ms": (0, 10_000),
    "speech_pad_ms": (0, 2_000),
    "min_speech_ms": (0, 10_000),
    "max_segment_ms": (1_000, 60_000),
}
GOOD_RATES = [8000, 11025, 16000, 22050, 24000, 44100, 48000]
BAD_RATES = [0, -16000, 7999, 48001, 96000, 2**31 - 1]


# ---------------------------------------------------------------------------------------------
# The server: its own event loop in a thread, so the tests (and hypothesis) stay synchronous


@dataclass
class Server:
    port: int
    app: Any  # translate_svc.app.Application
    text_codes: tuple[str, ...]
    speech_codes: tuple[str, ...]
    num_speakers: int
    max_targets: int
    channel: grpc.Channel
    speech: dict[str, np.ndarray]  # name -> 16 kHz mono float32

    @functools.cached_property
    def stream(self) -> grpc.StreamStreamMultiCallable:
        # no request serializer: every request goes out as the bytes given
        return self.channel.stream_stream(
            f"{SERVICE}/StreamingTranslate",
            request_serializer=None,
            response_deserializer=pb.StreamingTranslateResponse.FromString,
        )

    def unary(self, method: str) -> grpc.UnaryUnaryMultiCallable:
        return self.channel.unary_unary(f"{SERVICE}/{method}", request_serializer=None, response_deserializer=None)


@contextlib.contextmanager
def serve(model_dir: Path, audio_dir: Path, **limits: Any) -> Iterator[Server]:
    """A real server (the test checkpoint) on its own event loop in a thread, and a sync channel."""
    from translate_svc.app import build
    from translate_svc.transport.host import TranslateServer

    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[tuple[TranslateServer, int, asyncio.Event]] = concurrent.futures.Future()

    async def main() -> None:
        try:
            s = make_settings(model_dir)
            s.limits.max_chunk_bytes = MAX_CHUNK_BYTES
            s.limits.max_stream_seconds = MAX_STREAM_SECONDS
            for name, value in limits.items():
                setattr(s.limits, name, value)
            srv = TranslateServer(build(s))
            port = await srv.start()
            stop = asyncio.Event()
        except BaseException as e:
            ready.set_exception(e)
            raise
        ready.set_result((srv, port, stop))
        await stop.wait()
        await srv.stop(grace=1)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="property-server", daemon=True)
    thread.start()
    srv, port, stop = ready.result(timeout=300)
    limit = 16 * 1024 * 1024
    channel = grpc.insecure_channel(
        f"127.0.0.1:{port}",
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    try:
        langs = pb.ListLanguagesResponse.FromString(channel.unary_unary(f"{SERVICE}/ListLanguages")(b"", timeout=30))
        speech = {
            name: load_pcm16k(audio_dir / name).astype(np.float32) / 32768.0 for name in ("silero_test.wav", "jfk.flac")
        }
        yield Server(
            port=port,
            app=srv.app,
            text_codes=tuple(sorted(lang.code for lang in langs.languages if lang.text_output)),
            speech_codes=tuple(sorted(lang.code for lang in langs.languages if lang.speech_output)),
            num_speakers=langs.model.num_speakers,
            max_targets=langs.limits.max_target_languages,
            channel=channel,
            speech=speech,
        )
    finally:
        channel.close()
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


@pytest.fixture(scope="module")
def server(test_model_dir: Path, shared_audio: Path) -> Iterator[Server]:
    with serve(test_model_dir, shared_audio) as srv:
        yield srv


# ---------------------------------------------------------------------------------------------
# Audio


def encode(x: np.ndarray, encoding: int, channels: int) -> bytes:
    """Mono float32 in [-1, 1] -> raw bytes of ``encoding`` (``channels`` interleaved, L != R)."""
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    if channels == 2:
        x = np.stack([x, x * np.float32(0.5)], axis=1).reshape(-1)
    if encoding == pb.LINEAR16:
        return (x * 32767.0).round().astype("<i2").tobytes()
    if encoding == pb.FLOAT32:
        return x.astype("<f4").tobytes()
    table = MULAW_TABLE if encoding == pb.MULAW else ALAW_TABLE
    return _nearest_code(table, x).astype(np.uint8).tobytes()


def _nearest_code(table: np.ndarray, x: np.ndarray) -> np.ndarray:
    order = np.argsort(table)
    values = table[order]
    i = np.clip(np.searchsorted(values, x), 1, len(values) - 1)
    left_closer = (x - values[i - 1]) < (values[i] - x)
    return order[np.where(left_closer, i - 1, i)]


@dataclass(frozen=True)
class AudioSpec:
    kind: str  # speech | silence | noise (white noise) | bytes (random bytes: NaN and Inf in FLOAT32)
    source: str
    start_ms: int
    duration_ms: int
    seed: int


def wire_format(f: pb.AudioFormat) -> tuple[int, int]:
    """(bytes a frame, frames a second) of the audio ``render`` makes for ``f``."""
    if f.encoding not in WIDTH or not 8000 <= f.sample_rate_hz <= 48000 or f.channels not in (0, 1, 2):
        return 2, 16000  # a broken format: the audio is LINEAR16 16 kHz mono
    return WIDTH[f.encoding] * (f.channels or 1), f.sample_rate_hz


def render(spec: AudioSpec, srv: Server, encoding: int, rate: int, channels: int) -> bytes:
    """The audio of ``spec`` in the stream's format (any valid-looking format when it is broken)."""
    if encoding not in WIDTH or not 8000 <= rate <= 48000 or channels not in (0, 1, 2):
        encoding, rate, channels = pb.LINEAR16, 16000, 1
    channels = channels or 1
    n = spec.duration_ms * rate // 1000
    rng = np.random.default_rng(spec.seed)
    if spec.kind == "bytes":
        return rng.bytes(n * WIDTH[encoding] * channels)
    if spec.kind == "noise":
        return encode(rng.uniform(-0.3, 0.3, n).astype(np.float32), encoding, channels)
    if spec.kind == "silence":
        return encode(np.zeros(n, np.float32), encoding, channels)
    pcm = srv.speech[spec.source]
    a = spec.start_ms * 16
    x = pcm[a : a + spec.duration_ms * 16]
    if rate != 16000:
        x = resample(x, 16000, rate)
    return encode(x, encoding, channels)


# ---------------------------------------------------------------------------------------------
# The oracle: how a conversation must end, from docs/api.md


@dataclass
class Expect:
    codes: set[grpc.StatusCode]  # acceptable final status codes
    frames: int = 0  # audio frames accepted (audio_received_ms when the stream ends)
    cfg: pb.StreamingConfig | None = None
    error_at: int | None = None  # index of the message that ends the stream with an error
    updates: int = 0  # StreamUpdate messages: each is answered (StreamUpdated) and the stream goes on


def config_is_valid(cfg: pb.StreamingConfig, srv: Server) -> bool:
    f = cfg.format
    if f.encoding not in WIDTH or not 8000 <= f.sample_rate_hz <= 48000 or f.channels not in (0, 1, 2):
        return False
    targets = list(cfg.target_languages)
    if not targets or len(targets) > srv.max_targets or len(set(targets)) != len(targets):
        return False
    out = cfg.output
    has_out = cfg.HasField("output")
    speech = not has_out or not out.HasField("speech") or out.speech
    text = not has_out or not out.HasField("text") or out.text
    transcript = not has_out or not out.HasField("transcript") or out.transcript
    if not (speech or text or transcript):
        return False  # an output that asks for nothing
    if any(t not in srv.text_codes or (speech and t not in srv.speech_codes) for t in targets):
        return False
    if cfg.source_language and cfg.source_language not in srv.text_codes:
        return False
    if has_out:
        if not 8000 <= (out.speech_sample_rate_hz or 16000) <= 48000:
            return False
        if not 0 <= (out.speaker_id if out.HasField("speaker_id") else 0) < srv.num_speakers:
            return False
    vad = {k: getattr(cfg.vad, k) if cfg.vad.HasField(k) else v for k, v in VAD_DEFAULTS.items()}
    if not 0.0 < vad["threshold"] < 1.0:  # False for NaN too
        return False
    if any(not lo <= vad[k] <= hi for k, (lo, hi) in VAD_INT_RANGES.items()):
        return False
    return vad["max_segment_ms"] >= 3 * (vad["speech_pad_ms"] + 64)


def expect(msgs: list[bytes], srv: Server, *, sent: int | None = None) -> Expect:
    """The ending of a stream that sends ``msgs`` (the first ``sent`` of them, then cancels)."""
    ok = grpc.StatusCode.OK if sent is None else grpc.StatusCode.CANCELLED
    invalid, out_of_range = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE
    todo = msgs if sent is None else msgs[:sent]
    ex = Expect({ok})

    def fail(i: int, *codes: grpc.StatusCode) -> Expect:
        ex.error_at = i
        # a cancelled call may be cancelled before or after the server's status arrives
        ex.codes = set(codes) if sent is None else {*codes, grpc.StatusCode.CANCELLED}
        return ex

    if not todo:
        return ex if sent is not None else fail(0, invalid)  # half-close before any message
    for i, raw in enumerate(todo):
        try:
            m = pb.StreamingTranslateRequest.FromString(raw)
        except DecodeError:
            return fail(i, invalid)
        kind = m.WhichOneof("request")
        if i == 0:
            if kind != "config" or not config_is_valid(m.config, srv):
                return fail(i, invalid)
            ex.cfg = m.config
            continue
        assert ex.cfg is not None
        if kind == "update":
            ex.updates += 1
            continue
        if kind != "audio":
            if kind == "control" and m.control == pb.FLUSH:
                continue
            return fail(i, invalid)  # a second config, an unknown control, an empty message
        data, f = m.audio, ex.cfg.format
        frame = WIDTH[f.encoding] * (f.channels or 1)
        # several problems in one chunk: the contract does not say which one is reported
        problems = set()
        if len(data) > MAX_CHUNK_BYTES:
            problems.add(invalid)
        if data and len(data) % frame:
            problems.add(invalid)
        elif f.encoding == pb.FLOAT32 and not np.isfinite(np.frombuffer(data, "<f4")).all():
            problems.add(invalid)
        if ex.frames + len(data) // frame > MAX_STREAM_SECONDS * f.sample_rate_hz:
            problems.add(out_of_range)
        if problems:
            return fail(i, *problems)
        ex.frames += len(data) // frame
    return ex


# ---------------------------------------------------------------------------------------------
# Strategies


def valid_configs(srv: Server) -> st.SearchStrategy[pb.StreamingConfig]:
    @st.composite
    def build(draw: st.DrawFn) -> pb.StreamingConfig:
        speech = draw(st.sampled_from([False] * 9 + [True]))  # speech output is the slow part
        pool = srv.speech_codes if speech else srv.text_codes
        targets = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=srv.max_targets, unique=True))
        cfg = pb.StreamingConfig(
            format=pb.AudioFormat(
                encoding=draw(st.sampled_from([pb.LINEAR16, pb.FLOAT32, pb.MULAW, pb.ALAW])),
                sample_rate_hz=draw(st.sampled_from(GOOD_RATES) | st.integers(8000, 48000)),
                channels=draw(st.sampled_from([0, 1, 2])),
            ),
            source_language=draw(st.sampled_from(["", *srv.text_codes])),
            target_languages=targets,
        )
        if speech:
            if draw(st.booleans()):
                cfg.output.speech = True
            else:
                cfg.ClearField("output")  # absent output: everything on
        else:
            cfg.output.speech = False
            for name in ("text", "transcript"):
                choice = draw(st.sampled_from([None, True, False]))
                if choice is not None:
                    setattr(cfg.output, name, choice)
        if cfg.HasField("output"):
            cfg.output.speech_sample_rate_hz = draw(st.sampled_from([0, 8000, 16000, 24000, 48000]))
            if draw(st.booleans()):
                cfg.output.speaker_id = draw(st.integers(0, srv.num_speakers - 1))
        if draw(st.booleans()):
            cfg.vad.SetInParent()
            if draw(st.booleans()):
                cfg.vad.threshold = draw(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]))
            if draw(st.booleans()):
                cfg.vad.min_silence_ms = draw(st.sampled_from([0, 50, 100, 300, 1000]))
            if draw(st.booleans()):
                cfg.vad.speech_pad_ms = draw(st.sampled_from([0, 30, 100, 250]))
            if draw(st.booleans()):
                cfg.vad.min_speech_ms = draw(st.sampled_from([0, 100, 250, 1000]))
            if draw(st.booleans()):
                cfg.vad.max_segment_ms = draw(st.sampled_from([1000, 1500, 3000, 15000]))
            pad = cfg.vad.speech_pad_ms if cfg.vad.HasField("speech_pad_ms") else int(VAD_DEFAULTS["speech_pad_ms"])
            if cfg.vad.HasField("max_segment_ms"):
                cfg.vad.max_segment_ms = max(cfg.vad.max_segment_ms, 3 * (pad + 64))
        return cfg

    return build()


LONG_STRINGS = ["x" * 5000, "é" * 1500, "spa" * 400, "eng\n" * 300]


def broken(cfg: pb.StreamingConfig, srv: Server, how: str, draw: st.DrawFn) -> None:
    """Break ``cfg`` in one way (it may stay valid by chance: the oracle decides)."""
    if how == "encoding":
        not_in_enum = [pb.AudioEncoding.ValueType(9), pb.AudioEncoding.ValueType(1000)]
        cfg.format.encoding = draw(st.sampled_from([pb.AUDIO_ENCODING_UNSPECIFIED, pb.CONTAINER, *not_in_enum]))
    elif how == "rate":
        cfg.format.sample_rate_hz = draw(st.sampled_from(BAD_RATES))
    elif how == "channels":
        cfg.format.channels = draw(st.sampled_from([-1, 3, 6, 2**31 - 1]))
    elif how == "no_format":
        cfg.ClearField("format")
    elif how == "targets":
        unknown = st.sampled_from([*LONG_STRINGS, "tlh", "xx", "", "ENG", "spa ", "zzz_Latn"])
        cfg.ClearField("target_languages")
        cfg.target_languages.extend(
            draw(
                st.one_of(
                    st.lists(unknown, min_size=1, max_size=3),
                    st.sampled_from([*LONG_STRINGS, *srv.text_codes]).map(lambda t: [t, t]),  # a target twice
                    st.lists(st.sampled_from(srv.text_codes), min_size=srv.max_targets + 1, max_size=8),
                    st.just([]),
                )
            )
        )
    elif how == "source":
        cfg.source_language = draw(st.sampled_from([*LONG_STRINGS, "xx", "EN", "en", "tlh"]))
    elif how == "text_only_speech":
        text_only = [c for c in srv.text_codes if c not in srv.speech_codes] or ["tlh"]
        cfg.target_languages[0] = draw(st.sampled_from(text_only))
        if draw(st.booleans()):
            cfg.ClearField("output")
        else:
            cfg.output.speech = True
    elif how == "output_rate":
        cfg.output.speech_sample_rate_hz = draw(st.sampled_from([-1, 1, 7999, 48001, 2**31 - 1]))
    elif how == "speaker":
        cfg.output.speaker_id = draw(st.sampled_from([-1, srv.num_speakers, 10**6, -(2**31)]))
    elif how == "vad":
        name = draw(st.sampled_from(["threshold", *VAD_INT_RANGES, "max_segment_vs_pad"]))
        if name == "threshold":
            cfg.vad.threshold = draw(st.sampled_from([0.0, 1.0, -0.1, 1.5, 0.99999999, math.nan, math.inf, -math.inf]))
        elif name == "max_segment_vs_pad":
            cfg.vad.speech_pad_ms = draw(st.sampled_from([300, 1000, 2000]))
            cfg.vad.max_segment_ms = 3 * (cfg.vad.speech_pad_ms + 64) - draw(st.sampled_from([1, 100]))
        else:
            lo, hi = VAD_INT_RANGES[name]
            setattr(cfg.vad, name, draw(st.sampled_from([lo - 1, hi + 1, -(2**31), 2**31 - 1])))


BREAKAGES = [
    "targets",
    "source",
    "vad",
    "encoding",
    "rate",
    "channels",
    "no_format",
    "text_only_speech",
    "output_rate",
    "speaker",
]


def audio_specs(srv: Server, *, short: bool = False, raw_bytes: bool = False) -> st.SearchStrategy[AudioSpec]:
    # Hypothesis starts from the first choice of each sampled_from (and shrinks towards it): the
    # first choices here are the ones that make segments (speech, 2 s and more).
    @st.composite
    def build(draw: st.DrawFn) -> AudioSpec:
        kinds = ["speech"] * 6 + ["silence", "noise"] + (["bytes"] if raw_bytes else [])
        kind = draw(st.sampled_from(kinds))
        source = draw(st.sampled_from(sorted(srv.speech)))
        total_ms = len(srv.speech[source]) // 16
        longest = int(MAX_STREAM_SECONDS * 1000) + 500  # a few reach the stream limit
        durations = [500, 200, 0] if short else [2900, 2000, 1000, 3500, 500, 200, 0]
        duration = draw(st.sampled_from(durations) | st.integers(0, durations[0] if short else longest))
        start = draw(st.integers(0, max(0, total_ms - duration) // 100)) * 100
        return AudioSpec(kind, source, start, duration, draw(st.integers(0, 2**16)))

    return build()


# A chunk is a duration (whole frames) or a byte count (maybe not whole frames).
chunk_ms = st.sampled_from([100, 20, 32, 250, 500, 1000]) | st.integers(20, 1000)
whole_frame_plans = st.lists(
    st.one_of(chunk_ms.map(lambda ms: ("ms", ms)), st.just(("bytes", 0))), min_size=1, max_size=5
)
chunk_plans = st.lists(
    st.one_of(
        chunk_ms.map(lambda ms: ("ms", ms)), st.sampled_from([0, 1, 3, 5, 7, 321, 1001]).map(lambda n: ("bytes", n))
    ),
    min_size=1,
    max_size=5,
)


def chunked(data: bytes, plan: list[tuple[str, int]], frame: int, rate: int) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    steps = 0
    while pos < len(data) and steps < 400:
        kind, n = plan[steps % len(plan)]
        size = n if kind == "bytes" else max(1, n * rate // 1000) * frame
        out.append(data[pos : pos + size])
        pos += size
        steps += 1
    return out


garbage = st.one_of(
    st.binary(min_size=1, max_size=48),
    st.sampled_from(
        [
            b"\x12\xff\xff\xff\xff\x0f",  # audio with a length far past the end
            b"\x0a\x04\x12\x02\xff\xfe",  # config.source_language that is not UTF-8
            b"\x0a\x02\x1a\x80",  # a config cut in the middle of a field
            b"\x10\x05",  # audio (bytes) sent as a varint: wrong wire type
            b"\x0b\x0b\x0b",  # groups that never end
            b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # a tag varint too long
            b"\x18\x01\x18\x02",  # control twice (the last wins)
            b"\x7a\x00",  # an unknown field (15): parses to an empty message
            b"\x2a\x00",  # an update that sets nothing: answered INVALID_ARGUMENT, the stream goes on
        ]
    ),
)


class Conversation:
    """The raw messages of one stream and how it ends (a plain class: hypothesis prints its repr)."""

    def __init__(
        self, msgs: list[bytes], cancel_after: int | None, cancel_delay_s: float, notes: list[str] | None = None
    ) -> None:
        self.msgs = msgs
        self.cancel_after = cancel_after  # None: half-close after the last message
        self.cancel_delay_s = cancel_delay_s
        self.notes = notes or []

    def __repr__(self) -> str:
        def one(raw: bytes) -> str:
            m = _parse_or_raw(raw)
            if not isinstance(m, pb.StreamingTranslateRequest):
                return f"garbage {raw[:32]!r}"
            kind = m.WhichOneof("request")
            if kind == "audio":
                return f"audio {len(m.audio)} B"
            if kind == "control":
                return f"control {m.control}"
            if kind is None:
                return f"empty message ({len(raw)} B)"
            if kind == "update":
                return f"update {{{' '.join(str(m.update).split())[:300]}}}"
            text = " ".join(str(m.config).split())
            return f"config {{{text[:300]}{'...' if len(text) > 300 else ''}}}"

        shown = [one(raw) for raw in self.msgs]
        ending = (
            "half-close" if self.cancel_after is None else f"cancel after {self.cancel_after} + {self.cancel_delay_s}s"
        )
        return f"Conversation({ending}; {self.notes}; {shown})"


def _parse_or_raw(raw: bytes) -> object:
    try:
        return pb.StreamingTranslateRequest.FromString(raw)
    except DecodeError:
        return raw


def conversations(srv: Server, profile: str) -> st.SearchStrategy[Conversation]:
    """``valid``: a good config, whole-frame chunks, FLUSH, half-close (ends OK or OUT_OF_RANGE).
    ``bad_config``: a config broken in one or two ways. ``disrupted``: a good config, then odd
    chunks, a second config, empty or unknown messages, garbage bytes, a config not first, and
    half-close or a client cancel at a random point."""

    good_configs = valid_configs(srv)
    specs = audio_specs(srv, short=profile == "bad_config", raw_bytes=profile != "valid")

    @st.composite
    def build(draw: st.DrawFn) -> Conversation:
        cfg = draw(good_configs)
        notes: list[str] = []
        if profile == "bad_config":
            for how in draw(st.lists(st.sampled_from(BREAKAGES), min_size=1, max_size=2, unique=True)):
                broken(cfg, srv, how, draw)
                notes.append(f"broken {how}")
        spec = draw(specs)
        f = cfg.format
        data = render(spec, srv, f.encoding, f.sample_rate_hz, f.channels)
        frame, rate = wire_format(f)
        plan = draw(whole_frame_plans if profile == "valid" else chunk_plans)
        body = [pb.StreamingTranslateRequest(audio=c).SerializeToString() for c in chunked(data, plan, frame, rate)]
        notes.append(f"{spec.kind} {spec.source}@{spec.start_ms}+{spec.duration_ms}ms plan={plan}")
        flush = ("flush", pb.StreamingTranslateRequest(control=pb.FLUSH).SerializeToString())
        if profile == "disrupted":
            extras = st.one_of(
                st.just(flush),
                st.just(("second_config", pb.StreamingTranslateRequest(config=cfg).SerializeToString())),
                st.just(("empty", b"")),
                st.sampled_from([0, 2, 77]).map(
                    lambda c: ("bad_control", pb.StreamingTranslateRequest(control=c).SerializeToString())  # type: ignore[arg-type]
                ),
                st.just(
                    ("too_big", pb.StreamingTranslateRequest(audio=b"\0" * (MAX_CHUNK_BYTES + 2)).SerializeToString())
                ),
                garbage.map(lambda g: ("garbage", g)),
            )
            n_extra = draw(st.integers(0, 3))
        else:
            extras, n_extra = st.just(flush), draw(st.sampled_from([0, 0, 1, 2, 3]))
        for name, raw in draw(st.lists(extras, max_size=n_extra, min_size=n_extra)):
            body.insert((len(body) // 2 + draw(st.integers(0, len(body)))) % (len(body) + 1), raw)
            notes.append(name)
        msgs = [pb.StreamingTranslateRequest(config=cfg).SerializeToString(), *body]
        if profile == "disrupted" and body and draw(st.integers(0, 5)) == 0:
            msgs[0], msgs[1] = msgs[1], msgs[0]
            notes.append("config not first")
        cancel_after, delay = None, 0.0
        if profile == "disrupted" and draw(st.booleans()):
            cancel_after = len(msgs) - draw(st.integers(0, len(msgs)))  # simplest: after the last message
            delay = draw(st.sampled_from([0.0, 0.05, 0.3]))
        return Conversation(msgs, cancel_after, delay, notes)

    return build()


# ---------------------------------------------------------------------------------------------
# Driving a stream, and the invariants


@dataclass
class Outcome:
    responses: list[pb.StreamingTranslateResponse]
    code: grpc.StatusCode
    details: str


def run_stream(srv: Server, conv: Conversation) -> Outcome:
    release = threading.Event()  # lets a cancel-ending request iterator finish
    sent_all = threading.Event()

    def requests() -> Iterator[bytes]:
        todo = conv.msgs if conv.cancel_after is None else conv.msgs[: conv.cancel_after]
        yield from todo
        sent_all.set()
        if conv.cancel_after is not None:
            release.wait(CALL_TIMEOUT_S)  # keep the stream open: the client cancels, it never half-closes

    call = srv.stream(requests(), timeout=CALL_TIMEOUT_S)
    canceller = None
    if conv.cancel_after is not None:

        def cancel() -> None:
            if sent_all.wait(CALL_TIMEOUT_S):
                time.sleep(conv.cancel_delay_s)
            call.cancel()

        canceller = threading.Thread(target=cancel, daemon=True)
        canceller.start()
    responses: list[pb.StreamingTranslateResponse] = []
    try:
        for r in call:
            responses.append(r)
        code, details = call.code(), call.details() or ""
    except grpc.RpcError as e:
        code, details = e.code(), e.details() or ""
    finally:
        release.set()
        if canceller is not None:
            canceller.join(CALL_TIMEOUT_S)
    return Outcome(responses, code, details)


def client_strings(msgs: list[bytes]) -> list[str]:
    out = []
    for raw in msgs:
        m = _parse_or_raw(raw)
        if isinstance(m, pb.StreamingTranslateRequest) and m.HasField("config"):
            out += [m.config.source_language, *m.config.target_languages]
    return [s for s in out if len(s) >= LONG_CLIENT_STRING]


def check_status(code: grpc.StatusCode, details: str, strings: list[str]) -> None:
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), (code, details)
    if code != grpc.StatusCode.OK:
        assert len(details.encode()) < STATUS_MAX_BYTES, f"{len(details.encode())}-byte status: {details[:200]}"
        for s in strings:
            assert s[:LONG_CLIENT_STRING] not in details, f"the status echoes a long client string: {details[:200]}"


def check_stream(srv: Server, conv: Conversation, out: Outcome) -> None:
    ex = expect(conv.msgs, srv, sent=conv.cancel_after)
    check_status(out.code, out.details, client_strings(conv.msgs))
    if out.code != grpc.StatusCode.CANCELLED:
        assert out.code in ex.codes, (
            f"got {out.code.name} ({out.details!r}), expected {sorted(c.name for c in ex.codes)} "
            f"(the first bad message: #{ex.error_at})"
        )
    else:
        assert grpc.StatusCode.CANCELLED in ex.codes, f"cancelled, but this conversation was not: {out.details!r}"
    rs = out.responses
    kinds = [r.WhichOneof("response") for r in rs]

    # started: first, once, and only when the config was good
    if rs:
        assert kinds[0] == "started", kinds[:3]
        assert ex.cfg is not None, "started for a conversation whose first message was not a good config"
    assert kinds.count("started") <= 1
    if out.code == grpc.StatusCode.OK:
        assert rs and kinds[0] == "started"
    if ex.cfg is not None and rs:
        check_started(rs[0].started, ex.cfg)

    # updates: each answered while the stream runs; an accepted one changes the targets from its
    # first segment on
    updated = [r.updated for r in rs if r.HasField("updated")]
    if out.code == grpc.StatusCode.OK:
        assert len(updated) == ex.updates, (len(updated), ex.updates)
    targets_from: list[tuple[int, list[str]]] = []
    for u in updated:
        assert u.status.code in (code_pb2.OK, code_pb2.INVALID_ARGUMENT), u.status
        if u.status.code == code_pb2.OK:
            targets_from.append((u.first_segment_id, list(u.config.target_languages)))

    # segments: ids 0, 1, 2... once each, spans in order and not overlapping
    segs = [r.segment for r in rs if r.HasField("segment")]
    assert [s.segment_id for s in segs] == list(range(len(segs)))
    prev_end = 0
    for s in segs:
        assert s.start_ms < s.end_ms, (s.segment_id, s.start_ms, s.end_ms)
        assert s.start_ms >= prev_end, f"segment {s.segment_id} starts at {s.start_ms} before {prev_end}"
        prev_end = s.end_ms
        assert s.status.code == code_pb2.OK, s.status
        if ex.cfg is not None:
            cfg = ex.cfg
            for first, targets in targets_from:
                if s.segment_id >= first:
                    cfg = pb.StreamingConfig()
                    cfg.CopyFrom(ex.cfg)
                    cfg.ClearField("target_languages")
                    cfg.target_languages.extend(targets)
            check_segment(s, cfg)

    # speech events: STARTED, ENDED, STARTED... with offsets in order
    events = [r.speech_event for r in rs if r.HasField("speech_event")]
    types = [e.type for e in events]
    assert types == [STARTED, ENDED] * (len(types) // 2) + [STARTED] * (len(types) % 2), types
    offsets = [e.offset_ms for e in events]
    assert offsets == sorted(offsets), offsets
    for k, idx in enumerate(i for i, kind in enumerate(kinds) if kind == "segment"):
        assert STARTED in [r.speech_event.type for r in rs[:idx] if r.HasField("speech_event")], k

    # ended: last, once; for a half-close, a limit, or a bad message after the config (its open
    # speech is translated first: ERROR), with the right totals
    assert kinds.count("ended") <= 1
    later_error = ex.error_at is not None and ex.error_at > 0
    if "ended" in kinds and out.code == grpc.StatusCode.CANCELLED:  # cancelled between `ended` and its status
        assert grpc.StatusCode.OUT_OF_RANGE in ex.codes or later_error, "ended, though the client never half-closed"
    ends_after_start = out.code == grpc.StatusCode.INVALID_ARGUMENT and later_error
    if out.code in (grpc.StatusCode.OK, grpc.StatusCode.OUT_OF_RANGE) or "ended" in kinds or ends_after_start:
        assert kinds[-1] == "ended", kinds[-3:]
        end = rs[-1].ended
        assert end.segments_total == len(segs)
        assert ex.cfg is not None
        rate = ex.cfg.format.sample_rate_hz
        assert end.audio_received_ms == round(ex.frames * 1000 / rate), (end.audio_received_ms, ex.frames, rate)
        reasons = {
            grpc.StatusCode.OK: {pb.StreamEnd.HALF_CLOSE},
            grpc.StatusCode.OUT_OF_RANGE: {pb.StreamEnd.MAX_STREAM_DURATION},
            grpc.StatusCode.INVALID_ARGUMENT: {pb.StreamEnd.ERROR},
        }
        want = reasons.get(out.code) or set().union(*(reasons.get(c, set()) for c in ex.codes))
        assert end.reason in want, (end, want)
        assert types.count(STARTED) == types.count(ENDED), "open speech was left open at the end"
        assert len(segs) >= types.count(ENDED), "a speech region without a segment"
        assert all(s.end_ms <= end.audio_received_ms + 1 for s in segs), (segs[-1].end_ms, end.audio_received_ms)
        if len(segs) == types.count(ENDED):  # one segment per region: its SPEECH_ENDED comes first
            ended_at = [i for i, r in enumerate(rs) if r.HasField("speech_event") and r.speech_event.type == ENDED]
            seg_at = [i for i, kind in enumerate(kinds) if kind == "segment"]
            assert all(e < s for e, s in zip(ended_at, seg_at, strict=True)), (ended_at, seg_at)
    else:
        assert "ended" not in kinds, f"ended, then {out.code.name}"


def check_started(started: pb.StreamStarted, cfg: pb.StreamingConfig) -> None:
    resolved = started.config
    assert started.session_id
    assert resolved.format.encoding == cfg.format.encoding
    assert resolved.format.sample_rate_hz == cfg.format.sample_rate_hz
    assert resolved.format.channels == (cfg.format.channels or 1)
    assert list(resolved.target_languages) == list(cfg.target_languages)
    assert resolved.source_language == cfg.source_language
    for name, default in VAD_DEFAULTS.items():
        assert resolved.vad.HasField(name)
        want = getattr(cfg.vad, name) if cfg.vad.HasField(name) else default
        assert getattr(resolved.vad, name) == pytest.approx(want), name
    assert started.limits.max_chunk_bytes == MAX_CHUNK_BYTES


def check_segment(s: pb.SegmentResult, cfg: pb.StreamingConfig) -> None:
    out, has = cfg.output, cfg.HasField("output")
    speech = not has or not out.HasField("speech") or out.speech
    text = not has or not out.HasField("text") or out.text
    transcript = not has or not out.HasField("transcript") or out.transcript
    assert [t.target_language for t in s.translations] == list(cfg.target_languages)
    for t in s.translations:
        assert t.HasField("audio") == speech
        if not text:
            assert t.text == ""
        if speech:
            assert t.audio.sample_rate_hz == ((out.speech_sample_rate_hz if has else 0) or 16000)
    assert s.HasField("transcript") == bool(transcript and cfg.source_language)


def check_server_is_well(srv: Server, streams_before: int) -> None:
    """SERVING; the call gave back its stream slot (``open_streams`` as before it: compared with
    the count before, so one leak fails its own example, not every later one); no work queued."""
    health = health_pb2_grpc.HealthStub(srv.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if srv.app.sessions.open_streams <= streams_before and srv.app.engine.queued == 0:
            return
        time.sleep(0.01)
    raise AssertionError(
        f"after the call: {srv.app.sessions.open_streams - streams_before} stream slot(s) not given back "
        f"(limits.max_streams), {srv.app.engine.queued} segments still queued"
    )


def check_fresh_stream_works(srv: Server) -> None:
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
        target_languages=["spa"],
        output=pb.OutputOptions(speech=False),
    )
    pcm = encode(srv.speech["jfk.flac"][: 16000 * 3], pb.LINEAR16, 1)
    msgs = [pb.StreamingTranslateRequest(config=cfg).SerializeToString()]
    msgs += [
        pb.StreamingTranslateRequest(audio=pcm[i : i + 3200]).SerializeToString() for i in range(0, len(pcm), 3200)
    ]
    conv = Conversation(msgs, None, 0.0)
    before = srv.app.sessions.open_streams
    out = run_stream(srv, conv)
    assert out.code == grpc.StatusCode.OK, out.details
    check_stream(srv, conv, out)
    assert out.responses[-1].ended.segments_total >= 1  # jfk says "And so my fellow Americans" in 0.3-2.3 s
    check_server_is_well(srv, before)


# ---------------------------------------------------------------------------------------------
# The properties


def explicit(srv: Server, name: str, cfg: pb.StreamingConfig | None = None, **kw: Any) -> Conversation:
    """A hand-written conversation on real speech (always run, whatever hypothesis draws)."""
    if cfg is None:
        cfg = pb.StreamingConfig(
            format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
            target_languages=["spa"],
            output=pb.OutputOptions(speech=False),
        )
    f = cfg.format
    spec = AudioSpec("speech", name, kw.pop("start_ms", 0), kw.pop("duration_ms"), 0)
    data = render(spec, srv, f.encoding, f.sample_rate_hz, f.channels)
    frame, rate = wire_format(f)
    step = kw.pop("chunk_ms", 100) * rate // 1000 * frame
    msgs = [pb.StreamingTranslateRequest(config=cfg).SerializeToString()]
    msgs += [
        pb.StreamingTranslateRequest(audio=data[i : i + step]).SerializeToString() for i in range(0, len(data), step)
    ]
    for at in kw.pop("flush_at", []):
        msgs.insert(at, pb.StreamingTranslateRequest(control=pb.FLUSH).SerializeToString())
    return Conversation(msgs, kw.pop("cancel_after", None), kw.pop("cancel_delay_s", 0.0), [f"explicit {name}"])


def run_property(srv: Server, profile: str, examples: list[Conversation]) -> dict[str, int]:
    """Run hypothesis over ``profile`` (plus ``examples``); returns how the calls ended."""
    seen: dict[str, int] = {}

    def prop(conv: Conversation) -> None:
        before = srv.app.sessions.open_streams
        out = run_stream(srv, conv)
        segs = sum(r.HasField("segment") for r in out.responses)
        key = f"{out.code.name}{' with segments' if segs else ''}"
        seen[key] = seen.get(key, 0) + 1
        check_stream(srv, conv, out)
        check_server_is_well(srv, before)

    test = given(conv=conversations(srv, profile))(prop)
    for conv in examples:
        test = example(conv=conv)(test)
    PROPERTY_SETTINGS(test)()
    check_fresh_stream_works(srv)
    return seen


def test_valid_streams_follow_the_contract(server: Server) -> None:
    """Good configs, real speech in every encoding, rate and chunking, FLUSH, half-close."""
    stereo_mulaw = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.MULAW, sample_rate_hz=8000, channels=2),
        source_language="eng",
        target_languages=["fra", "spa"],
        output=pb.OutputOptions(speech=True, speech_sample_rate_hz=24000),
        vad=pb.VadOptions(min_silence_ms=50, max_segment_ms=1000),
    )
    seen = run_property(
        server,
        "valid",
        [
            explicit(server, "jfk.flac", duration_ms=2900, flush_at=[11]),  # FLUSH mid-phrase
            explicit(server, "silero_test.wav", start_ms=3000, duration_ms=3500, chunk_ms=250),  # past the limit
            explicit(server, "jfk.flac", stereo_mulaw, duration_ms=2500, chunk_ms=20),  # split by max_segment_ms
        ],
    )
    assert {"OK with segments", "OUT_OF_RANGE with segments"} <= set(seen), seen


def test_broken_configs_are_refused(server: Server) -> None:
    """Configs broken in one or two ways: INVALID_ARGUMENT with a short message, before any answer."""

    def bad(**kw: Any) -> Conversation:
        cfg = pb.StreamingConfig(
            format=kw.pop("format", pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)),
            target_languages=kw.pop("targets", ["spa"]),
            output=pb.OutputOptions(speech=False),
            **kw,
        )
        return explicit(server, "jfk.flac", cfg, duration_ms=500)

    seen = run_property(
        server,
        "bad_config",
        [
            bad(targets=["x" * 5000]),
            bad(targets=["spa", "é" * 1500]),
            bad(targets=["eng\n" * 300] * 2),
            bad(source_language="spa" * 400),
            bad(targets=list(server.text_codes[: server.max_targets + 1])),
            bad(format=pb.AudioFormat(encoding=pb.CONTAINER)),
            bad(vad=pb.VadOptions(threshold=math.nan)),
        ],
    )
    assert "INVALID_ARGUMENT" in seen, seen


def test_disrupted_streams_end_cleanly(server: Server) -> None:
    """Odd chunks, oversize chunks, a second config, empty and unknown messages, garbage bytes,
    config not first; half-close or a client cancel at a random point."""
    seen = run_property(
        server,
        "disrupted",
        [
            explicit(server, "silero_test.wav", duration_ms=2500, chunk_ms=500, cancel_after=4, cancel_delay_s=0.3),
            explicit(server, "jfk.flac", duration_ms=2500, cancel_after=0),
        ],
    )
    assert {"INVALID_ARGUMENT", "CANCELLED"} <= set(seen), seen


def as_config(req: pb.TranslateRequest) -> pb.StreamingConfig:
    """The StreamingConfig that asks what ``req`` asks (for ``config_is_valid``)."""
    cfg = pb.StreamingConfig(source_language=req.source_language, target_languages=req.target_languages)
    cfg.format.CopyFrom(req.audio.format)
    if req.audio.format.encoding == pb.CONTAINER:  # rate and channels come from the file
        cfg.format.CopyFrom(pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000))
    if req.HasField("output"):
        cfg.output.CopyFrom(req.output)
    if req.HasField("vad"):
        cfg.vad.CopyFrom(req.vad)
    return cfg


def unary_expectation(method: str, raw: bytes, srv: Server) -> set[grpc.StatusCode]:
    ok, invalid = grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT
    kind = pb.ListLanguagesRequest if method == "ListLanguages" else pb.TranslateRequest
    try:
        req = kind.FromString(raw)
    except DecodeError:
        return {invalid}
    if method == "ListLanguages":
        return {ok}
    assert isinstance(req, pb.TranslateRequest)
    f, data = req.audio.format, req.audio.content
    if not data or not config_is_valid(as_config(req), srv):
        return {invalid}
    if f.encoding == pb.CONTAINER:  # whether the bytes decode: not for the oracle to say
        return {ok, invalid}
    frame = WIDTH[f.encoding] * (f.channels or 1)
    if len(data) % frame:
        return {invalid}
    if f.encoding == pb.FLOAT32 and not np.isfinite(np.frombuffer(data, "<f4")).all():
        return {invalid}
    return {ok}


def translate_requests(srv: Server) -> st.SearchStrategy[bytes]:
    """Whole TranslateRequests: a config as in the stream properties (broken or not; CONTAINER
    is allowed here), with half a second of audio at most."""

    good_configs = valid_configs(srv)
    specs = audio_specs(srv, short=True, raw_bytes=True)

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        cfg = draw(good_configs)
        for how in draw(st.lists(st.sampled_from(BREAKAGES), max_size=1)):
            broken(cfg, srv, how, draw)
        spec = draw(specs)
        f = cfg.format
        req = pb.TranslateRequest(source_language=cfg.source_language, target_languages=cfg.target_languages)
        req.audio.content = render(spec, srv, f.encoding, f.sample_rate_hz, f.channels)
        req.audio.format.CopyFrom(f)
        if cfg.HasField("output"):
            req.output.CopyFrom(cfg.output)
        if cfg.HasField("vad"):
            req.vad.CopyFrom(cfg.vad)
        raw: bytes = req.SerializeToString()
        return raw

    return build()


def mutate(raw: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    b = bytearray(raw)
    for op, pos, val in edits:
        if not b:
            break
        i = pos % len(b)
        if op == 0:
            b[i] = val
        elif op == 1:
            del b[i:]
        elif op == 2:
            b.insert(i, val)
        else:
            del b[i]
    return bytes(b)


def base_translate_request() -> bytes:
    silence = np.zeros(4000, "<i2").tobytes()  # 0.25 s
    raw: bytes = pb.TranslateRequest(
        audio=pb.AudioInput(content=silence, format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000)),
        target_languages=["spa"],
        output=pb.OutputOptions(speech=False),
    ).SerializeToString()
    return raw


edits = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=4)


def test_unary_calls_with_any_bytes(server: Server) -> None:
    """Random and mutated bytes, and whole requests valid or broken, to Translate and ListLanguages."""
    seen: dict[str, int] = {}
    unary_requests = st.one_of(
        st.tuples(st.just("ListLanguages"), st.binary(max_size=64)),
        st.tuples(st.just("ListLanguages"), st.sampled_from([b"", b"\x08\x01", b"\x2a\x00", b"\x0a\x05ab", b"\xff"])),
        st.tuples(st.just("Translate"), st.binary(max_size=128)),
        st.tuples(st.just("Translate"), edits.map(lambda e: mutate(base_translate_request(), e))),
        st.tuples(st.just("Translate"), st.sampled_from([b"", base_translate_request()])),
        st.tuples(st.just("Translate"), translate_requests(server)),
    )

    @PROPERTY_SETTINGS
    @given(req=unary_requests)
    def prop(req: tuple[str, bytes]) -> None:
        method, raw = req
        before = server.app.sessions.open_streams
        try:
            answer = server.unary(method)(raw, timeout=CALL_TIMEOUT_S)
            code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as e:
            answer, code, details = None, e.code(), e.details() or ""
        seen[f"{method} {code.name}"] = seen.get(f"{method} {code.name}", 0) + 1
        try:
            parsed = pb.TranslateRequest.FromString(raw) if method == "Translate" else None
        except DecodeError:
            parsed = None
        strings = [] if parsed is None else [parsed.source_language, *parsed.target_languages]
        check_status(code, details, [s for s in strings if len(s) >= LONG_CLIENT_STRING])
        want = unary_expectation(method, raw, server)
        assert code in want, f"{method}: got {code.name} ({details!r}), expected {sorted(c.name for c in want)}"
        if answer is not None and parsed is not None:
            resp = pb.TranslateResponse.FromString(answer)
            assert [s.segment_id for s in resp.segments] == list(range(len(resp.segments)))
            prev_end = 0
            for s in resp.segments:
                assert prev_end <= s.start_ms < s.end_ms <= resp.audio_duration_ms + 1, (s.start_ms, s.end_ms)
                prev_end = s.end_ms
                assert s.status.code == code_pb2.OK, s.status
                check_segment(s, as_config(parsed))
        if answer is not None and method == "ListLanguages":
            assert pb.ListLanguagesResponse.FromString(answer).languages
        check_server_is_well(server, before)

    prop()
    check_fresh_stream_works(server)
    assert {"ListLanguages OK", "ListLanguages INVALID_ARGUMENT", "Translate INVALID_ARGUMENT"} <= set(seen), seen


def test_a_cancel_racing_a_stream_error_frees_the_stream_slot(test_model_dir: Path, shared_audio: Path) -> None:
    """Found by test_disrupted_streams_end_cleanly (random seeds): a stream that fails (here: one
    byte of LINEAR16) while its client cancels must still give back its admission slot
    (``limits.max_streams``). The race window is one event-loop turn, so the minimal example is
    repeated; its own server, so a leak cannot spill into the other tests."""
    cfg = pb.StreamingConfig(
        format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000),
        target_languages=["spa"],
        output=pb.OutputOptions(speech=False),
    )
    msgs = [
        pb.StreamingTranslateRequest(config=cfg).SerializeToString(),
        pb.StreamingTranslateRequest(audio=b"\x00").SerializeToString(),
    ]
    runs = 600
    with serve(test_model_dir, shared_audio, max_streams=8) as srv:
        for _ in range(runs):
            conv = Conversation(msgs, cancel_after=len(msgs), cancel_delay_s=0.0, notes=["one odd byte, then cancel"])
            check_stream(srv, conv, run_stream(srv, conv))
        deadline = time.monotonic() + 5
        while srv.app.sessions.open_streams and time.monotonic() < deadline:
            time.sleep(0.01)
        leaked = srv.app.sessions.open_streams
        if leaked:
            fresh = run_stream(srv, Conversation(msgs[:1], None, 0.0))
            raise AssertionError(
                f"{leaked} of {runs} streams that failed while their client cancelled still hold their slot "
                f"(max_streams=8), with no stream open; a new stream now ends with {fresh.code.name}: {fresh.details!r}"
            )
        check_server_is_well(srv, 0)
        check_fresh_stream_works(srv)
