"""translate_svc's Python client SDK (docs/client.md).

``AsyncTranslateClient`` (asyncio) and ``TranslateClient`` (blocking) speak to one or more servers:
``languages()``, ``translate(audio)`` and ``stream(...)``, with typed results (no protobuf), TLS and
bearer tokens, deadlines, keepalive, retries that honour the server's RetryInfo, and streams that
resume on another server when theirs drains or fails, without losing or repeating audio.

The first protobuf-level helpers (``channel``, ``translate_file``, ``stream_pcm``, ...) stay here
for the CLI, the tests and the benchmarks.
"""

from translate_svc.client._legacy import (
    StreamTrace,
    channel,
    load_pcm16k,
    output_options,
    stream_pcm,
    translate_file,
    write_wav,
)
from translate_svc.client._retry import RetryPolicy
from translate_svc.client.aio import AsyncStream, AsyncTranslateClient, channel_options
from translate_svc.client.errors import StreamClosedError, StreamResumeError, TranslateError
from translate_svc.client.sync import Stream, TranslateClient
from translate_svc.client.types import (
    Draining,
    EndReason,
    Interim,
    Language,
    Languages,
    ModelInfo,
    OpusPacket,
    Segment,
    SegmentError,
    ServerLimits,
    SpeechEvent,
    SpeechEventType,
    StreamEnd,
    StreamEvent,
    StreamInfo,
    Timing,
    TlsOptions,
    TranslateResult,
    Translation,
    VadOptions,
)

__all__ = [
    "AsyncStream",
    "AsyncTranslateClient",
    "Draining",
    "EndReason",
    "Interim",
    "Language",
    "Languages",
    "ModelInfo",
    "OpusPacket",
    "RetryPolicy",
    "Segment",
    "SegmentError",
    "ServerLimits",
    "SpeechEvent",
    "SpeechEventType",
    "Stream",
    "StreamClosedError",
    "StreamEnd",
    "StreamEvent",
    "StreamInfo",
    "StreamResumeError",
    "StreamTrace",
    "Timing",
    "TlsOptions",
    "TranslateClient",
    "TranslateError",
    "TranslateResult",
    "Translation",
    "VadOptions",
    "channel",
    "channel_options",
    "load_pcm16k",
    "output_options",
    "stream_pcm",
    "translate_file",
    "write_wav",
]
