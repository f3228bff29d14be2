"""Helpers beneath the SDK's typed API, for tests, benchmarks and the CLI: protobuf-level calls (a
channel, one Translate, a paced LINEAR16 stream, WAV out) and audio files decoded on the client.

Not the SDK's public face (``translate_svc.client`` does not export them): applications use
``AsyncTranslateClient`` / ``TranslateClient``.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import soundfile as sf

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc
from translate_svc.wire.pcm import float_to_pcm16
from translate_svc.wire.rates import MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ


def channel(target: str, max_message_bytes: int = 64 * 1024 * 1024) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ],
    )


def output_options(speech: bool = True, transcript: bool = True) -> pb.OutputOptions:
    return pb.OutputOptions(text=True, speech=speech, transcript=transcript)


async def translate_file(
    stub: pb_grpc.TranslatorStub,
    path: Path,
    targets: list[str],
    source: str = "",
    speech: bool = True,
    deadline_s: float = 600.0,
) -> pb.TranslateResponse:
    content = await asyncio.to_thread(path.read_bytes)
    request = pb.TranslateRequest(
        audio=pb.AudioInput(content=content, format=pb.AudioFormat(encoding=pb.CONTAINER)),
        source_language=source,
        target_languages=targets,
        output=output_options(speech=speech, transcript=bool(source)),
    )
    response: pb.TranslateResponse = await stub.Translate(request, timeout=deadline_s)
    return response


#: WebM/Matroska files start with EBML's magic number (libsndfile cannot read them; PyAV can)
EBML_MAGIC = b"\x1a\x45\xdf\xa3"


def decode_audio(data: bytes, *, rate: int | None = None) -> tuple[np.ndarray, int]:
    """A WAV/FLAC/OGG/MP3/WebM file's bytes -> (mono float32 in [-1, 1], its rate), decoded on the
    client with the libraries the server uses (soundfile; PyAV for WebM, the ``opus`` extra),
    channels averaged as the server does. Resampled to ``rate`` if given, else only when a stream
    could not take the file's own rate (outside 8..48 kHz: 16 kHz), with soxr (the ``cli`` extra) as
    the server does. Raises ``ValueError`` saying why the bytes are no audio (or what to install)."""
    samples, got = _decode_webm(data) if data[:4] == EBML_MAGIC else _decode_soundfile(data)
    want = rate if rate is not None else (got if MIN_SAMPLE_RATE_HZ <= got <= MAX_SAMPLE_RATE_HZ else 16000)
    return (samples, got) if want == got else (_resample(samples, got, want), want)


def _decode_soundfile(data: bytes) -> tuple[np.ndarray, int]:
    try:
        frames, got = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or "the data is not an audio file soundfile can read"
        raise ValueError(f"could not decode the audio: {str(reason)[:120]} (WAV, FLAC, OGG, MP3 or WebM)") from None
    return _mono(frames), int(got)


def _decode_webm(data: bytes) -> tuple[np.ndarray, int]:
    try:
        import av  # the `opus` extra; the other formats never load FFmpeg
    except ImportError:
        raise ValueError("WebM audio needs PyAV: pip install 'translate-svc-client[opus]'") from None
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            stream = next(iter(container.streams.audio), None)
            if stream is None:
                raise ValueError("the WebM file has no audio stream")
            planar = av.AudioResampler(format="fltp")  # float, one plane per channel; rate and layout kept
            blocks = [
                out.to_ndarray().T
                for frame in [*container.decode(stream), None]
                for out in planar.resample(frame)  # None: flush
            ]
            rate = int(stream.rate)
    except av.FFmpegError as exc:
        raise ValueError(f"could not decode the WebM audio: {str(exc)[:120]}") from None
    if not blocks:
        return np.zeros(0, np.float32), rate
    return _mono(np.concatenate(blocks)), rate


def _mono(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) float32 -> mono, checked finite and clipped to [-1, 1] (as the server does)."""
    if not np.isfinite(frames).all():
        raise ValueError("the audio holds a non-finite value: send finite samples in [-1, 1]")
    np.clip(frames, -1.0, 1.0, out=frames)
    if frames.shape[1] == 1:
        return np.ascontiguousarray(frames[:, 0])
    mono: np.ndarray = frames.mean(axis=1, dtype=np.float32)
    return mono


def _resample(samples: np.ndarray, got: int, want: int) -> np.ndarray:
    """The server's resampling (``audio/resample.py``: one soxr stream, quality HQ, fed once)."""
    try:
        import soxr  # the `cli` extra
    except ImportError:
        raise ValueError(f"resampling {got} Hz audio to {want} Hz needs soxr: pip install soxr") from None
    stream = soxr.ResampleStream(got, want, 1, dtype="float32", quality="HQ")
    return np.asarray(stream.resample_chunk(np.ascontiguousarray(samples, np.float32), last=True), np.float32)


def load_pcm16k(path: Path) -> np.ndarray:
    """A file as 16 kHz mono int16 (what ``stream`` sends as LINEAR16)."""
    mono, _ = decode_audio(path.read_bytes(), rate=16000)
    return float_to_pcm16(mono).astype("<i2")  # the exact inverse of decoding: PCM16 files come back sample-exact


@dataclass
class StreamTrace:
    """What a stream received, with arrival times relative to the first audio sent."""

    responses: list[tuple[float, pb.StreamingTranslateResponse]] = field(default_factory=list)

    @property
    def segments(self) -> list[pb.SegmentResult]:
        return [r.segment for _, r in self.responses if r.HasField("segment")]


async def stream_pcm(
    stub: pb_grpc.TranslatorStub,
    pcm: np.ndarray,
    targets: list[str],
    source: str = "",
    chunk_ms: int = 100,
    realtime: bool = False,
    speech: bool = True,
    on_response: Callable[[float, pb.StreamingTranslateResponse], None] | None = None,
) -> StreamTrace:
    """Send 16 kHz LINEAR16 in ``chunk_ms`` chunks (paced at real time if asked); collect responses."""
    trace = StreamTrace()
    t0 = time.perf_counter()
    step = 16 * chunk_ms

    async def requests() -> AsyncIterator[pb.StreamingTranslateRequest]:
        yield pb.StreamingTranslateRequest(
            config=pb.StreamingConfig(
                format=pb.AudioFormat(encoding=pb.LINEAR16, sample_rate_hz=16000, channels=1),
                source_language=source,
                target_languages=targets,
                output=output_options(speech=speech, transcript=bool(source)),
            )
        )
        for i, start in enumerate(range(0, len(pcm), step)):
            if realtime:
                delay = t0 + i * chunk_ms / 1000 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            yield pb.StreamingTranslateRequest(audio=pcm[start : start + step].tobytes())

    call = stub.StreamingTranslate(requests())
    async for resp in call:
        now = time.perf_counter() - t0
        trace.responses.append((now, resp))
        if on_response is not None:
            on_response(now, resp)
    return trace


def write_wav(path: Path, audio: pb.SynthesizedAudio | list[pb.SynthesizedAudio], gap_ms: int = 300) -> None:
    """Write one or more LINEAR16 results into a WAV (segments joined with ``gap_ms`` of silence)."""
    parts = audio if isinstance(audio, list) else [audio]
    rate = parts[0].sample_rate_hz if parts else 16000
    gap = np.zeros(rate * gap_ms // 1000, np.int16)
    chunks: list[np.ndarray] = []
    for a in parts:
        if chunks:
            chunks.append(gap)
        chunks.append(np.frombuffer(a.content, "<i2"))
    data = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    sf.write(path, data, rate, subtype="PCM_16")
