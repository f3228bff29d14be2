"""One stream, for every door: the stream protocol (``StreamDriver``) over small collaborators.

``manager`` admits streams and calls, opens their sessions and shares the engine fairly; each call
kind has its driver, which checks its requests (``task``: every request check) and does its work:
``driver`` owns the stream protocol (when its timers are due: ``clock``; a room speaker's part:
``room_seat``), ``clip`` and ``text`` the unary calls (a whole clip, texts). ``stream`` is one
stream's lifecycle over ``timeline`` (decoding), ``vad_bridge`` (the shared VAD), ``jobs`` (engine
jobs and ordered output), ``captions`` and ``simultaneous`` (commits while speech is open);
``events`` is the typed vocabulary doors speak. Imports run one way: the drivers import
the manager, never the reverse. Nothing here imports grpc or protobuf: doors live in ``transport/``.
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
    TextRequest,
    Update,
    Updated,
)
from translate_svc.session.manager import SessionManager
from translate_svc.session.stream import StreamSession
from translate_svc.session.text import TextDriver, TextsResult
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
