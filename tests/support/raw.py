"""Protobuf-level helpers for the tests and the benchmarks: a channel, one ``Translate`` of a file,
a LINEAR16 stream paced in chunks whose responses are kept with their arrival times, the requests
the tests build (a clip, texts, a stream's config; a clip as ``TranslateChunked``'s messages), and
a stream of ready messages run with its responses' arrival times.

They speak the stubs directly, beneath the SDK's typed API, where a test needs the messages
themselves. They are not shipped (issue 58 moved them out of the SDK); audio files are decoded with
the client distribution's ``translate_svc.client_cli.decode`` (``load_pcm16k``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
from google.rpc import code_pb2

from translate_svc.api.v1 import translate_pb2 as pb
from translate_svc.api.v1 import translate_pb2_grpc as pb_grpc


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


def raw_request(content: bytes, encoding: int, rate: int = 16000, channels: int = 1, **kw) -> pb.TranslateRequest:  # type: ignore[no-untyped-def]
    """A ``Translate`` request of ``content`` in ``encoding`` (into Spanish unless ``kw`` says)."""
    kw.setdefault("target_languages", ["spa"])
    return pb.TranslateRequest(
        audio=pb.AudioInput(
            content=content, format=pb.AudioFormat(encoding=encoding, sample_rate_hz=rate, channels=channels)
        ),
        **kw,
    )


def text_request(texts: list[str], **kw) -> pb.TranslateTextRequest:  # type: ignore[no-untyped-def]
    """A ``TranslateText`` request of English ``texts`` (into Spanish and French unless ``kw`` says)."""
    kw.setdefault("source_language", "eng")
    kw.setdefault("target_languages", ["spa", "fra"])
    return pb.TranslateTextRequest(texts=texts, **kw)


def clip_chunks(request: pb.TranslateRequest, chunk_bytes: int = 1024 * 1024) -> Iterator[pb.TranslateRequest]:
    """A ``TranslateRequest`` as ``TranslateChunked``'s messages, made as they are sent: the
    request with the clip's first ``chunk_bytes``, then the rest in messages of ``audio.content``
    alone (a clip over the port's 4 MiB receive limit travels so)."""
    content = request.audio.content
    first = pb.TranslateRequest()
    first.CopyFrom(request)
    first.audio.content = content[:chunk_bytes]
    yield first
    for at in range(chunk_bytes, len(content), chunk_bytes):
        yield pb.TranslateRequest(audio=pb.AudioInput(content=content[at : at + chunk_bytes]))


OPUS_FORMAT = pb.AudioFormat(encoding=pb.OPUS, sample_rate_hz=48000, channels=1)
TEXT_ONLY = pb.OutputOptions(text=True, speech=False, transcript=True)


def stream_config(fmt: pb.AudioFormat, **kw) -> pb.StreamingTranslateRequest:  # type: ignore[no-untyped-def]
    """A stream's config message: English into Spanish, text and transcript only, unless ``kw`` says."""
    kw.setdefault("target_languages", ["spa"])
    kw.setdefault("source_language", "eng")
    kw.setdefault("output", TEXT_ONLY)
    return pb.StreamingTranslateRequest(config=pb.StreamingConfig(format=fmt, **kw))


async def run_stream(
    stub: pb_grpc.TranslatorStub, msgs: Sequence[pb.StreamingTranslateRequest], *, pace_s: float = 0.0
) -> list[tuple[float, pb.StreamingTranslateResponse]]:
    """Send ``msgs`` (each after ``pace_s`` from the start, by index); responses with arrival times."""
    t0 = time.perf_counter()

    async def gen() -> AsyncIterator[pb.StreamingTranslateRequest]:
        for i, m in enumerate(msgs):
            if pace_s:
                await asyncio.sleep(max(0.0, t0 + i * pace_s - time.perf_counter()))
            yield m

    return [(time.perf_counter() - t0, r) async for r in stub.StreamingTranslate(gen(), timeout=300)]


def segment_spans(responses: list[tuple[float, pb.StreamingTranslateResponse]]) -> list[tuple[int, int]]:
    """The segments' spans (ms), every one OK."""
    segs = [r.segment for _, r in responses if r.HasField("segment")]
    assert all(s.status.code == code_pb2.OK for s in segs)
    return [(s.start_ms, s.end_ms) for s in segs]
