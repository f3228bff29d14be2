"""translate_svc's Python client SDK (docs/client.md).

``AsyncTranslateClient`` (asyncio) and ``TranslateClient`` (blocking) speak to one or more servers:
``languages()``, ``translate(audio)``, ``translate_text(texts)``, ``detect_synthetic(audio)`` (does
a clip carry the watermark of the server's speech?), ``stream(...)`` (which may speak into a room)
and ``listen(room, language)`` (a room's speakers in one language), with typed results (no
protobuf), TLS and bearer tokens, deadlines, keepalive, retries that honour the server's RetryInfo,
and streams that resume on another server when theirs drains or fails, without losing or
repeating audio. A stream the server ends for any other reason (a spent quota, a revoked token, a
bad message, a limit) raises ``StreamEndedError`` after its last ``StreamEnd``; a listen the server
ends (a revoked token) raises ``ListenEndedError`` after its ``ListenEnd``, and one whose server
drains listens again elsewhere.

Options are typed too: ``AudioFormat`` (what ``send`` takes), ``OutputOptions`` (what each segment
carries), ``VadOptions`` (segmentation), ``TlsOptions``, and ``ConnectionOptions`` (how a client
reaches its servers: the constructor's keyword arguments as one object).
"""

from translate_svc.client._retry import RetryPolicy
from translate_svc.client.aio import (
    AsyncListener,
    AsyncStream,
    AsyncTranslateClient,
    AudioDropped,
    ConnectionOptions,
    LastingEvent,
    LastingPolicy,
    LastingStream,
    OpenRefused,
    Reopening,
    StreamOpened,
    channel_options,
)
from translate_svc.client.detection import ContentCredentials, Detection
from translate_svc.client.errors import (
    ListenEndedError,
    StreamClosedError,
    StreamEndedError,
    StreamResumeError,
    TranslateError,
)
from translate_svc.client.glossary_types import Glossary, GlossaryEntry
from translate_svc.client.job_types import EditedTranslation, Job, JobList, JobState, SegmentEdit, SegmentEdited
from translate_svc.client.room_types import (
    ListenDropped,
    ListenEnd,
    ListenEndReason,
    ListenEvent,
    ListenStarted,
    Room,
    RoomCaption,
    RoomSegment,
    RoomSpeaker,
)
from translate_svc.client.sync import Listener, Stream, TranslateClient
from translate_svc.client.types import (
    AudioFormat,
    Commit,
    Conversation,
    Draining,
    EagerEndOfTurn,
    EndReason,
    Interim,
    Language,
    Languages,
    ModelInfo,
    OpusPacket,
    OutputOptions,
    Segment,
    SegmentError,
    ServerLimits,
    SimultaneousOptions,
    SpeechEvent,
    SpeechEventType,
    StreamEnd,
    StreamEvent,
    StreamInfo,
    StreamUpdated,
    Term,
    TextResult,
    Timing,
    TlsOptions,
    TranslateResult,
    TranslateTextResult,
    Translation,
    TurnResumed,
    VadOptions,
    WordTiming,
)

__all__ = [
    "AsyncListener",
    "AsyncStream",
    "AsyncTranslateClient",
    "AudioDropped",
    "AudioFormat",
    "Commit",
    "ConnectionOptions",
    "ContentCredentials",
    "Conversation",
    "Detection",
    "Draining",
    "EagerEndOfTurn",
    "EditedTranslation",
    "EndReason",
    "Glossary",
    "GlossaryEntry",
    "Interim",
    "Job",
    "JobList",
    "JobState",
    "Language",
    "Languages",
    "LastingEvent",
    "LastingPolicy",
    "LastingStream",
    "ListenDropped",
    "ListenEnd",
    "ListenEndReason",
    "ListenEndedError",
    "ListenEvent",
    "ListenStarted",
    "Listener",
    "ModelInfo",
    "OpenRefused",
    "OpusPacket",
    "OutputOptions",
    "Reopening",
    "RetryPolicy",
    "Room",
    "RoomCaption",
    "RoomSegment",
    "RoomSpeaker",
    "Segment",
    "SegmentEdit",
    "SegmentEdited",
    "SegmentError",
    "ServerLimits",
    "SimultaneousOptions",
    "SpeechEvent",
    "SpeechEventType",
    "Stream",
    "StreamClosedError",
    "StreamEnd",
    "StreamEndedError",
    "StreamEvent",
    "StreamInfo",
    "StreamOpened",
    "StreamResumeError",
    "StreamUpdated",
    "Term",
    "TextResult",
    "Timing",
    "TlsOptions",
    "TranslateClient",
    "TranslateError",
    "TranslateResult",
    "TranslateTextResult",
    "Translation",
    "TurnResumed",
    "VadOptions",
    "WordTiming",
    "channel_options",
]
