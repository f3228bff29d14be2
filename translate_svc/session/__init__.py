"""One stream, for every door: the stream protocol (``StreamDriver``) over small collaborators.

``manager`` admits streams and shares the engine fairly; ``driver`` owns the protocol; ``stream``
is one stream's lifecycle over ``timeline`` (decoding), ``vad_bridge`` (the shared VAD), ``jobs``
(engine jobs and ordered output), ``captions`` and ``simultaneous`` (commits while speech is
open); ``clip`` and ``text`` are the unary calls (a whole clip, texts); ``events`` is the typed vocabulary doors speak.
Nothing here imports grpc or protobuf: doors live in ``transport/``.
"""

from translate_svc.session.driver import StreamDriver
from translate_svc.session.events import (
    AudioIn,
    ClipResult,
    Draining,
    Flush,
    Invalid,
    Resume,
    SpeechEvent,
    StreamConfig,
    StreamEnded,
    StreamEvent,
    StreamRequest,
    StreamStarted,
    Update,
    Updated,
)
from translate_svc.session.manager import SessionManager
from translate_svc.session.stream import StreamSession
from translate_svc.session.text import TextDriver, TextRequest, TextsResult
from translate_svc.types import Commit, InterimResult, SegmentResult

__all__ = [
    "AudioIn",
    "ClipResult",
    "Commit",
    "Draining",
    "Flush",
    "InterimResult",
    "Invalid",
    "Resume",
    "SegmentResult",
    "SessionManager",
    "SpeechEvent",
    "StreamConfig",
    "StreamDriver",
    "StreamEnded",
    "StreamEvent",
    "StreamRequest",
    "StreamSession",
    "StreamStarted",
    "TextDriver",
    "TextRequest",
    "TextsResult",
    "Update",
    "Updated",
]
